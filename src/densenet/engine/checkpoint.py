"""Resumable training state, written atomically so a killed run never leaves a corrupt file.

A checkpoint holds the model, optimizer, scheduler and grad-scaler states, the RNG states,
the finished epoch, the configuration, the best metric and the metric rows so far. It is
read back with ``torch.load(weights_only=True)``: tensors and plain containers only.
"""

from __future__ import annotations

import io
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from densenet.errors import RunDirError, UnsafeFileError
from densenet.export.weights import atomic_write_bytes

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"


def rng_state() -> dict[str, Any]:
    """Capture every RNG that training touches (dropout, init, Python and NumPy helpers)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_plain(state: tuple) -> list:
    name, keys, pos, has_gauss, cached = state
    return [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)]


def _python_state_to_plain(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def save_checkpoint(run_dir: str | Path, state: dict[str, Any], is_best: bool) -> Path:
    """Write ``checkpoints/last.pt`` atomically, and ``best.pt`` too when ``is_best``."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    atomic_write_bytes(folder / LAST, payload)
    if is_best:
        atomic_write_bytes(folder / BEST, payload)
    return folder / LAST


def load_checkpoint(run_dir: str | Path, which: str = LAST) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``: no code in the file is ever run.

    Raises:
        RunDirError: if the folder has no readable checkpoint.
        UnsafeFileError: if the file holds pickled objects other than tensors and containers.
    """
    path = Path(run_dir) / CHECKPOINT_DIR / which
    if not path.is_file():
        raise RunDirError(f"{run_dir} has no {CHECKPOINT_DIR}/{which}: it is not a resumable run directory "
                          "(pass the --out folder of an earlier `densenet train`)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(f"{path} holds objects other than tensors; refusing to unpickle it ({exc})") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise RunDirError(f"{path} is unreadable or truncated ({exc}); delete it to start over") from None


def copy_best_to_last(run_dir: str | Path) -> None:
    """Utility for tests and tools: make ``last.pt`` a copy of ``best.pt``."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    shutil.copyfile(folder / BEST, folder / LAST)

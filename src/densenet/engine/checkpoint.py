"""Resumable training state, written atomically so a killed run never leaves a corrupt file.

A checkpoint holds the model, optimizer, scheduler and grad-scaler states, the RNG states,
the finished epoch, the configuration, the best metric and the metric rows so far. It is
read back with ``torch.load(weights_only=True)``: tensors and plain containers only.
"""

from __future__ import annotations

import io
import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from densenet.errors import RunDirError, UnsafeFileError
from densenet.rundir import (
    BEST,
    CHECKPOINT_DIR,
    EPOCH_CHECKPOINT,
    EPOCH_CHECKPOINT_GLOB,
    LAST,
    TEMP_GLOB,
    atomic_write_bytes,
)


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Capture every RNG that training touches (dropout, init, Python and NumPy helpers), and the run's own
    ``generators`` (e.g. ``{"mix": ...}``, Mixup/CutMix's) under their names."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "python": _python_state_to_plain(random.getstate()),
        **{name: g.get_state() for name, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`rng_state` captured, ``generators`` included (each must have been saved)."""
    for name, g in (generators or {}).items():
        g.set_state(state[name])
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


def save_checkpoint(run_dir: str | Path, state: dict[str, Any], is_best: bool, keep: int = 0) -> Path:
    """Write ``checkpoints/last.pt`` atomically, and ``best.pt`` too when ``is_best``.

    With ``keep`` > 0 (``--keep-checkpoints``, for an epoch's end), also ``checkpoints/epoch-NNNN.pt`` of
    ``state["epoch"]``, and delete the epoch checkpoints older than the last ``keep``.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    atomic_write_bytes(folder / LAST, payload)
    if is_best:
        atomic_write_bytes(folder / BEST, payload)
    if keep:
        atomic_write_bytes(folder / EPOCH_CHECKPOINT.format(epoch=state["epoch"]), payload)
        for _, old in epoch_checkpoints(run_dir)[:-keep]:
            old.unlink(missing_ok=True)
    return folder / LAST


def epoch_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """The kept epoch checkpoints of a run directory, ``(epoch, path)`` in epoch order."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = [(int(p.stem.removeprefix("epoch-")), p) for p in folder.glob(EPOCH_CHECKPOINT_GLOB)
             if p.stem.removeprefix("epoch-").isdigit()] if folder.is_dir() else []
    return sorted(found)


def remove_epoch_checkpoints_after(run_dir: str | Path, epoch: int) -> None:
    """Delete kept epoch checkpoints newer than ``epoch``: a run resumed from an earlier state redoes them."""
    for e, path in epoch_checkpoints(run_dir):
        if e > epoch:
            path.unlink(missing_ok=True)


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
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing; the error says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(f"{path} holds objects other than tensors ({_unpickling_reason(exc)}); refusing to "
                              "unpickle it, as that could run code. Use checkpoints written by `densenet train` "
                              "only") from None
    except (RuntimeError, EOFError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunDirError(f"{path} is unreadable or truncated ({reason}). Copy {BEST} over it to resume from the best "
                          "epoch, or delete the run directory and train again") from None


def _unpickling_reason(exc: Exception) -> str:
    """The one informative line of torch's long, multi-line weights-only error (which suggests unsafe loading)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("Unsupported global", "Unsupported operand", "WeightsUnpickler error: ")):
            return line.removeprefix("WeightsUnpickler error: ").split(" was not an allowed global")[0]
    return "not a weights-only file"


def remove_stale_temp_files(run_dir: str | Path) -> list[Path]:
    """Delete the temporary files of atomic writes that a killed process left behind; return them."""
    run_dir = Path(run_dir)
    stale = [p for folder in (run_dir, run_dir / CHECKPOINT_DIR) if folder.is_dir()
             for p in folder.glob(TEMP_GLOB) if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale

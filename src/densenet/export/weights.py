"""Self-describing weights: ``model.safetensors`` plus ``model.json``; loading never unpickles.

``model.json`` holds what rebuilds the model: the registry name, the builder's keyword
arguments, the class names and the preprocessing the training data went through.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from densenet.errors import RunDirError, UnsafeFileError
from densenet.models import create_model

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
FORMAT_VERSION = 1


@dataclass
class Preprocessing:
    """How an image becomes a model input: mode, size and normalization.

    Attributes:
        channels: 1 (grayscale) or 3 (RGB).
        image_size: Side of the square the image is resized to (bilinear).
        mean: Per-channel mean subtracted after scaling pixels to [0, 1].
        std: Per-channel std divided by.
    """

    channels: int
    image_size: int
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])


@dataclass
class ModelCard:
    """Everything in ``model.json``."""

    model: str
    model_kwargs: dict[str, Any]
    classes: list[str]
    preprocessing: Preprocessing
    dataset: str = ""
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        data = dict(data)
        data["preprocessing"] = Preprocessing(**data["preprocessing"])
        return cls(**data)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file in the same folder, fsync, then rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(folder: str | Path, model: nn.Module, card: ModelCard) -> Path:
    """Save ``model``'s weights and ``card`` into ``folder`` atomically; return the weights path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in _plain_state_dict(model).items()}
    from safetensors.torch import save as save_bytes

    atomic_write_bytes(folder / WEIGHTS_FILE, save_bytes(tensors))
    atomic_write_bytes(folder / META_FILE, (json.dumps(asdict(card), indent=2) + "\n").encode())
    return folder / WEIGHTS_FILE


def _plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    # Unwrap DDP (.module) and torch.compile (._orig_mod) so the keys are the model's own.
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model.state_dict()


def read_card(path: str | Path) -> ModelCard:
    """Read ``model.json`` from a run directory or its path."""
    meta = _resolve(path)[1]
    try:
        return ModelCard.from_dict(json.loads(meta.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RunDirError(f"{meta} is not a valid densenet model.json ({exc}); re-export the model") from None


def load(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained model from a run directory, or from ``model.safetensors``/``model.json``.

    Args:
        path: A run directory, or the path of its ``model.safetensors`` or ``model.json``.
        map_location: Device for the weights.

    Returns:
        The model in eval mode, with its :class:`ModelCard` as ``model.card``.
    """
    weights, _ = _resolve(path)
    card = read_card(path)
    model = create_model(card.model, **card.model_kwargs)
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunDirError(f"{weights} is not a readable safetensors file ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise RunDirError(f"{weights} does not match the {card.model} that {META_FILE} describes ({first}); "
                          "the two files come from different models. Re-export them together") from None
    model.card = card
    return model.eval()


def _resolve(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if path.suffix in (".pt", ".pth", ".pkl", ".bin", ".ckpt"):
        raise UnsafeFileError(f"{path}: densenet reads weights from model.safetensors only; pickled files can "
                              "run code when loaded. Convert it with densenet.export.convert_torch_checkpoint.")
    weights, meta = folder / WEIGHTS_FILE, folder / META_FILE
    if not path.exists():
        raise RunDirError(f"{path} does not exist")
    missing = [p.name for p in (weights, meta) if not p.is_file()]
    if missing:
        raise RunDirError(f"{folder} is not a run directory with a trained model (missing {', '.join(missing)}); "
                          "pass the --out folder of a finished `densenet train`")
    return weights, meta


__all__ = ["ModelCard", "Preprocessing", "atomic_write_bytes", "load", "read_card", "save_model"]

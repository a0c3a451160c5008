"""A run directory's trained model: ``model.safetensors`` plus ``model.json``; loading never unpickles."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from densenet.errors import RunDirError
from densenet.models import create_model
from densenet.rundir.card import ModelCard, model_files, read_card, write_card
from densenet.rundir.files import META_FILE, WEIGHTS_FILE, atomic_write_bytes


def save_model(folder: str | Path, model: nn.Module, card: ModelCard) -> Path:
    """Save ``model``'s weights and ``card`` into ``folder`` atomically; return the weights path.

    Args:
        folder: The run directory (created if missing).
        model: The trained model; DDP and ``torch.compile`` wrappers are looked through.
        card: What ``model.json`` says about it.

    Returns:
        The path of ``model.safetensors``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in _plain_state_dict(model).items()}
    atomic_write_bytes(folder / WEIGHTS_FILE, safetensors_bytes(tensors))
    write_card(folder, card)
    return folder / WEIGHTS_FILE


def _plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    # Unwrap DDP (.module) and torch.compile (._orig_mod) so the keys are the model's own.
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model.state_dict()


def load(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained model from a run directory, or from ``model.safetensors``/``model.json``.

    Args:
        path: A run directory, or the path of its ``model.safetensors`` or ``model.json``.
        map_location: Device for the weights.

    Returns:
        The model in eval mode, with its :class:`ModelCard` as ``model.card``.

    Raises:
        RunDirError: if the files are missing, unreadable or do not match each other.
        UnsafeFileError: if ``path`` is a pickled weights file.
    """
    weights, _ = model_files(path)
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

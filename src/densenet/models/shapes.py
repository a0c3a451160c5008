"""Shape propagation through a model's top-level stages (the textbook's shape-printing loop)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from densenet.errors import InputSizeError


def stages_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's top-level stages in forward order (``model.stages()``, else its children)."""
    if hasattr(model, "stages"):
        return model.stages()
    return list(model.named_children())


@torch.no_grad()
def stage_shapes(model: nn.Module, input_size: tuple[int, int, int]) -> list[dict[str, Any]]:
    """Run one zero image through each stage and record its output shape.

    Raises:
        InputSizeError: if the input is too small (a stage's spatial size reaches zero), naming the
            smallest square size that works, or if the channel count does not match the model.
    """
    c, h, w = input_size
    expected = _in_channels(model)
    if expected is not None and c != expected:
        raise InputSizeError(f"the model expects {expected} input channel(s), got {c}; "
                             f"use --input-size {expected},{h},{w}")
    out = _propagate(model, (1, c, h, w))
    if out is None:
        smallest = smallest_input_size(model, c)
        raise InputSizeError(f"a {h}x{w} input is too small for this model: the spatial size reaches zero before "
                             f"the last stage. The smallest square input that works is {smallest}x{smallest}")
    return out


def _propagate(model: nn.Module, shape: tuple[int, ...]) -> list[dict[str, Any]] | None:
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(shape, device=_device(model))
        rows = []
        for name, stage in stages_of(model):
            x = stage(x)
            if x.dim() == 4 and min(x.shape[2:]) < 1:
                return None
            rows.append({"name": name, "type": type(stage).__name__, "output_shape": list(x.shape)})
        return rows
    except RuntimeError as exc:
        if "size" in str(exc).lower() or "kernel" in str(exc).lower():
            return None
        raise
    finally:
        model.train(was_training)


def smallest_input_size(model: nn.Module, channels: int, limit: int = 1024) -> int:
    """The smallest square side length that passes through ``model``.

    Doubles from 1 until a size fits, then bisects, so only small inputs are ever run.
    """
    hi = 1
    while _propagate(model, (1, channels, hi, hi)) is None:
        if hi >= limit:
            raise InputSizeError(f"no input up to {limit}x{limit} fits this model")
        hi *= 2
    lo = hi // 2 + 1 if hi > 1 else 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _propagate(model, (1, channels, mid, mid)) is None:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _in_channels(model: nn.Module) -> int | None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return None


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")

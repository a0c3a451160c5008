"""Helpers for the model tests: small valid inputs per registry entry, cheap builds, slow marks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from densenet.models import create_model, list_models, model_info

# Registry entries with more than 20M parameters: a training step of two of them takes a second or more.
BIG = frozenset(name for name in list_models() if (model_info(name).params or 0) > 20_000_000)


def small_input_size(name: str) -> tuple[int, int, int]:
    """The smallest convenient input: 8x8 for the 32x32 (CIFAR-stem) nets, 32x32 for ImageNet-stem ones."""
    c, h, _ = model_info(name).input_size
    side = 8 if h == 32 else 32
    return (c, side, side)


def meta_model(name: str, **kwargs) -> nn.Module:
    """Build on the meta device: structure and parameter shapes only, no memory, no initialization."""
    with torch.device("meta"):
        return create_model(name, **kwargs)


def params_marking_big(names: list[str]) -> list:
    """Registry names as pytest params, the big ones marked slow."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in names]

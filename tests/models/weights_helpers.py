"""Helpers for the weights tests: torchvision's legacy key layout and models with non-default statistics."""

from __future__ import annotations

import re

import torch

from densenet.models import create_model

SMALL = "densenet_bc100_k12"  # 0.77M parameters, dense layers with torchvision's names
_CURRENT = re.compile(r"(denselayer\d+)\.(norm|relu|conv)([12])\.")


def to_legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's first DenseNet layout: ``norm.1`` for ``norm1`` ..., and no ``num_batches_tracked``."""
    return {_CURRENT.sub(r"\1.\2.\3.", k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def trained(name: str = SMALL, seed: int = 0, **kwargs) -> torch.nn.Module:
    """A model whose BatchNorm statistics are not the defaults, so that loading them shows."""
    torch.manual_seed(seed)
    model = create_model(name, **kwargs)
    with torch.no_grad():
        model.train()(torch.randn(2, kwargs.get("in_channels", 3), 32, 32))
    return model.eval()

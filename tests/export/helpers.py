"""Shared pieces of the export tests: models with non-trivial BatchNorm statistics, and a run directory."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import densenet
from densenet.rundir import ModelCard, Preprocessing, save_model

# One model per family; the tests run those the registry has.
FAMILY_MODELS = ("d2l_densenet", "densenet121", "densenet_bc100_k12", "resnet18")
SMALL_SIDE = 32


def family_models() -> list[str]:
    names = [n for n in FAMILY_MODELS if n in densenet.list_models()]
    assert "d2l_densenet" in names, "the seed model must always be exercised"
    return names


def small_input(name: str) -> tuple[int, int, int]:
    """The model's channels at 32x32: every registered family downsamples at most 32 times."""
    return densenet.models.model_info(name).input_size[0], SMALL_SIDE, SMALL_SIDE


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random affine parameters and running statistics, as a trained model has.

    A fresh model's statistics (mean 0, var 1) would make folding nearly an identity.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
    return model.eval()


def make_run_dir(folder: Path, name: str = "d2l_densenet", image_size: int = SMALL_SIDE) -> Path:
    """A run directory as `densenet train` leaves it, with a d2l_densenet of random weights."""
    torch.manual_seed(0)
    model = randomize_batchnorm(densenet.create_model(name, num_classes=10))
    channels = densenet.models.model_info(name).input_size[0]
    card = ModelCard(model=name, model_kwargs={"in_channels": channels, "num_classes": 10},
                     classes=[f"class{i}" for i in range(10)],
                     preprocessing=Preprocessing(channels, image_size, [0.5] * channels, [0.25] * channels))
    save_model(folder, model, card)
    return folder

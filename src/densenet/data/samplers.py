"""Samplers that decide which training pictures an epoch visits (the loaders' ``sampler=`` argument).

:class:`BalancedSampler` is ``--balanced-sampler``: like ``torch.utils.data.WeightedRandomSampler`` with weights
inverse to each class's frequency, so every class is drawn equally often on average. It also shards like
``DistributedSampler``: every rank draws the same epoch order from ``(seed, epoch)`` and takes every
``num_replicas``-th index of it, so ranks never draw the same slot twice and a resumed run repeats its draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from densenet.errors import ConfigError

__all__ = ["BalancedSampler", "inverse_frequency"]


def inverse_frequency(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class weights ``n / (C * n_c)`` (scikit-learn's "balanced"): 1 for every class when they are equally
    frequent. A class with no example gets weight 0 (it cannot be drawn or weighed anyway).

    Args:
        labels: (N,) int64 class indices.
        num_classes: C.
    """
    counts = torch.bincount(labels, minlength=num_classes).double()
    weights = torch.where(counts > 0, len(labels) / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights.float()


class BalancedSampler:
    """Draws, with replacement, as many indices per epoch as there are pictures, each with probability inverse
    to its class's frequency.

    Args:
        labels: (N,) int64 class index of each training picture.
        num_classes: The number of classes.
        seed: The run's seed; epoch ``e``'s draw depends only on ``(seed, e)``.
        num_replicas: Ranks under torchrun (1 alone).
        rank: This process's rank.
    """

    def __init__(self, labels: torch.Tensor, num_classes: int, seed: int = 0, num_replicas: int = 1,
                 rank: int = 0) -> None:
        if labels.dim() != 1:
            raise ConfigError("--balanced-sampler weighs single-label classes; for multi-label data use "
                              "--pos-weight auto")
        self.weights = inverse_frequency(labels, num_classes)[labels].double()  # (N,) one weight per picture
        self.seed, self.num_replicas, self.rank, self.epoch = seed, num_replicas, rank, 0
        self.num_samples = math.ceil(len(labels) / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
        total = self.num_samples * self.num_replicas
        order = torch.multinomial(self.weights, total, replacement=True, generator=generator)
        return iter(order[self.rank : total : self.num_replicas].tolist())

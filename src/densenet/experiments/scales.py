"""How big an experiment runs: the data, the training budget and the benchmark sizes of one scale.

``cpu`` is what the committed report in ``docs/evidence/`` was made with; it finishes on a 2-core
machine in about an hour. ``full`` is for a GPU (or a lot of patience) and for CIFAR when it is
present. ``tiny`` checks the machinery in a minute; its verdicts mean nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from densenet.errors import ConfigError

# Training-set sizes of the datasets the experiments accept (fractions in claim 3 are of these).
TRAIN_SIZES = {"fashion-mnist": 60_000, "mnist": 60_000, "cifar-10": 50_000, "cifar-100": 50_000}


@dataclass(frozen=True)
class Scale:
    """One scale. Every training run of an experiment at this scale uses these settings."""

    name: str
    dataset: str  # the default dataset (``--dataset`` overrides it)
    train_images: int | None  # a seeded, class-balanced draw of N training images (None = all)
    test_images: int | None  # test images every run is scored on (None = all)
    budget: int  # training images seen per run: epochs = ceil(budget / training images), within [1, max_epochs]
    max_epochs: int  # the cap for very small training sets
    batch_size: int
    fractions: tuple[float, ...]  # claim 3: fractions of the whole training set
    augment_padding: int  # claim 4: random-crop padding of the augmented runs (with horizontal flips)
    bench_batch: int  # idea b and d: batch of the timed training steps
    bench_steps: int  # timed steps per measurement
    description: str
    pretrain_images: int | None = None  # transfer: Fashion-MNIST images of the pretraining run (None = all 60,000)
    pretrain_epochs: int = 1  # transfer: its epochs (the budget rule does not apply to it)
    transfer_sizes: tuple[int, ...] = (100, 1_000, 10_000)  # transfer: MNIST training-set sizes of the fine-tuning
    transfer_epochs: tuple[int, ...] | None = None  # transfer: epochs per size (None: the budget rule)

    def epochs_for(self, train_images: int) -> int:
        """Epochs a run on ``train_images`` images gets, so that every run sees about the same budget."""
        return min(self.max_epochs, max(1, math.ceil(self.budget / train_images)))

    def train_size(self, dataset: str) -> int:
        """Images in the standard training set of ``dataset`` at this scale."""
        full = dataset_train_size(dataset)
        return full if self.train_images is None else min(self.train_images, full)


def dataset_train_size(dataset: str) -> int:
    if dataset not in TRAIN_SIZES:
        raise ConfigError(f"the experiments run on {', '.join(TRAIN_SIZES)}; got dataset {dataset!r}")
    return TRAIN_SIZES[dataset]


SCALES = {
    "cpu": Scale(
        name="cpu", dataset="fashion-mnist", train_images=12_000, test_images=2_000, budget=24_000, max_epochs=40,
        batch_size=128, fractions=(0.01, 0.05, 0.2, 1.0), augment_padding=2, bench_batch=64, bench_steps=5,
        pretrain_images=None, pretrain_epochs=2, transfer_sizes=(100, 1_000, 10_000), transfer_epochs=(16, 4, 1),
        description="Fashion-MNIST at its native 28x28: the standard runs train on the first 12,000 training "
        "images for 2 epochs (claim 3: 600 images for 40 epochs up to all 60,000 for one) and are scored on the "
        "first 2,000 test images; transfer pretrains on all 60,000 for 2 epochs and fine-tunes on 100, 1,000 and "
        "10,000 MNIST images for 16, 4 and 1 epochs; timings at batch 64; eager (no torch.compile)."),
    "full": Scale(
        name="full", dataset="cifar-10", train_images=None, test_images=None, budget=50_000 * 60, max_epochs=300,
        batch_size=64, fractions=(0.01, 0.05, 0.2, 1.0), augment_padding=4, bench_batch=64, bench_steps=20,
        pretrain_images=None, pretrain_epochs=30, transfer_sizes=(100, 1_000, 10_000),
        description="the whole dataset (CIFAR-10 by default; --dataset cifar-100 for the paper's claim 4), "
        "60 epochs' worth of images per run (at most 300 epochs on small fractions), batch 64, the fast path "
        "of the device."),
    "tiny": Scale(
        name="tiny", dataset="fashion-mnist", train_images=512, test_images=256, budget=512, max_epochs=8,
        batch_size=64, fractions=(0.002, 0.008), augment_padding=2, bench_batch=16, bench_steps=2,
        pretrain_images=512, pretrain_epochs=1, transfer_sizes=(100, 256),
        description="a one-minute check of the machinery (512 training images, one epoch); its verdicts mean "
        "nothing."),
}


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise ConfigError(f"unknown scale {name!r}; choose one of {', '.join(SCALES)}")
    return SCALES[name]

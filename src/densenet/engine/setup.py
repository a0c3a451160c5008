"""Builders that turn a :class:`TrainConfig` into data loaders, a model, an optimizer and a schedule."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from densenet.data import IMAGE_FOLDER, BatchLoader, ImageDataset, load_dataset
from densenet.engine.config import TrainConfig
from densenet.engine.distributed import DistContext
from densenet.errors import ConfigError
from densenet.models import create_model
from densenet.rundir import ModelCard, Preprocessing


@dataclass
class TrainData:
    """The loaded datasets and their loaders."""

    train: ImageDataset
    test: ImageDataset
    train_loader: BatchLoader
    test_loader: BatchLoader

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])


def load_split(config: TrainConfig, split: str, log: Callable[[str], None] | None = None,
               progress: bool = False) -> ImageDataset:
    """Load one split of the configured dataset (found by :func:`~densenet.data.load_dataset`'s lookup),
    resized once, with the configured subset.

    With ``progress``, a bar counts the pictures decoded or resized (the slow part for big folders).
    """
    d = config.data
    if d.dataset == IMAGE_FOLDER and not d.data_dir:
        raise ConfigError("--dataset image-folder needs --data-dir pointing at a folder with one subfolder per class")
    if log:
        log(f"loading {d.dataset} {split} split" + (f" from {d.data_dir}" if d.data_dir else ""))
    with progress_bar(None, f"preparing the {split} split", progress, unit="img") as bar:
        ds = load_dataset(d.dataset, split, d.data_dir, download=d.download, image_size=d.resize, progress=bar.update)
    n = d.train_subset if split == "train" else d.test_subset
    if n is not None:
        if n > len(ds):
            raise ConfigError(f"--{split}-subset {n} is larger than the {split} set ({len(ds)} images)")
        ds = ds.subset(n, seed=config.run.seed)
    return ds


def build_data(config: TrainConfig, ctx: DistContext, log: Callable[[str], None] | None = None,
               progress: bool = False) -> TrainData:
    """Load both splits and wrap them in loaders; under DDP each rank gets its own shard."""
    train, test = load_split(config, "train", log, progress), load_split(config, "test", log, progress)
    run, d = config.run, config.data
    # The same sampler alone or under torchrun: epoch e's order is randperm(seed + e) and rank r takes
    # every world_size-th index, so two ranks with batch b see exactly the batches of one process with 2b.
    sampler = DistributedSampler(train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=run.seed, drop_last=False)
    common = dict(device=ctx.device, normalize=d.normalize)
    train_loader = BatchLoader(train, run.batch_size, shuffle=True, seed=run.seed, sampler=sampler,
                               augment=augmentation(config), **common)
    # The test set is split into contiguous shards with no padding, so each image counts once.
    test_loader = BatchLoader(_shard(test, ctx), max(run.batch_size, 256), shuffle=False, **common)
    return TrainData(train, test, train_loader, test_loader)


def augmentation(config: TrainConfig) -> Any:
    """The training-time augmentation the config asks for (``None`` when off)."""
    from densenet.data.loader import Augment

    d = config.data
    if not (d.random_crop_padding or d.hflip or d.random_erasing):
        return None
    return Augment(crop_padding=d.random_crop_padding, hflip=0.5 if d.hflip else 0.0, erasing=d.random_erasing)


def _shard(ds: ImageDataset, ctx: DistContext) -> ImageDataset:
    if not ctx.enabled:
        return ds
    n = len(ds)
    lo, hi = n * ctx.rank // ctx.world_size, n * (ctx.rank + 1) // ctx.world_size
    return dataclasses.replace(ds, images=ds.images[lo:hi], labels=ds.labels[lo:hi])


def build_model(config: TrainConfig, data: TrainData) -> nn.Module:
    """Create the configured model for the data's channels and classes, initialized as ``model.init`` says.

    The initialization happens when the model is built; a resumed run then loads its checkpoint over it, so
    trained weights are never re-initialized (the textbook's ``train_ch6`` re-initializes on every call).
    """
    kwargs = {**config.model.kwargs, "in_channels": data.channels, "num_classes": data.num_classes}
    if config.model.init != "builder":
        kwargs["init"] = config.model.init
    if config.model.memory_efficient:
        kwargs["memory_efficient"] = True
    try:
        model = create_model(config.model.name, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot build {config.model.name} with {kwargs}: {exc}") from None
    check_input_size(model, data.channels, data.image_size)
    return model


def check_input_size(model: nn.Module, channels: int, size: int) -> None:
    """Fail early, with the smallest size that works, if images are too small for the model."""
    from densenet.models.shapes import smallest_input_size

    smallest = smallest_input_size(model, channels)
    if size < smallest:
        raise ConfigError(f"{size}x{size} images are too small for this model: the feature maps shrink to zero. "
                          f"Use --resize {smallest} or larger")


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = config.optim
    return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                           weight_decay=o.weight_decay)


def lr_factor(config: TrainConfig, epoch: float) -> float:
    """The learning-rate multiplier after ``epoch`` finished epochs (a fraction when updated per step)."""
    o, total = config.optim, config.run.epochs
    if epoch < o.warmup_epochs:
        return (epoch + 1) / (o.warmup_epochs + 1)
    if o.schedule == "step":
        marks = [m * total if m < 1 else m for m in o.milestones]
        return o.gamma ** sum(epoch >= m for m in marks)
    if o.schedule == "cosine":
        span = max(total - o.warmup_epochs, 1)
        return 0.5 * (1 + math.cos(math.pi * (epoch - o.warmup_epochs) / span))
    return 1.0


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer,
                    steps_per_epoch: int = 1) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule, stepped after each epoch or, with ``optim.schedule_per == "step"``, after each step."""
    if config.optim.schedule_per == "step":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(config, s / steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(config, e))


def model_card(config: TrainConfig, data: TrainData) -> ModelCard:
    """What ``model.json`` needs to rebuild the model and preprocess new images like the training data."""
    ds = data.train
    normalize = config.data.normalize
    pre = Preprocessing(channels=data.channels, image_size=data.image_size,
                        mean=list(ds.mean) if normalize else [0.0] * data.channels,
                        std=list(ds.std) if normalize else [1.0] * data.channels)
    kwargs = {**config.model.kwargs, "in_channels": data.channels, "num_classes": data.num_classes}
    return ModelCard(model=config.model.name, model_kwargs=kwargs, classes=list(ds.classes), preprocessing=pre,
                     dataset=config.data.dataset)


def progress_bar(total: int | None, desc: str, enabled: bool, initial: int = 0, unit: str = "batch") -> tqdm:
    """The one progress bar of training, data preparation and sweeps: a tqdm bar on stderr that clears itself
    when done; with ``enabled=False`` a disabled one, whose ``update`` and ``close`` do nothing."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                mininterval=1.0, disable=not enabled, file=sys.stderr)

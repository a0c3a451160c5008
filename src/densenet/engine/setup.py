"""Builders that turn a :class:`TrainConfig` into a model, an optimizer and a schedule.

The data loaders are built by :mod:`densenet.engine.data`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from densenet.engine.config import TrainConfig
from densenet.errors import ConfigError
from densenet.models import create_model
from densenet.rundir import ModelCard, Preprocessing


def build_model(config: TrainConfig, data: Any) -> nn.Module:
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
    """SGD or AdamW (``optim.optimizer``) over :func:`~densenet.engine.finetune.parameter_groups` (one group unless
    the head and the rest train differently, or BatchNorm and biases skip weight decay, so the checkpoints of
    earlier runs still resume). AdamW's ``weight_decay`` is decoupled from the gradient (Loshchilov & Hutter)."""
    from densenet.engine.finetune import parameter_groups

    o = config.optim
    groups = parameter_groups(model, config)
    if o.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=(o.betas[0], o.betas[1]), weight_decay=o.weight_decay)
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay)


def wrap_model(model: nn.Module, perf: Any, ctx: Any, sync_batchnorm: bool = False) -> nn.Module:
    """The module the training loop calls: ``model`` in its memory format and compiled (in place, see
    :func:`~densenet.engine.performance.prepare_model`), under torchrun inside DistributedDataParallel.

    Call it again after parameters change ``requires_grad`` (DDP registers its hooks when it is built).
    """
    from densenet.engine.performance import prepare_model

    if not ctx.enabled:
        return prepare_model(model, perf)
    if sync_batchnorm:
        if ctx.device.type != "cuda":
            raise ConfigError("--sync-bn needs CUDA devices (PyTorch's SyncBatchNorm does not run on the "
                              "CPU); drop --sync-bn for CPU runs")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = prepare_model(model, perf)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


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


def model_card(config: TrainConfig, data: Any) -> ModelCard:
    """What ``model.json`` needs to rebuild the model and preprocess new images like the test data
    (``data`` is the run's :class:`~densenet.engine.data.TrainData`)."""
    from densenet.engine.data import is_photos

    d = config.data
    pre = Preprocessing(channels=data.channels, image_size=data.image_size,
                        mean=list(data.mean) if d.normalize else [0.0] * data.channels,
                        std=list(data.std) if d.normalize else [1.0] * data.channels)
    if is_photos(config) and d.keep_aspect:
        pre = dataclasses.replace(pre, resize="center-crop", crop_pct=d.crop_pct, interpolation=d.interpolation)
    elif is_photos(config):
        pre = dataclasses.replace(pre, interpolation=d.interpolation)
    kwargs = {**config.model.kwargs, "in_channels": data.channels, "num_classes": data.num_classes}
    return ModelCard(model=config.model.name, model_kwargs=kwargs, classes=list(data.classes), preprocessing=pre,
                     dataset=d.dataset, multilabel=data.multilabel)


def progress_bar(total: int | None, desc: str, enabled: bool, initial: int = 0, unit: str = "batch") -> tqdm:
    """The one progress bar of training, data preparation and sweeps: a tqdm bar on stderr that clears itself
    when done; with ``enabled=False`` a disabled one, whose ``update`` and ``close`` do nothing."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                mininterval=1.0, disable=not enabled, file=sys.stderr)

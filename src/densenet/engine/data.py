"""The configured data, loaded and batched: built-in datasets in memory, photo collections streamed or held.

Built-in datasets (Fashion-MNIST, MNIST, CIFAR) keep their exact path: decoded, resized once and held
in memory as uint8 (:class:`~densenet.data.loader.BatchLoader`). Photo collections (``image-folder``,
``csv``) go through :mod:`densenet.data.stream`: each split is held in memory when its decoded
pictures fit the memory budget, and streamed from disk by worker processes otherwise
(``--stream``/``--no-stream`` force the choice; the log says which path was taken and why).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data.distributed import DistributedSampler

from densenet.data import IMAGE_FOLDER, BatchLoader, ImageDataset, load_dataset
from densenet.data.augment import RandAugment
from densenet.data.catalogue import ImageList
from densenet.data.datasets import IMAGENET_MEAN, IMAGENET_STD
from densenet.data.images import available_memory, list_image_folder
from densenet.data.labels import read_label_file
from densenet.data.photos import EvalTransform, TrainTransform
from densenet.data.samplers import BalancedSampler
from densenet.data.stream import PhotoDataset, PhotoLoader, default_workers
from densenet.engine.config import TrainConfig
from densenet.engine.distributed import DistContext, union_over_ranks
from densenet.engine.setup import progress_bar
from densenet.errors import ConfigError, DataError

__all__ = ["CSV", "PHOTO_DATASETS", "TrainData", "build_data", "is_photos", "load_split", "memory_budget"]

CSV = "csv"
PHOTO_DATASETS = (IMAGE_FOLDER, CSV)
# A photo split is held in memory when its decoded pictures take at most this fraction of the available memory.
MEMORY_FRACTION = 0.25
BUDGET_ENV = "DENSENET_MEMORY_BUDGET"  # bytes (suffixes K, M, G allowed): overrides the fraction, e.g. for tests
# The held-out validation draw does not follow --seed, so every configuration of a search meets the same images.
VAL_SEED = 20
EVALUATED_SPLITS = ("test", "validation")  # what `densenet evaluate --split` reads


@dataclass
class TrainData:
    """The loaders of both splits and what the model and the model card need to know about the data."""

    train_loader: BatchLoader | PhotoLoader
    test_loader: BatchLoader | PhotoLoader
    classes: list[str]
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_train: int
    num_test: int
    paths: dict[str, str] = field(default_factory=dict)  # split -> "memory" or "stream"
    train_targets: torch.Tensor | None = None  # the whole training split's (N,) classes or (N, C) 0/1 rows
    eval_split: str = "test"  # what the evaluation loader holds: "test", or "validation" (held out of train)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def multilabel(self) -> bool:
        """Several labels per picture: (N, C) targets, sigmoid outputs and BCE."""
        return self.train_targets is not None and self.train_targets.dim() == 2

    def bad_files(self) -> dict[str, str]:
        """Unreadable pictures skipped so far (path -> why), over both splits."""
        out: dict[str, str] = {}
        for loader in (self.train_loader, self.test_loader):
            out.update(getattr(loader, "bad_files", {}))
        return out

    def data_wait_s(self) -> float:
        """Seconds the training loop waited for training batches so far."""
        return self.train_loader.wait_s

    def summary(self, steps: int, ctx: DistContext) -> dict[str, Any]:
        """The data's fields of ``summary.json`` after ``steps`` training steps of this process (call on every rank)."""
        return {
            # Seconds this process's training loop waited for batches (decoding, transfer), in all and per step.
            "data_wait_s": round(self.data_wait_s(), 3),
            "data_wait_per_step_s": round(self.data_wait_s() / max(steps, 1), 6),
            "data_paths": self.paths,
            "eval_split": self.eval_split,
            # Each rank skips the unreadable pictures its shards hold; a picture may visit several ranks over epochs.
            "bad_files": len(union_over_ranks(set(self.bad_files()), ctx)),
        }


def is_photos(config: TrainConfig) -> bool:
    return config.data.dataset in PHOTO_DATASETS


def load_split(config: TrainConfig, split: str, log: Callable[[str], None] | None = None,
               progress: bool = False) -> ImageDataset:
    """Load one split of a built-in dataset (found by :func:`~densenet.data.load_dataset`'s lookup),
    resized once, with the configured subset. With ``progress``, a bar counts the pictures resized."""
    d = config.data
    if log:
        log(f"loading {d.dataset} {split} split" + (f" from {d.data_dir}" if d.data_dir else ""))
    with progress_bar(None, f"preparing the {split} split", progress, unit="img") as bar:
        ds = load_dataset(d.dataset, split, d.data_dir, download=d.download, image_size=d.resize, progress=bar.update)
    return _subset(ds, d.train_subset if split == "train" else d.test_subset, config.run.seed, f"--{split}-subset",
                   f"the {split} set")


def _subset(ds: ImageDataset, n: int | None, seed: int, flag: str, what: str) -> ImageDataset:
    """``ds``, or its seeded class-balanced draw of ``n`` images (``flag`` and ``what`` word the error)."""
    if n is None:
        return ds
    if n > len(ds):
        raise ConfigError(f"{flag} {n} is larger than {what} ({len(ds)} images)")
    return ds.subset(n, seed=seed)


def build_data(config: TrainConfig, ctx: DistContext, log: Callable[[str], None] | None = None,
               progress: bool = False) -> TrainData:
    """Load both splits and wrap them in loaders; under DDP each rank gets its own shard."""
    if is_photos(config):
        return _photo_data(config, ctx, log or (lambda _: None), progress)
    if config.data.multi_label:
        raise ConfigError(f"--multi-label needs a label file with several labels per picture (--dataset csv "
                          f"--labels FILE.csv); {config.data.dataset} has one class per image")
    train, test, eval_split = _train_and_eval(config, log, progress)
    run, d = config.run, config.data
    common = dict(device=ctx.device, normalize=d.normalize)
    targets = torch.as_tensor(train.labels, dtype=torch.int64)
    sampler = _sampler(targets, len(train.classes), config, ctx)
    train_loader = BatchLoader(train, run.batch_size, shuffle=True, seed=run.seed, sampler=sampler,
                               augment=augmentation(config), **common)
    # The test set is split into contiguous shards with no padding, so each image counts once.
    test_loader = BatchLoader(_shard(test, ctx), max(run.batch_size, 256), shuffle=False, **common)
    return TrainData(train_loader, test_loader, train.classes, train.channels, train.image_size, train.mean, train.std,
                     len(train), len(test), {"train": "memory", "test": "memory"}, targets, eval_split)


def _train_and_eval(config: TrainConfig, log: Callable[[str], None] | None,
                    progress: bool) -> tuple[ImageDataset, ImageDataset, str]:
    """The training split and the split evaluated each epoch: the test set, or with ``--val-split N`` a
    class-balanced draw of N training images held out (the same draw for every seed; the test set is not read)."""
    n = config.data.val_split
    if n is None:
        return load_split(config, "train", log, progress), load_split(config, "test", log, progress), "test"
    full = load_split(dataclasses.replace(config, data=dataclasses.replace(config.data, train_subset=None)),
                      "train", log, progress)
    if n >= len(full):
        raise ConfigError(f"--val-split {n} holds out at least the whole training set ({len(full)} images); "
                          f"choose a size below {len(full)}, such as {len(full) // 10}")
    train, val = full.split(n, seed=VAL_SEED)
    train = _subset(train, config.data.train_subset, config.run.seed, "--train-subset",
                    f"the training images left after --val-split {n}")
    if log:
        log(f"validation: {len(val)} training images held out and evaluated each epoch; the test set is not read")
    return train, val, "validation"


def _sampler(targets: torch.Tensor, num_classes: int, config: TrainConfig,
             ctx: DistContext) -> DistributedSampler | BalancedSampler:
    """The training order: --balanced-sampler's class-balanced draw, else a shuffle. Both shard alike: epoch e's
    order comes from (seed, e) and rank r takes every world_size-th index, so two ranks with batch b see exactly
    the batches of one process with 2b."""
    if config.data.balanced_sampler:
        return BalancedSampler(targets, num_classes, seed=config.run.seed, num_replicas=ctx.world_size,
                               rank=ctx.rank)
    return DistributedSampler(range(len(targets)), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                              seed=config.run.seed, drop_last=False)


def augmentation(config: TrainConfig) -> Any:
    """The batch augmentation of a built-in dataset the config asks for (``None`` when off)."""
    from densenet.data.loader import Augment

    d = config.data
    if not (d.random_crop_padding or d.hflip or d.random_erasing or d.augment):
        return None
    return Augment(crop_padding=d.random_crop_padding, hflip=0.5 if d.hflip else 0.0, policy=augment_policy(config),
                   erasing=d.random_erasing)


def augment_policy(config: TrainConfig) -> RandAugment | None:
    """The ``--augment`` policy (RandAugment or TrivialAugment) of a run, or ``None``."""
    d = config.data
    return RandAugment(d.augment, d.ra_magnitude, d.ra_ops) if d.augment else None


def _shard(ds: ImageDataset, ctx: DistContext) -> ImageDataset:
    if not ctx.enabled:
        return ds
    lo, hi = _shard_range(len(ds), ctx)
    return dataclasses.replace(ds, images=ds.images[lo:hi], labels=ds.labels[lo:hi])


def _shard_range(n: int, ctx: DistContext) -> tuple[int, int]:
    return n * ctx.rank // ctx.world_size, n * (ctx.rank + 1) // ctx.world_size


def photo_files(config: TrainConfig, split: str) -> ImageList:
    """One split of the configured photo collection as files and labels, with the configured subset."""
    d = config.data
    if not d.data_dir:
        raise ConfigError(f"--dataset {d.dataset} needs --data-dir pointing at the pictures")
    if d.dataset == CSV:
        files = read_label_file(d.data_dir, d.labels, split, d.no_finding)
    else:
        files = list_image_folder(d.data_dir, split, d.labels)
    n = d.train_subset if split == "train" else d.test_subset
    if n is not None:
        if n > len(files):
            raise ConfigError(f"--{split}-subset {n} is larger than the {split} set ({len(files)} pictures)")
        generator = torch.Generator().manual_seed(config.run.seed)
        files = files.select(torch.randperm(len(files), generator=generator)[:n].sort().values)
    return _as_task(files, config)


def _as_task(files: ImageList, config: TrainConfig) -> ImageList:
    """The files with the targets the run trains on: --multi-label turns one label per picture into one-hot rows;
    --no-multi-label refuses a file that gives several."""
    wanted = config.data.multi_label
    if wanted is None or wanted == files.multilabel:
        return files
    if not wanted:
        raise ConfigError(f"{files.name} gives pictures several labels each, and --no-multi-label asks for one per "
                          "picture: drop --no-multi-label, or give each picture one `label`")
    one_hot = torch.nn.functional.one_hot(files.labels, len(files.classes)).float()
    return ImageList(files.paths, one_hot, files.classes, files.name)


def photo_transforms(config: TrainConfig) -> tuple[TrainTransform, EvalTransform]:
    """The training and evaluation transforms of a photo collection."""
    d = config.data
    if d.resize is None:
        raise ConfigError(f"--dataset {d.dataset} needs --resize, the side of the square the network sees (e.g. 224)")
    hflip = 0.5 if d.hflip is None or d.hflip else 0.0
    train = TrainTransform(d.resize, (d.rrc_scale, 1.0), hflip=hflip, color_jitter=d.color_jitter, lighting=d.lighting,
                           interpolation=d.interpolation, keep_aspect=d.keep_aspect, policy=augment_policy(config))
    test = EvalTransform(d.resize, d.crop_pct if d.keep_aspect else 1.0, d.interpolation, keep_aspect=d.keep_aspect)
    return train, test


def memory_budget(processes: int = 1) -> int | None:
    """Bytes a photo split may take in memory: ``$DENSENET_MEMORY_BUDGET``, else a quarter of what is available,
    shared by ``processes`` (the torchrun ranks on this machine, each of which holds its own copy)."""
    text = os.environ.get(BUDGET_ENV)
    if text:
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        try:
            scale = units.get(text[-1].upper(), 1)
            return int(float(text[:-1] if text[-1].upper() in units else text) * scale)
        except ValueError:
            raise ConfigError(f"${BUDGET_ENV} must be a number of bytes (K, M, G suffixes allowed), "
                              f"got {text!r}") from None
    have = available_memory()
    return None if have is None else int(MEMORY_FRACTION * have / processes)


def _local_processes(ctx: DistContext) -> int:
    """How many processes of this run share this machine's memory (torchrun sets ``LOCAL_WORLD_SIZE``)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if ctx.enabled else 1


def _choose_path(config: TrainConfig, dataset: PhotoDataset, split: str, ctx: DistContext) -> tuple[bool, str]:
    """(stream?, why) for one photo split."""
    processes = _local_processes(ctx)
    need, budget = dataset.decoded_bytes(), memory_budget(processes)
    size = f"{len(dataset):,} pictures need about {need / 2**20:,.1f} MiB decoded"
    if config.data.stream:
        return True, f"--stream ({size})"
    if config.data.stream is False:
        have = available_memory()
        if have is not None and need * processes > 0.8 * have:
            shared = f" for each of its {processes} processes" if processes > 1 else ""
            raise DataError(f"{config.data.data_dir}: the {split} split's {size}, and this machine has "
                            f"{have / 2**30:.1f} GiB available{shared}. --no-stream holds it in memory: leave out "
                            "--no-stream to stream it from disk, choose a smaller --resize, or train on part of it")
        return False, f"--no-stream ({size})"
    if budget is None or need <= budget:
        limit = "no memory limit is known" if budget is None else f"within the budget of {budget / 2**20:,.0f} MiB"
        return False, f"{size}, {limit}"
    return True, f"{size}, more than the in-memory budget of {budget / 2**20:,.0f} MiB"


def _photo_split(config: TrainConfig, split: str, ctx: DistContext, log: Callable[[str], None],
                 progress: bool, evaluation: bool = False) -> tuple[PhotoDataset, bool]:
    """One photo split as a dataset (this rank's shard of the test split), in memory or to be streamed; with
    ``evaluation`` the training split too goes through the evaluation transform (no random crops or flips)."""
    d = config.data
    files = photo_files(config, split)
    if split == "test" and ctx.enabled:  # contiguous shards, no padding: each picture counts once
        lo, hi = _shard_range(len(files), ctx)
        files = files.select(torch.arange(lo, hi))
    train_tf, test_tf = photo_transforms(config)
    _check_batch_fits(config, split)
    transform = train_tf if split == "train" and not evaluation else test_tf
    dataset = PhotoDataset(files, transform, channels=3, seed=config.run.seed)
    if d.strict:
        _check_all(dataset, split, progress)
    elif split == "train" and not files.multilabel:
        _check_classes(dataset)
    stream, why = _choose_path(config, dataset, split, ctx)
    log(f"data: {'streaming' if stream else 'holding in memory'} the {split} split of {files.name}: {why}")
    if not stream:
        with progress_bar(len(dataset), f"decoding the {split} split", progress, unit="img") as bar:
            dataset.load_into_memory(bar.update)
    return dataset, stream


def _check_batch_fits(config: TrainConfig, split: str) -> None:
    """Refuse, before any picture is decoded, a crop size at which one batch cannot fit in memory."""
    size, batch = config.data.resize or 0, config.run.batch_size
    batch = batch if split == "train" else max(batch, 256)
    need, have = batch * 3 * size * size * 5, available_memory()  # uint8 pictures plus their float32 copy
    if have is not None and need > 0.8 * have:
        raise DataError(f"one {split} batch of {batch} pictures at {size}x{size} needs {need / 2**30:,.1f} GiB "
                        f"(the pictures and their float32 copy), and this machine has {have / 2**30:.1f} GiB "
                        "available: choose a smaller --resize or --batch-size")


def _check_classes(dataset: PhotoDataset) -> None:
    """Every class needs a readable training picture: decode each class's pictures until one reads (one
    decode per class, unless a class holds only unreadable ones, which would silently train without it)."""
    from densenet.data.photos import decode

    files = dataset.files
    for label, name in enumerate(files.classes):
        members = (files.labels == label).nonzero().flatten().tolist()
        first_error = None
        for i in members:
            try:
                decode(files.paths[i], dataset.channels, dataset.transform.decode_size())
                break
            except DataError as exc:
                first_error = first_error or str(exc)
        else:
            why = f"none of its {len(members)} can be read; the first: {first_error}" if members else "it has none"
            raise DataError(f"{files.name}: class {name!r} has no readable training picture ({why}). Add readable "
                            "pictures to it, or remove the class.")


def _check_all(dataset: PhotoDataset, split: str, progress: bool) -> None:
    """--strict: decode every picture now and stop at the first that cannot be read."""
    from densenet.data.photos import decode

    with progress_bar(len(dataset), f"checking the {split} split", progress, unit="img") as bar:
        for path in dataset.files.paths:
            try:
                decode(path, dataset.channels)
            except DataError as exc:
                raise DataError(f"--strict: {exc} Remove or replace it, or leave out --strict to skip such "
                                "pictures.") from None
            bar.update(1)


def _photo_data(config: TrainConfig, ctx: DistContext, log: Callable[[str], None], progress: bool) -> TrainData:
    run, d = config.run, config.data
    train, train_streams = _photo_split(config, "train", ctx, log, progress)
    test, test_streams = _photo_split(config, "test", ctx, log, progress)
    if train.files.classes != test.files.classes:
        where = "label names in the label file" if d.dataset == CSV else "class folders"
        raise DataError(f"{d.labels if d.dataset == CSV else d.data_dir}: the train split has classes "
                        f"{train.files.classes} but the test split has {test.files.classes}; both splits need the "
                        f"same {where}.")
    targets = train.files.labels
    if targets.dim() == 2 and (targets.sum(0) == 0).any():
        empty = [c for c, n in zip(train.files.classes, targets.sum(0).tolist()) if n == 0]
        one = len(empty) == 1
        log(f"warning: {', '.join(empty)} {'has' if one else 'have'} no positive picture in the train split: the "
            f"network cannot learn {'it' if one else 'them'}, and {'its' if one else 'their'} AUROC is reported as "
            "undefined where the test split has no positive either")
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if d.normalize else ((0.0,) * 3, (1.0,) * 3)
    workers = default_workers() if d.workers is None else d.workers
    common = dict(mean=mean, std=std, device=ctx.device, workers=workers, warn=log)
    train_loader = PhotoLoader(train, run.batch_size, shuffle=True, seed=run.seed,
                               sampler=_sampler(targets, len(train.files.classes), config, ctx), **common)
    test_loader = PhotoLoader(test, max(run.batch_size, 256), **common)
    size = train.transform.size
    return TrainData(train_loader, test_loader, train.files.classes, 3, size, IMAGENET_MEAN, IMAGENET_STD,
                     len(train), len(test), {"train": "stream" if train_streams else "memory",
                                             "test": "stream" if test_streams else "memory"}, targets)


def evaluation_loader(config: TrainConfig, mean: list[float], std: list[float], batch_size: int = 256,
                      log: Callable[[str], None] | None = None, split: str = "test") -> BatchLoader | PhotoLoader:
    """A split as ``densenet evaluate`` sees the test split, on the CPU and in order: prepared exactly as in
    training, without augmentation (``mean``/``std`` are the model card's, zeros and ones when the run did not
    normalize). ``split="train"`` is what int8 exports calibrate on; ``"validation"`` is a ``--val-split`` run's
    held-out images, the very draw it evaluated each epoch."""
    if not is_photos(config):
        ds = _train_and_eval(config, None, False)[1] if split == "validation" else load_split(config, split)
        return BatchLoader(ds, batch_size, shuffle=False, device=torch.device("cpu"), normalize=config.data.normalize)
    dataset, _ = _photo_split(config, split, DistContext(), log or (lambda _: None), progress=False, evaluation=True)
    workers = default_workers() if config.data.workers is None else config.data.workers
    return PhotoLoader(dataset, batch_size, mean=mean, std=std, workers=workers, warn=log)

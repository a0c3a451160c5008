"""Photo collections: pictures decoded per sample in DataLoader worker processes, or once into memory.

A :class:`PhotoDataset` turns one :class:`~densenet.data.catalogue.ImageList` into uint8 pictures
through a :class:`~densenet.data.photos.TrainTransform` or
:class:`~densenet.data.photos.EvalTransform`. It either streams (decodes from disk on every visit)
or holds the decoded pictures in memory (:meth:`PhotoDataset.load_into_memory`); both give the
same pixels, since JPEGs are drafted to a size that depends only on the picture and the transform.

A :class:`PhotoLoader` batches it with the same epoch plan as the in-memory
:class:`~densenet.data.loader.BatchLoader` (order from ``(seed, epoch)`` or a
``DistributedSampler``). Each picture's augmentation is seeded by ``(seed, epoch, index)``
(:func:`~densenet.data.photos.sample_seed`), so batches do not depend on the number of workers,
and a run resumed mid-epoch sees exactly the batches it would have seen.

A picture that cannot be decoded is skipped, counted and named once in a warning; the batch is
one picture shorter.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from densenet.data.catalogue import ImageList
from densenet.data.loader import EpochPlan, Sampler
from densenet.data.photos import EvalTransform, TrainTransform, decode, drafted_size, sample_seed, to_tensor
from densenet.data.transforms import normalize as normalize_batch
from densenet.errors import DataError

__all__ = ["PhotoDataset", "PhotoLoader", "default_workers"]

Transform = TrainTransform | EvalTransform


def default_workers() -> int:
    """min(CPU cores this process may use, 8): the ``--workers`` default."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return min(cores, 8)


@dataclass
class Sample:
    """One visited picture: its pixels (None when unreadable), target and index."""

    x: torch.Tensor | None
    y: torch.Tensor
    index: int
    error: str | None = None


class PhotoDataset(Dataset):
    """The pictures of an :class:`ImageList` through one transform; items are keyed ``(index, epoch)``.

    Args:
        files: the split's pictures and labels.
        transform: a :class:`TrainTransform` (random, seeded per picture and epoch) or an
            :class:`EvalTransform` (deterministic).
        channels: 1 (grayscale) or 3 (RGB).
        seed: the run's seed, part of every picture's augmentation seed.
    """

    def __init__(self, files: ImageList, transform: Transform, channels: int, seed: int = 0) -> None:
        self.files = files
        self.transform = transform
        self.channels = channels
        self.seed = seed
        # Held in memory: per picture its decoded pixels (train: before the random crop; eval: the
        # final crop), or the error that made it unreadable.
        self.memory: list[torch.Tensor | str] | None = None

    @property
    def random(self) -> bool:
        return isinstance(self.transform, TrainTransform)

    def __len__(self) -> int:
        return len(self.files)

    def _decode(self, index: int) -> Image.Image:
        return decode(self.files.paths[index], self.channels, self.transform.decode_size())

    def load_into_memory(self, progress: Callable[[int], object] | None = None) -> None:
        """Decode every picture once; later visits only transform (train) or copy (eval) them."""
        memory: list[torch.Tensor | str] = []
        for i in range(len(self)):
            try:
                img = self._decode(i)
                memory.append(to_tensor(img) if self.random else self.transform(img))
            except DataError as exc:
                memory.append(str(exc))
            if progress is not None:
                progress(1)
        self.memory = memory

    def __getitem__(self, key: tuple[int, int]) -> Sample:
        index, epoch = key
        y = self.files.labels[index]
        try:
            if self.memory is not None:
                held = self.memory[index]
                if isinstance(held, str):
                    raise DataError(held)
                if not self.random:
                    return Sample(held, y, index)
                img = Image.fromarray(held.permute(1, 2, 0).squeeze(2).numpy())
            else:
                img = self._decode(index)
        except DataError as exc:
            return Sample(None, y, index, str(exc))
        if not self.random:
            return Sample(self.transform(img), y, index)
        generator = torch.Generator().manual_seed(sample_seed(self.seed, epoch, index))
        return Sample(self.transform(img, generator), y, index)

    def decoded_bytes(self, probe: int = 32) -> int:
        """An estimate of the bytes :meth:`load_into_memory` would hold, from the headers of a few pictures."""
        if not self.random:
            return len(self) * self.channels * self.transform.size ** 2
        step = max(1, len(self) // probe)
        sizes = [_decoded_pixels(self.files.paths[i], self.transform.decode_size()) for i in range(0, len(self), step)]
        return int(sum(sizes) / max(len(sizes), 1) * len(self) * self.channels)


def _decoded_pixels(path: os.PathLike[str] | str, short_side: int | None) -> int:
    """Pixels of a picture once decoded (with JPEG draft), from its header alone; 0 if unreadable."""
    try:
        with Image.open(path) as img:
            w, h = drafted_size(*img.size, short_side) if img.format == "JPEG" else img.size
            return w * h
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return 0


@dataclass
class Batch:
    """What the workers hand over: the stacked good pictures, their targets, and the unreadable ones."""

    x: torch.Tensor
    y: torch.Tensor
    bad: list[tuple[int, str]] = field(default_factory=list)

    def pin_memory(self) -> Batch:  # called by DataLoader(pin_memory=True)
        return Batch(self.x.pin_memory(), self.y.pin_memory(), self.bad)


def collate(samples: Sequence[Sample]) -> Batch:
    good = [s for s in samples if s.x is not None]
    bad = [(s.index, s.error or "unreadable") for s in samples if s.x is None]
    if not good:
        return Batch(torch.empty(0, dtype=torch.uint8), torch.empty(0), bad)
    return Batch(torch.stack([s.x for s in good]), torch.stack([s.y for s in good]), bad)  # (B, C, S, S)


class _Plan:
    """The DataLoader's batch sampler: the (index, epoch) keys of the batches of the current pass.

    The loader fills it before each pass; with persistent workers the DataLoader re-reads it at
    every ``iter``, so one pool of workers serves every epoch.
    """

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _EndWithParent:
    """The decoding workers' ``worker_init_fn``: a worker ends when the loading process is gone.

    torch's worker notices a dead parent by comparing ``os.getppid()`` with the parent it read when its
    loop began, every 5 seconds. A parent killed (SIGKILL) between the fork and that read is never
    noticed, and under forkserver (Python 3.14's default on Linux) the parent is the fork server, which
    outlives the loading process: either way the worker waits on its queue forever, an orphan.

    Here each worker opens a pidfd on the loading process itself and a daemon thread exits the worker as
    soon as that process has ended, whatever the start method and whichever thread started the workers;
    a loading process already gone when the worker starts ends it at once. Without pidfds (not Linux, or
    a kernel older than 5.3) torch's own check is all there is.
    """

    def __init__(self) -> None:
        self.note_start()

    def note_start(self) -> None:
        """Record, just before ``iter(loader)`` starts workers, the process that will read their batches."""
        self.parent = os.getpid()

    def __call__(self, worker_id: int) -> None:
        try:
            pidfd = os.pidfd_open(self.parent)
        except ProcessLookupError:
            os._exit(0)  # the loading process has gone (and been reaped): nobody reads our batches
        except (AttributeError, OSError):
            return  # no pidfds here
        threading.Thread(target=_exit_when_ended, args=(pidfd,), name="densenet-parent-watch", daemon=True).start()


def _exit_when_ended(pidfd: int) -> None:
    """Block until the process behind ``pidfd`` ends (the descriptor turns readable), then end this one."""
    select.select([pidfd], [], [])
    os._exit(0)


class PhotoLoader(EpochPlan):
    """Iterate over a :class:`PhotoDataset` in ``(x, y)`` batches on a device, decoding in workers.

    ``x`` is float (B, C, H, W) in ``dtype``, scaled to [0, 1] and standardized with ``mean`` and
    ``std``; ``y`` is the targets (int64 classes, or float rows for multi-label data).

    Args:
        dataset: the pictures.
        batch_size: pictures per batch.
        mean, std: per-channel statistics used to standardize (zeros and ones to only scale).
        shuffle, seed, drop_last, sampler: the epoch plan, as in :class:`~densenet.data.loader.BatchLoader`.
        device: where batches go; on CUDA, batches are pinned and copied without blocking.
        dtype, channels_last: the float type and memory format of ``x``.
        workers: decoding processes (0 decodes in this process); persistent, with prefetch.
        warn: called once with a message for each unreadable picture.
    """

    def __init__(self, dataset: PhotoDataset, batch_size: int, *, mean: Sequence[float], std: Sequence[float],
                 shuffle: bool = False, seed: int = 0, drop_last: bool = False, sampler: Sampler | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, workers: int = 0, warn: Callable[[str], Any] | None = None) -> None:
        super().__init__(batch_size, shuffle, seed, drop_last, sampler)
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.dataset = dataset
        self.mean, self.std = tuple(mean), tuple(std)
        self.device = torch.device(device)
        self.dtype = dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.workers = workers
        self.warn = warn
        self.bad_files: dict[str, str] = {}  # path -> why it was skipped
        self._pin = self.device.type == "cuda"
        self._plan = _Plan()
        self._end_with_parent = _EndWithParent()
        # DataLoader draws its workers' base seed at every iter() (once, with persistent workers) from
        # `generator`, by default the global torch RNG that dropout uses: a private one keeps the run's
        # random stream independent of the worker count and of where a resumed run restarted.
        self._loader = DataLoader(dataset, batch_sampler=self._plan, num_workers=workers, collate_fn=collate,
                                  pin_memory=self._pin, persistent_workers=workers > 0,
                                  prefetch_factor=2 if workers > 0 else None,
                                  generator=torch.Generator().manual_seed(seed),
                                  worker_init_fn=self._end_with_parent if workers > 0 else None)

    def _dataset_len(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, start, batches = self._begin()
        self._plan.batches = [[(int(i), epoch) for i in index] for index in batches[start:]]
        self._end_with_parent.note_start()
        it = iter(self._loader)
        for batch in range(start, len(batches)):
            began = time.perf_counter()
            got: Batch = next(it)
            self.wait_s += time.perf_counter() - began
            self.batches_done = batch + 1
            self._note_bad(got.bad)
            if got.x.numel() == 0:
                continue  # every picture of this batch was unreadable
            x = got.x.to(self.device, non_blocking=self._pin)
            y = got.y.to(self.device, non_blocking=self._pin)
            yield normalize_batch(x, self.mean, self.std, self.dtype, self.memory_format), y
        self._finish(epoch)

    def _note_bad(self, bad: list[tuple[int, str]]) -> None:
        for index, error in bad:
            path = str(self.dataset.files.paths[index])
            if path not in self.bad_files:
                self.bad_files[path] = error
                if self.warn is not None:
                    self.warn(f"warning: skipping an unreadable picture: {error}")

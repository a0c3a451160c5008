"""``densenet data bench``: how many training pictures per second the photo loader delivers.

Each worker count streams batches of the training split (decode with JPEG draft,
RandomResizedCrop, flip, collate, float conversion and normalization: what a training step
receives) and reports the median images/s over its timed batches. The worker counts run one at a
time (another count's prefetching workers would compete for the cores), in rounds whose order
alternates, so slow drifts of the machine hit all of them alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from densenet.data.datasets import IMAGENET_MEAN, IMAGENET_STD
from densenet.data.images import list_image_folder
from densenet.data.photos import TrainTransform
from densenet.data.stream import PhotoDataset, PhotoLoader
from densenet.errors import ConfigError

__all__ = ["bench_loader"]


def bench_loader(data_dir: str, resize: int, workers: Sequence[int], batch_size: int = 64, batches: int = 10,
                 warmup: int = 2, rounds: int = 2, rrc_scale: float = 0.08,
                 log: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Median training images/s of the photo loader over the train split of ``data_dir`` per worker count.

    Args:
        data_dir: an image folder (class subfolders, optionally under train/).
        resize: the crop side, e.g. 224.
        workers: the worker counts to compare, e.g. (0, 1, 2).
        batch_size: pictures per batch.
        batches: timed batches per worker count and round (after ``warmup`` untimed ones, which start
            the workers).
        rounds: how many times each worker count is measured, in alternating order.
        rrc_scale: RandomResizedCrop's smallest area fraction.
        log: progress messages.

    Returns:
        ``{"rows": [{"workers", "images_per_s", "median_batch_s"}], ...}`` plus the settings.
    """
    if not workers or min(workers) < 0:
        raise ConfigError(f"--workers needs one or more counts >= 0, got {list(workers)}")
    files = list_image_folder(data_dir, "train")
    needed = (warmup + batches) * batch_size
    if len(files) < needed:
        raise ConfigError(f"{data_dir}: {len(files)} training pictures, but {warmup} + {batches} batches of "
                          f"{batch_size} need {needed}; lower --batches or --batch-size")
    dataset = PhotoDataset(files, TrainTransform(resize, (rrc_scale, 1.0)), channels=3)
    times: dict[int, list[float]] = {w: [] for w in workers}
    for round_ in range(rounds):
        for w in (workers if round_ % 2 == 0 else list(reversed(workers))):
            # Only this count's processes run while it is timed: prefetching workers of another loader
            # would steal the cores it is measured on.
            loader = PhotoLoader(dataset, batch_size, mean=IMAGENET_MEAN, std=IMAGENET_STD, shuffle=True,
                                 seed=round_, workers=w)
            loader_iter = iter(loader)
            for step in range(warmup + batches):
                began = time.perf_counter()
                next(loader_iter)
                if step >= warmup:
                    times[w].append(time.perf_counter() - began)
            del loader_iter, loader
            if log is not None:
                log(f"round {round_ + 1}/{rounds}: {w} workers done")
    # four significant digits each, so images/s = batch / median batch time holds to 0.1% however fast a batch is
    rows = [{"workers": w, "median_batch_s": float(f"{statistics.median(t):.4g}"),
             "images_per_s": float(f"{batch_size / statistics.median(t):.4g}")} for w, t in times.items()]
    return {"data_dir": str(data_dir), "pictures": len(files), "resize": resize, "batch_size": batch_size,
            "batches": batches, "warmup": warmup, "rounds": rounds, "rrc_scale": rrc_scale,
            "threads": torch.get_num_threads(),
            "transform": "decode (JPEG draft) + RandomResizedCrop + flip + collate + normalize", "rows": rows}


def to_text(doc: dict[str, Any]) -> str:
    lines = [f"{doc['pictures']} pictures, {doc['resize']}px crops, batches of {doc['batch_size']}:"]
    lines += [f"  {r['workers']} workers: {r['images_per_s']:.1f} images/s (median batch {r['median_batch_s']:.3f} s)"
              for r in doc["rows"]]
    return "\n".join(lines)

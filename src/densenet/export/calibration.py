"""The run's own pictures for int8 calibration and for checking reduced-precision exports.

Both come from the run's dataset (its ``config.json``) through the run's own preprocessing (its
``model.json``), by :func:`densenet.engine.evaluate.run_loader`, the loader ``densenet evaluate`` uses:
calibration draws N *training* pictures (seeded and class-balanced, the evaluation transform, no
augmentation); the check reads up to N *test* pictures.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from torch import Tensor

from densenet.errors import ConfigError

DEFAULT_CALIBRATION = 300  # training pictures NNCF and ONNX Runtime calibrate int8 ranges on
CALIBRATION_BATCH = 32


def _loader(run_dir: str | Path, split: str, pictures: int, data_dir: str | None,
            batch_size: int) -> Iterable[tuple[Tensor, Tensor]]:
    from densenet.engine.evaluate import run_loader

    try:
        return run_loader(run_dir, split, data_dir, pictures, batch_size)
    except ConfigError as exc:
        if "is larger than" not in str(exc):
            raise
        return run_loader(run_dir, split, data_dir, None, batch_size)  # a split smaller than N: all of it


def calibration_batches(run_dir: str | Path, pictures: int = DEFAULT_CALIBRATION, data_dir: str | None = None,
                        batch_size: int = CALIBRATION_BATCH) -> list[Tensor]:
    """Float ``(B, C, H, W)`` batches of ``pictures`` training pictures (all of them if the split is smaller)."""
    return [x for x, _ in _loader(run_dir, "train", pictures, data_dir, batch_size)]


def check_batches(run_dir: str | Path, pictures: int, data_dir: str | None = None,
                 batch_size: int = 100) -> list[tuple[Tensor, Tensor]]:
    """``(x, y)`` batches of up to ``pictures`` test pictures, as ``densenet evaluate`` prepares them."""
    batches, seen = [], 0
    for x, y in _loader(run_dir, "test", pictures, data_dir, batch_size):
        batches.append((x[: pictures - seen], y[: pictures - seen]))
        seen += len(batches[-1][0])
        if seen >= pictures:
            break
    return batches


__all__ = ["CALIBRATION_BATCH", "DEFAULT_CALIBRATION", "calibration_batches", "check_batches"]

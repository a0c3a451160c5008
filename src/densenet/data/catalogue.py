"""A split of a photo collection as a list of files and their labels, with nothing decoded yet.

Image folders (:func:`densenet.data.images.list_image_folder`) and label files
(:mod:`densenet.data.labels`) both produce an :class:`ImageList`; the streaming and in-memory photo
pipelines (:mod:`densenet.data.stream`) take it from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from densenet.errors import DataError

__all__ = ["ImageList"]


@dataclass
class ImageList:
    """The files of one split and their targets.

    ``labels`` is int64 (N,) class indices for single-label data, or float32 (N, C) 0/1 rows for
    multi-label data (one column per class, in ``classes`` order).
    """

    paths: list[Path]  # absolute paths, one per picture
    labels: torch.Tensor  # (N,) int64 or (N, C) float32 in {0, 1}
    classes: list[str]
    name: str  # where the list came from, for messages: a folder or a label file

    def __post_init__(self) -> None:
        n = len(self.paths)
        if self.labels.shape[:1] != (n,):
            raise DataError(f"{self.name}: {n} pictures but {self.labels.shape[0]} labels")
        if self.labels.dim() == 1 and self.labels.dtype != torch.int64:
            raise DataError(f"{self.name}: single-label targets must be int64, got {self.labels.dtype}")
        if self.labels.dim() == 2 and (self.labels.dtype != torch.float32 or self.labels.shape[1] != len(self.classes)):
            raise DataError(f"{self.name}: multi-label targets must be float32 (N, {len(self.classes)}), "
                            f"got {self.labels.dtype} {tuple(self.labels.shape)}")
        if self.labels.dim() not in (1, 2):
            raise DataError(f"{self.name}: labels must be (N,) or (N, C), got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def multilabel(self) -> bool:
        return self.labels.dim() == 2

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def select(self, index: torch.Tensor) -> ImageList:
        """The pictures at ``index`` (int64), in that order."""
        return ImageList([self.paths[int(i)] for i in index], self.labels[index], self.classes, self.name)

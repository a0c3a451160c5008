"""In-memory datasets: uint8 images plus labels, loaded from any supported source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from densenet.data.cifar import read_cifar
from densenet.data.idx import read_idx
from densenet.data.images import open_image, preprocess_image, read_image_folder
from densenet.data.sources import DATASETS, cifar_source, find_file, get_spec, locate_dataset
from densenet.data.transforms import convert_channels, resize_images
from densenet.errors import ConfigError, DataError

__all__ = [
    "IMAGE_FOLDER",
    "ImageDataset",
    "dataset_names",
    "load_dataset",
    "load_image_folder",
    "open_image",
    "preprocess_image",
]

IMAGE_FOLDER = "image-folder"
SPLITS = ("train", "test")
# Arbitrary photo folders get the ImageNet statistics (what pretrained torchvision models use),
# so train and test splits share one normalization without scanning the train split twice.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class ImageDataset:
    """A whole split held in memory as uint8 pixels; conversion to float happens per batch."""

    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64, index into classes
    classes: list[str]
    mean: tuple[float, ...]  # per channel, pixels in [0, 1]
    std: tuple[float, ...]
    name: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"{self.name}: images must be uint8 (N, C, H, W), got {self.images.dtype} "
                            f"{tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise DataError(f"{self.name}: {self.images.shape[0]} images need int64 labels of shape "
                            f"({self.images.shape[0]},), got {self.labels.dtype} {tuple(self.labels.shape)}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise DataError(f"{self.name}: mean/std need {self.channels} values, got {self.mean} / {self.std}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, n: int, seed: int = 0) -> ImageDataset:
        """A deterministic, class-balanced subset of ``n`` examples.

        Examples are drawn in a random order fixed by ``seed``, taking classes round-robin, so
        any ``n`` gets as even a class mix as the data allows. The chosen examples keep their
        original order.

        Raises:
            ConfigError: ``n`` is not between 1 and ``len(self)``.
        """
        if not 1 <= n <= len(self):
            raise ConfigError(f"cannot take a subset of {n} examples from {self.name}, which has {len(self)}; "
                              f"choose a size between 1 and {len(self)}.")
        if n == len(self):
            return self
        return self._take(self._balanced_draw(n, seed))

    def split(self, n: int, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
        """Hold out a class-balanced draw of ``n`` examples: ``(the rest, the held-out n)``.

        The held-out part is exactly :meth:`subset` ``(n, seed)``; the two parts are disjoint and
        together hold every example once, each in its original order.

        Raises:
            ConfigError: ``n`` leaves no example on either side.
        """
        if not 1 <= n < len(self):
            raise ConfigError(f"cannot hold out {n} of the {len(self)} examples of {self.name}; "
                              f"choose a size between 1 and {len(self) - 1}.")
        held = self._balanced_draw(n, seed)
        keep = torch.ones(len(self), dtype=torch.bool)
        keep[held] = False
        return self._take(keep.nonzero().squeeze(1)), self._take(held)

    def _balanced_draw(self, n: int, seed: int) -> torch.Tensor:
        """The sorted indices of :meth:`subset`'s draw."""
        generator = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=generator)
        labels = self.labels[perm]
        # rank[i] = how many earlier examples in perm share perm[i]'s class; sorting by rank
        # interleaves the classes.
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=self.num_classes)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(labels)
        rank[order] = torch.arange(len(self)) - starts[labels[order]]
        return perm[torch.argsort(rank, stable=True)[:n]].sort().values

    def _take(self, index: torch.Tensor) -> ImageDataset:
        return replace(self, images=self.images[index], labels=self.labels[index])


def dataset_names() -> list[str]:
    """The names :func:`load_dataset` accepts."""
    return [*DATASETS, IMAGE_FOLDER]


def _load_idx(name: str, folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    spec = get_spec(name)
    paths = [find_file(folder, spec.files[f"{split}_{role}"]) for role in ("images", "labels")]
    assert paths[0] is not None and paths[1] is not None  # locate_dataset checked the folder
    images = read_idx(paths[0], expect_ndim=3)
    labels = read_idx(paths[1], expect_ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{paths[0]} holds {images.shape[0]} images but {paths[1]} holds {labels.shape[0]} labels; "
                        "the files do not belong together. Replace them with a matching set.")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype("int64"))  # (N, 1, H, W)


def _adapt(dataset: ImageDataset, image_size: int | None, channels: int | None,
           progress: Callable[[int], object] | None) -> ImageDataset:
    """Convert channels (like PIL's convert) then resize, the order ``preprocess_image`` uses."""
    if channels is not None and channels != dataset.channels:
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {channels}")
        mean, std = dataset.mean, dataset.std
        if channels == 3:
            mean, std = mean * 3, std * 3
        else:  # luma of the per-channel statistics: exact for the mean, an approximation for the std
            mean = (sum(w * m for w, m in zip(_LUMA, mean)),)
            std = (sum(w * s for w, s in zip(_LUMA, std)),)
        dataset = replace(dataset, images=convert_channels(dataset.images, channels), mean=mean, std=std)
    if image_size is not None and image_size != dataset.image_size:
        if image_size < 1:
            raise ConfigError(f"image_size must be positive, got {image_size}")
        dataset = replace(dataset, images=resize_images(dataset.images, image_size, progress))
    return dataset


def load_image_folder(root: str | Path, split: str, image_size: int, channels: int = 3,
                      progress: Callable[[int], object] | None = None) -> ImageDataset:
    """Load one split of a folder with one subfolder of images per class.

    See :func:`densenet.data.images.list_image_folder` for how splits are found. Every image
    goes through :func:`preprocess_image`, exactly as ``densenet predict`` does.

    Raises:
        DataError: missing folder, no classes, no images, or an unreadable image (named).
    """
    images, labels, classes = read_image_folder(root, split, image_size, channels, progress)
    mean, std = imagenet_stats(channels)
    return ImageDataset(images, labels, classes, mean, std, IMAGE_FOLDER)


def imagenet_stats(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's per-channel mean and std for RGB; for grayscale, their luma-weighted sums (what a gray
    picture converted from RGB has)."""
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return ((sum(w * m for w, m in zip(_LUMA, IMAGENET_MEAN)),) * channels,
            (sum(w * s for w, s in zip(_LUMA, IMAGENET_STD)),) * channels)


def load_dataset(
    name: str,
    split: str,
    root: str | Path | None = None,
    *,
    download: bool = False,
    image_size: int | None = None,
    channels: int | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[int], object] | None = None,
) -> ImageDataset:
    """Load one split of a dataset into memory as uint8 tensors.

    Args:
        name: ``fashion-mnist``, ``mnist``, ``cifar-10``, ``cifar-100`` or ``image-folder``.
        split: ``"train"`` or ``"test"``.
        root: the folder holding the dataset's files (``--data-dir``); searched for when None
            (see :func:`~densenet.data.sources.locate_dataset`). Required for ``image-folder``.
        download: allow downloading a registered dataset into the cache when no copy is found.
        image_size: resize every image to this height and width once, at load time.
        channels: 1 or 3 to convert grayscale <-> RGB; None keeps the dataset's own.
        cache_dir: the cache root, see :func:`~densenet.data.sources.locate_dataset`.
        progress: called with the number of images resized (or, for image folders, decoded) so far.

    Returns:
        The split with images (N, C, H, W) uint8 and labels (N,) int64.

    Raises:
        ConfigError: unknown name or split, or bad image_size/channels.
        DataError: files missing, corrupt, or inconsistent (subclasses say which).
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    if name == IMAGE_FOLDER:
        if root is None or image_size is None:
            raise ConfigError("the image-folder dataset needs a root folder (--data-dir) and an image size (--resize)")
        return load_image_folder(root, split, image_size, channels or 3, progress)
    spec = get_spec(name)
    folder = locate_dataset(name, root, download=download, cache_dir=cache_dir)
    if spec.cifar is not None:
        source = cifar_source(spec.cifar, folder)
        assert source is not None
        images_np, labels_np, classes = read_cifar(source, spec.cifar, split)
        images, labels = torch.from_numpy(images_np), torch.from_numpy(labels_np)
    else:
        images, labels = _load_idx(name, folder, split)
        classes = list(spec.classes)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
        raise DataError(f"{folder}: {spec.title} {split} labels fall outside 0..{len(classes) - 1}.")
    dataset = ImageDataset(images, labels, classes, spec.mean, spec.std, spec.name)
    return _adapt(dataset, image_size, channels, progress)

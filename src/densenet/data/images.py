"""Image files: opening, the one preprocessing used for training and prediction, and class folders."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from densenet.data.catalogue import ImageList
from densenet.data.photos import EvalTransform, convert_mode, open_image, to_tensor
from densenet.errors import DataError

__all__ = [
    "IMAGE_SUFFIXES", "check_fits_in_memory", "list_image_folder", "open_image", "preprocess_image",
    "read_image_folder",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
TEST_FRACTION = 0.2


def preprocess_image(img: Image.Image, channels: int, size: int | None) -> torch.Tensor:
    """Turn any PIL image into uint8 (channels, size, size) pixels, stretched to the square (the aspect ratio
    is not kept): the preprocessing of the built-in datasets and of run directories trained before the
    photo pipeline (:class:`~densenet.data.photos.EvalTransform` with ``keep_aspect=False``).

    Args:
        img: a PIL image of any mode (see :func:`~densenet.data.photos.convert_mode`).
        channels: 1 (grayscale) or 3 (RGB).
        size: the output height and width, or None to keep the image's size.

    Raises:
        DataError: the mode cannot be converted.
    """
    img = convert_mode(img, channels)
    return to_tensor(img) if size is None else EvalTransform(size, keep_aspect=False)(img)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _split_of(files: list[Path], split: str) -> list[Path]:
    """A stable 80/20 split of one class: order by a hash of the file name, the last 20% are test."""
    ranked = sorted(files, key=lambda p: (hashlib.md5(p.name.encode()).hexdigest(), p.name))
    # A class with two or more images always gets at least one test image.
    n_test = max(1, round(len(ranked) * TEST_FRACTION)) if len(ranked) >= 2 else 0
    chosen = ranked[: len(ranked) - n_test] if split == "train" else ranked[len(ranked) - n_test :]
    return sorted(chosen)


def list_image_folder(root: str | Path, split: str, labels_file: str | Path | None = None) -> ImageList:
    """The pictures and labels of one split of a class-per-subfolder image tree.

    If ``root`` has ``train/`` and ``test/`` (or ``val/``) subfolders, they hold the splits.
    Otherwise each class is split 80/20 by a hash of the file names (same files, same split).
    ImageNet's flat ``val/`` (pictures without class folders) takes its labels from ``labels_file``,
    or from ``LOC_val_solution.csv`` or ``val.csv`` beside it (see
    :func:`~densenet.data.labels.read_imagenet_val`). Files that are not pictures are ignored.

    Raises:
        DataError: the folder is missing, has no class subfolders, a class folder holds no pictures,
            or a split has no pictures.
    """
    root = Path(root).expanduser().resolve()
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist.")
    split_dirs = {"train": root / "train", "test": root / "test" if (root / "test").is_dir() else root / "val"}
    presplit = split_dirs["train"].is_dir() and split_dirs["test"].is_dir()
    base = split_dirs[split] if presplit else root
    classes = _class_folders(split_dirs["train"] if presplit else root)
    if presplit and split == "test" and not _class_folders(base):
        return _flat_val(root, base, classes, labels_file)
    paths: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (base / cls).rglob("*") if _is_image(p))
        if not files and (split == "train" or not presplit):
            raise DataError(f"class folder {base / cls} holds no {'/'.join(IMAGE_SUFFIXES)} pictures; add some or "
                            "remove the folder.")
        chosen = files if presplit else _split_of(files, split)
        paths += chosen
        labels += [label] * len(chosen)
    if not paths:
        raise DataError(f"{base}: no {'/'.join(IMAGE_SUFFIXES)} images found for the {split} split.")
    return ImageList(paths, torch.tensor(labels, dtype=torch.int64), classes, str(base))


def _class_folders(base: Path) -> list[str]:
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes and base.name != "val":
        raise DataError(f"{base} has no class subfolders; put each class's images in a folder named after it.")
    return classes


def _flat_val(root: Path, val: Path, classes: list[str], labels_file: str | Path | None) -> ImageList:
    from densenet.data.labels import read_imagenet_val

    candidates = [Path(labels_file)] if labels_file else [root / "LOC_val_solution.csv", root / "val.csv",
                                                          val / "LOC_val_solution.csv", val / "val.csv"]
    for candidate in candidates:
        if candidate.is_file():
            return read_imagenet_val(val, candidate, classes)
    raise DataError(f"{val} holds pictures without class folders, and no label file names their classes: put "
                    f"LOC_val_solution.csv (ImageNet's devkit) or a path,label val.csv in {root}, or pass --labels.")


def read_image_folder(
    root: str | Path, split: str, image_size: int, channels: int, progress: Callable[[int], object] | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Decode one split of an image folder into uint8 images (N, C, S, S) stretched to the square,
    int64 labels and class names.

    An unreadable file raises :class:`DataError` naming it, rather than being skipped, so that a
    dataset never silently shrinks. So does a split too big to hold in memory, before any decoding.
    ``progress`` is called with 1 after each decoded picture.
    """
    files = list_image_folder(root, split)
    check_fits_in_memory(root, split, len(files), channels, image_size)
    images = torch.empty((len(files), channels, image_size, image_size), dtype=torch.uint8)
    for i, path in enumerate(files.paths):
        images[i] = preprocess_image(open_image(path), channels, image_size)
        if progress is not None:
            progress(1)
    return images, files.labels, files.classes


def available_memory() -> int | None:
    """Bytes of memory the system can still give (Linux ``MemAvailable``), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits_in_memory(root: str | Path, split: str, count: int, channels: int, size: int) -> None:
    """Refuse, before decoding, a split whose decoded pictures would not fit in 80% of the available memory."""
    need, have = count * channels * size * size, available_memory()
    if have is not None and need > 0.8 * have:
        raise DataError(f"{root}: the {split} split has {count:,} pictures, which need {need / 2**30:.1f} GiB in "
                        f"memory at {size}x{size} with {channels} channel(s), and this machine has "
                        f"{have / 2**30:.1f} GiB available. --no-stream holds a dataset in memory: "
                        "stream it instead (leave out --no-stream), choose a smaller --resize, or train on part of "
                        "the folder")

"""Image files: opening, the one preprocessing used for training and prediction, and class folders."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from densenet.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "list_image_folder", "open_image", "preprocess_image", "read_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
TEST_FRACTION = 0.2


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image file, applying its EXIF orientation.

    Raises:
        DataError: the file is missing or is not a readable image.
    """
    try:
        with Image.open(path) as img:
            img.load()
            # Phones store rotation in EXIF; honour it so the pixels match what viewers show.
            return ImageOps.exif_transpose(img)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc}). Is it a valid PNG/JPEG/BMP file?") from None


def _to_8bit(img: Image.Image) -> Image.Image:
    """Bring high-bit-depth and float grayscale down to 8-bit "L" (PIL's convert would clip instead)."""
    arr = np.asarray(img)
    if img.mode == "F":
        scaled = arr * 255.0 if float(arr.max(initial=0.0)) <= 1.0 else arr
    else:  # "I", "I;16", "I;16B", ...: 16-bit range
        scaled = arr.astype(np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def preprocess_image(img: Image.Image, channels: int, size: int | None) -> torch.Tensor:
    """Turn any PIL image into the uint8 tensor the models see, the same way for training and prediction.

    Modes are converted with PIL: palette and alpha images lose their alpha (as torchvision's
    ``ImageFolder`` loader does), 16-bit and float grayscale are scaled to 8 bits, CMYK/YCbCr
    become RGB, and RGB becomes L with PIL's ITU-R 601-2 luma when one channel is wanted.
    The image is then resized to ``size x size`` with PIL's bilinear filter (the aspect ratio
    is not kept, so non-square images are stretched).

    Args:
        img: a PIL image of any mode.
        channels: 1 (grayscale) or 3 (RGB).
        size: the output height and width, or None to keep the image's size.

    Returns:
        uint8 tensor (channels, size, size).

    Raises:
        DataError: the mode cannot be converted.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if img.mode in ("F",) or img.mode.startswith("I"):
        img = _to_8bit(img)
    elif img.mode == "P":
        img = img.convert("RGBA")  # palettes may carry transparency; go through RGBA to drop it cleanly
    target = "L" if channels == 1 else "RGB"
    if img.mode != target:
        try:
            img = img.convert(target)
        except ValueError as exc:
            raise DataError(f"cannot convert an image of mode {img.mode} to {target} ({exc}).") from None
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()  # (H, W, C) -> (C, H, W)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _split_of(files: list[Path], split: str) -> list[Path]:
    """A stable 80/20 split of one class: order by a hash of the file name, the last 20% are test."""
    ranked = sorted(files, key=lambda p: (hashlib.md5(p.name.encode()).hexdigest(), p.name))
    # A class with two or more images always gets at least one test image.
    n_test = max(1, round(len(ranked) * TEST_FRACTION)) if len(ranked) >= 2 else 0
    chosen = ranked[: len(ranked) - n_test] if split == "train" else ranked[len(ranked) - n_test :]
    return sorted(chosen)


def list_image_folder(root: str | Path, split: str) -> tuple[list[tuple[Path, int]], list[str]]:
    """The (file, label) pairs of one split of a class-per-subfolder image tree, and the class names.

    If ``root`` has ``train/`` and ``test/`` (or ``val/``) subfolders, they hold the splits.
    Otherwise each class is split 80/20 by a hash of the file names (same files, same split).

    Raises:
        DataError: the folder is missing, has no class subfolders, or a split has no images.
    """
    root = Path(root).expanduser()
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist.")
    split_dirs = {"train": root / "train", "test": root / "test" if (root / "test").is_dir() else root / "val"}
    presplit = split_dirs["train"].is_dir() and split_dirs["test"].is_dir()
    base = split_dirs[split] if presplit else root
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{base} has no class subfolders; put each class's images in a folder named after it.")
    items: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (base / cls).rglob("*") if _is_image(p))
        items += [(path, label) for path in (files if presplit else _split_of(files, split))]
    if not items:
        raise DataError(f"{base}: no {'/'.join(IMAGE_SUFFIXES)} images found for the {split} split.")
    return items, classes


def read_image_folder(
    root: str | Path, split: str, image_size: int, channels: int, progress: Callable[[int], object] | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Decode one split of an image folder into uint8 images (N, C, S, S), int64 labels and class names.

    An unreadable file raises :class:`DataError` naming it, rather than being skipped, so that a
    dataset never silently shrinks. So does a split too big to hold in memory, before any decoding.
    ``progress`` is called with 1 after each decoded picture.
    """
    items, classes = list_image_folder(root, split)
    _check_fits_in_memory(root, split, len(items), channels, image_size)
    images = torch.empty((len(items), channels, image_size, image_size), dtype=torch.uint8)
    for i, (path, _) in enumerate(items):
        images[i] = preprocess_image(open_image(path), channels, image_size)
        if progress is not None:
            progress(1)
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    return images, labels, classes


def available_memory() -> int | None:
    """Bytes of memory the system can still give (Linux ``MemAvailable``), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _check_fits_in_memory(root: str | Path, split: str, count: int, channels: int, size: int) -> None:
    need, have = count * channels * size * size, available_memory()
    if have is not None and need > 0.8 * have:
        raise DataError(f"{root}: the {split} split has {count:,} pictures, which need {need / 2**30:.1f} GiB in "
                        f"memory at {size}x{size} with {channels} channel(s), and this machine has "
                        f"{have / 2**30:.1f} GiB available. densenet holds a dataset in memory: choose a smaller "
                        "--resize, or train on part of the folder")

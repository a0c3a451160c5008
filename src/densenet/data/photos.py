"""Per-picture preprocessing for photos, as torchvision's reference scripts and timm do it by default.

Training: ``RandomResizedCrop(size, scale=(rrc_scale, 1), ratio=(3/4, 4/3))``, a horizontal flip,
optional colour jitter (brightness, contrast, saturation), optional RandAugment/TrivialAugment
(:mod:`densenet.data.augment`, on the crop's uint8 pixels) and optional AlexNet-style PCA lighting.
Evaluation and prediction: resize the short side to ``round(size / crop_pct)`` and centre-crop
``size`` (256 -> 224 at the default ``crop_pct`` 0.875), so the aspect ratio is kept. With
``keep_aspect=False`` both stretch the picture to ``size x size`` instead (the original image-folder
path, kept for the shapes demo and older run directories).

Every random draw comes from a caller-supplied ``torch.Generator``, so a picture's augmentation
depends only on how that generator was seeded (see :func:`sample_seed`), never on which worker
process decoded it. JPEGs are decoded with ``Image.draft`` close to the size the transform needs;
how far depends only on the picture's size and the transform, so every path decodes the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps, UnidentifiedImageError

from densenet.data.augment import RandAugment
from densenet.engine.config import Interpolation  # the one vocabulary of resampling filters
from densenet.errors import ConfigError, DataError

__all__ = [
    "EvalTransform", "Interpolation", "TrainTransform", "convert_mode", "decode", "drafted_size", "open_image",
    "sample_seed", "to_tensor",
]

_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
# AlexNet's PCA of ImageNet RGB pixels in [0, 1] (as in fb.resnet.torch, the paper's training code).
_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The generator seed of picture ``index``'s augmentation in ``epoch``: a pure function of the three."""
    return (seed * 1_000_003 + epoch) * 2_147_483_659 + index


def convert_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL image to "L" (``channels=1``) or "RGB" (3).

    Palette and alpha images lose their alpha (as torchvision's ``ImageFolder`` loader does), 16-bit
    and float grayscale are scaled to 8 bits, CMYK/YCbCr become RGB, and RGB becomes L with PIL's
    ITU-R 601-2 luma.

    Raises:
        DataError: the mode cannot be converted.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if img.mode == "F" or img.mode.startswith("I"):
        img = _to_8bit(img)
    elif img.mode == "P":
        img = img.convert("RGBA")  # palettes may carry transparency; go through RGBA to drop it cleanly
    target = "L" if channels == 1 else "RGB"
    if img.mode != target:
        try:
            img = img.convert(target)
        except ValueError as exc:
            raise DataError(f"cannot convert an image of mode {img.mode} to {target} ({exc}).") from None
    return img


def _to_8bit(img: Image.Image) -> Image.Image:
    """Bring high-bit-depth and float grayscale down to 8-bit "L" (PIL's convert would clip instead)."""
    arr = np.asarray(img)
    if img.mode == "F":
        scaled = arr * 255.0 if float(arr.max(initial=0.0)) <= 1.0 else arr
    else:  # "I", "I;16", "I;16B", ...: 16-bit range
        scaled = arr.astype(np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _draft_request(width: int, height: int, short_side: int) -> tuple[int, int] | None:
    """The size :func:`open_image` asks ``Image.draft`` for: the picture scaled so its short side is ``short_side``."""
    factor = short_side / min(width, height)
    return (math.ceil(width * factor), math.ceil(height * factor)) if factor < 1 else None


def drafted_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """The size :func:`open_image` decodes a ``width`` x ``height`` JPEG at, without decoding it.

    Pillow's JPEG draft takes the largest of the scales 1/8, 1/4, 1/2 that keeps both sides at least the
    requested ones (``JpegImageFile.draft``).
    """
    request = None if short_side is None else _draft_request(width, height, short_side)
    if request is None:
        return width, height
    fit = min(width // request[0], height // request[1])
    scale = next(s for s in (8, 4, 2, 1) if fit >= s)
    return -(-width // scale), -(-height // scale)


def open_image(path: str | Path, short_side: int | None = None) -> Image.Image:
    """Open and fully decode a picture and apply its EXIF orientation (any mode).

    Args:
        path: the picture file.
        short_side: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (``Image.draft``) as long as its
            short side stays at least this long; None decodes at full size.

    Raises:
        DataError: the file is missing or is not a readable picture.
    """
    try:
        with Image.open(path) as img:
            request = None if short_side is None or img.format != "JPEG" else _draft_request(*img.size, short_side)
            if request is not None:
                img.draft(img.mode, request)
            img.load()
            # Phones store rotation in EXIF; honour it so the pixels match what viewers show.
            return ImageOps.exif_transpose(img)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc}). Is it a valid PNG/JPEG/BMP/WebP file?") from None


def decode(path: str | Path, channels: int, short_side: int | None = None) -> Image.Image:
    """:func:`open_image`, then :func:`convert_mode` to ``channels`` (1 or 3)."""
    return convert_mode(open_image(path, short_side), channels)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """uint8 (C, H, W) pixels of an "L" or "RGB" image."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    # The transpose happens in numpy, on one thread: a per-picture copy is too small for torch's thread pool,
    # whose start-up would cost more than the copy (4x slower, measured, with two threads on two busy cores).
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))  # (H, W, C) -> (C, H, W)


def _check(size: int, interpolation: str) -> None:
    if size < 1:
        raise ConfigError(f"the image size must be positive, got {size}")
    if interpolation not in _FILTERS:
        raise ConfigError(f"interpolation must be one of {', '.join(_FILTERS)}, got {interpolation!r}")


@dataclass(frozen=True)
class EvalTransform:
    """Evaluation and prediction: short side to ``round(size / crop_pct)``, then a centre crop of ``size``."""

    size: int
    crop_pct: float = 0.875  # fraction of the resized short side kept by the centre crop
    interpolation: Interpolation = "bilinear"
    keep_aspect: bool = True  # False: stretch to size x size (no crop)

    def __post_init__(self) -> None:
        _check(self.size, self.interpolation)
        if not 0 < self.crop_pct <= 1:
            raise ConfigError(f"crop_pct must lie in (0, 1], got {self.crop_pct}")

    @property
    def resize_to(self) -> int:
        """The short side before the centre crop."""
        return round(self.size / self.crop_pct)

    def decode_size(self) -> int | None:
        """The short side a JPEG may be decoded down to without losing a pixel this transform uses
        (None: full size, for the stretching path, which must match older run directories)."""
        return self.resize_to if self.keep_aspect else None

    def geometry(self, width: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Where the output comes from in a ``width`` x ``height`` picture: the (width, height) it is resized
        to, and the (left, top) corner of the ``size`` x ``size`` crop taken from that."""
        if not self.keep_aspect:
            return (self.size, self.size), (0, 0)
        short = self.resize_to
        # torchvision's Resize(int): the short side to `short`, the long side scaled and truncated.
        new = (short, int(short * height / width)) if width <= height else (int(short * width / height), short)
        return new, (round((new[0] - self.size) / 2), round((new[1] - self.size) / 2))

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """uint8 (C, size, size) pixels of ``img`` (already converted by :func:`convert_mode`)."""
        new, (left, top) = self.geometry(*img.size)
        if new != img.size:
            img = img.resize(new, _FILTERS[self.interpolation])
        return to_tensor(img.crop((left, top, left + self.size, top + self.size)) if self.keep_aspect else img)


@dataclass(frozen=True)
class TrainTransform:
    """Training: RandomResizedCrop, a flip, optional colour jitter, RandAugment and PCA lighting; uint8 out."""

    size: int
    scale: tuple[float, float] = (0.08, 1.0)  # RandomResizedCrop's area fraction
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # and aspect ratio range
    hflip: float = 0.5  # probability of a left-right flip
    color_jitter: float = 0.0  # brightness, contrast and saturation factors drawn from [1 - s, 1 + s]
    lighting: float = 0.0  # std of AlexNet's PCA lighting noise (0.1 in the paper's code)
    interpolation: Interpolation = "bilinear"
    keep_aspect: bool = True  # False: stretch to size x size instead of a random crop
    policy: RandAugment | None = None  # RandAugment/TrivialAugment after the jitter, from the same generator

    def __post_init__(self) -> None:
        _check(self.size, self.interpolation)
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ConfigError(f"the random-resized-crop scale must satisfy 0 < low <= high <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ConfigError(f"the random-resized-crop ratio must satisfy 0 < low <= high, got {self.ratio}")
        if not 0 <= self.hflip <= 1 or self.color_jitter < 0 or self.lighting < 0:
            raise ConfigError("hflip is a probability in [0, 1]; color_jitter and lighting must be >= 0")

    def decode_size(self) -> int | None:
        """The short side a JPEG may be decoded down to: the smallest crop still spans ``size`` pixels
        (None: full size, when stretching)."""
        if not self.keep_aspect:
            return None
        return math.ceil(self.size / math.sqrt(self.scale[0] / self.ratio[1]))

    def crop_box(self, width: int, height: int, generator: torch.Generator) -> tuple[int, int, int, int]:
        """torchvision's ``RandomResizedCrop.get_params``: (left, top, width, height), from ``generator``."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            draws = torch.rand(4, generator=generator).tolist()
            target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * draws[0])
            aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * draws[1])
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                return int(draws[2] * (width - w + 1)), int(draws[3] * (height - h + 1)), w, h
        aspect = width / height  # fallback: the largest centred crop within the ratio range
        if aspect < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif aspect > self.ratio[1]:
            w, h = round(height * self.ratio[1]), height
        else:
            w, h = width, height
        return (width - w) // 2, (height - h) // 2, w, h

    def __call__(self, img: Image.Image, generator: torch.Generator) -> torch.Tensor:
        """uint8 (C, size, size) pixels of ``img`` (converted by :func:`convert_mode`), augmented."""
        resample = _FILTERS[self.interpolation]
        if self.keep_aspect:
            left, top, w, h = self.crop_box(*img.size, generator)
            img = img.resize((self.size, self.size), resample, box=(left, top, left + w, top + h))
        elif img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), resample)
        if self.hflip and float(torch.rand((), generator=generator)) < self.hflip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if self.color_jitter:
            img = self._jitter(img, generator)
        x = to_tensor(img)
        if self.policy is not None:
            x = self.policy(x[None], generator)[0]  # (1, C, S, S) -> (C, S, S)
        if self.lighting and x.shape[0] == 3:
            alpha = torch.randn(3, generator=generator) * self.lighting
            shift = (_EIGVEC @ (alpha * _EIGVAL)) * 255.0  # (3,), in pixel levels
            x = (x.float() + shift.view(3, 1, 1)).round_().clamp_(0, 255).to(torch.uint8)
        return x

    def _jitter(self, img: Image.Image, generator: torch.Generator) -> Image.Image:
        """torchvision's ColorJitter(s, s, s): the three enhancements in a random order."""
        low, high = max(0.0, 1 - self.color_jitter), 1 + self.color_jitter
        enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
        for i in torch.randperm(3, generator=generator).tolist():
            factor = low + (high - low) * float(torch.rand((), generator=generator))
            if enhancers[i] is ImageEnhance.Color and img.mode == "L":
                continue  # saturation means nothing for grayscale
            img = enhancers[i](img).enhance(factor)
        return img

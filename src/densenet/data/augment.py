"""RandAugment and TrivialAugment on uint8 batches, one random draw per picture, from a caller's generator.

**RandAugment** (Cubuk et al., 2020) applies ``N`` operations to each picture, each drawn uniformly (with
replacement) from the list below, all at one magnitude ``M`` on the paper's scale 0 to 10. **TrivialAugment**
(Müller and Hutter, 2021) applies one operation per picture at a magnitude drawn uniformly from [0, 10], over
RandAugment's ranges (the paper's "TA (RA)" search space, not its wider one). Signed operations (rotate, shear,
translate and the four enhancements) take a random sign per picture.

The operations are the papers' (and torchvision's ``RandAugment``): identity, autocontrast, equalize, rotate,
solarize, color, contrast, brightness, sharpness, posterize, shear x/y and translate x/y. ``color`` (saturation)
is left out for grayscale, where it is the identity; everything else means the same for one channel and three.
At magnitude 10: rotate by 30 degrees, shear by 0.3, translate by 45% of the side (torchvision's 150/331),
enhance by a factor 1 +- 0.9, posterize to 4 bits, solarize from level 0. Every operation with a magnitude is
the identity at magnitude 0; autocontrast and equalize have none, as in the papers.

The point operations follow PIL's ``ImageOps``/``ImageEnhance`` (what torchvision's and timm's PIL paths run):
the same blends, truncations and look-up tables, in integer or float32 arithmetic on uint8. Geometric ones
warp about the picture's centre with nearest-neighbour sampling and fill with 0, as torchvision's do.

**Why plain torch, not kornia.** kornia 0.9's ``RandAugment``/``TrivialAugment`` draw one policy per *batch* from
the global RNG (``torch.randperm``), while the loaders here draw per picture from a seeded ``torch.Generator``
so that resumed and distributed runs repeat their augmentation exactly; its functional ops work on float images
in [0, 1], so an identity would only be exact on uint8 after a round trip. Each operation here is a few lines
of torch, exact on uint8, with no new dependency.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from densenet.data.transforms import _randint, _uniform, convert_channels
from densenet.engine.config import AugmentPolicy  # the one vocabulary of policies
from densenet.errors import ConfigError

__all__ = ["MAX_MAGNITUDE", "OPERATIONS", "RandAugment", "apply_operations", "operations_for"]

MAX_MAGNITUDE = 10.0  # the papers' magnitude scale
Operation = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (uint8 (n, C, H, W), level (n,) in [-1, 1])


def _factor(level: torch.Tensor) -> torch.Tensor:
    return (1.0 + 0.9 * level).view(-1, 1, 1, 1)


def _blend(degenerate: torch.Tensor, image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's ``Image.blend(degenerate, image, factor)``: float32 ``d + f * (x - d)``, clipped, truncated."""
    d = degenerate.float()
    return (d + factor * (image.float() - d)).clamp_(0, 255).to(torch.uint8)


def _gray(batch: torch.Tensor) -> torch.Tensor:
    """PIL's ``convert("L")`` (the identity for one channel), as a float batch of one channel."""
    return convert_channels(batch, 1).float()


def brightness(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    return _blend(torch.zeros_like(batch), batch, _factor(level))


def color(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    return _blend(convert_channels(convert_channels(batch, 1), batch.shape[1]), batch, _factor(level))


def contrast(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    mean = _gray(batch).double().mean(dim=(1, 2, 3), keepdim=True).add_(0.5).floor_()  # int(mean + 0.5)
    return _blend(mean.expand_as(batch), batch, _factor(level))


def sharpness(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Blend with PIL's ``ImageFilter.SMOOTH`` (3x3, centre 5, the rest 1, over 13; border pixels kept)."""
    c = batch.shape[1]
    kernel = torch.ones(3, 3, device=batch.device)
    kernel[1, 1] = 5
    weight = (kernel / 13).expand(c, 1, 3, 3)
    smooth = F.conv2d(batch.float(), weight, groups=c).add_(0.5).floor_().clamp_(0, 255)  # (n, C, H-2, W-2)
    degenerate = batch.clone()
    degenerate[:, :, 1:-1, 1:-1] = smooth.to(torch.uint8)
    return _blend(degenerate, batch, _factor(level))


def posterize(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Keep the top ``8 - round(4 |level|)`` bits."""
    dropped = (4 * level.abs()).round().long()  # 0 .. 4 low bits cleared
    mask = ((255 << dropped) & 255).to(torch.uint8).view(-1, 1, 1, 1)
    return batch & mask


def solarize(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Invert the pixels at or above ``256 (1 - |level|)`` (none at level 0, all at 1)."""
    threshold = (256 * (1 - level.abs())).view(-1, 1, 1, 1)
    return torch.where(batch.float() >= threshold, 255 - batch, batch)


def _per_channel_lut(batch: torch.Tensor, lut_of: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Map each picture's channel through the look-up table ``lut_of(histograms)`` gives ((n*C, 256) each)."""
    n, c, h, w = batch.shape
    flat = batch.reshape(n * c, h * w).long()
    hist = torch.zeros(n * c, 256, dtype=torch.int64, device=batch.device).scatter_add_(1, flat, torch.ones_like(flat))
    return lut_of(hist).gather(1, flat).to(torch.uint8).view(n, c, h, w)


def _autocontrast_lut(hist: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.autocontrast`` (no cutoff): ``int(i * scale + offset)`` stretching [lo, hi] to [0, 255]."""
    levels = torch.arange(256, device=hist.device, dtype=torch.float64)
    present = hist > 0
    lo = torch.where(present, levels, 256.0).amin(1, keepdim=True)
    hi = torch.where(present, levels, -1.0).amax(1, keepdim=True)
    flat = hi <= lo
    scale = 255.0 / torch.where(flat, 1.0, hi - lo)
    lut = (levels * scale - lo * scale).floor_().clamp_(0, 255)
    return torch.where(flat, levels, lut).long()


def _equalize_lut(hist: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.equalize``: ``step = (total - count of the last level present) // 255``, and level ``i``
    maps to ``(step // 2 + pixels below i) // step``; the identity where ``step`` is 0."""
    levels = torch.arange(256, device=hist.device)
    last = torch.where(hist > 0, levels, -1).amax(1, keepdim=True)
    step = (hist.sum(1, keepdim=True) - hist.gather(1, last.clamp(min=0))) // 255
    below = hist.cumsum(1) - hist
    lut = ((step // 2 + below) // step.clamp(min=1)).clamp_(max=255)
    return torch.where(step > 0, lut, levels)


def autocontrast(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    return _per_channel_lut(batch, _autocontrast_lut)


def equalize(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    return _per_channel_lut(batch, _equalize_lut)


def identity(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    return batch


def _warp(batch: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Resample each picture at ``inverse @ (x, y, 1)``: ``inverse`` (n, 2, 3) maps an output pixel's coordinates
    to the input's, both in pixels from the picture's centre; nearest neighbour, 0 outside."""
    n, c, h, w = batch.shape
    theta = inverse.clone()  # the same map in affine_grid's coordinates, which run from -1 to 1 on each axis
    theta[:, 0, 1] *= h / w
    theta[:, 1, 0] *= w / h
    theta[:, 0, 2] /= w / 2
    theta[:, 1, 2] /= h / 2
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)  # (n, H, W, 2)
    return F.grid_sample(batch.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False).to(batch.dtype)


def _linear(level: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
            tx: torch.Tensor | float = 0.0, ty: torch.Tensor | float = 0.0) -> torch.Tensor:
    zero = torch.zeros_like(level)
    rows = [torch.stack([a, b, zero + tx], 1), torch.stack([c, d, zero + ty], 1)]
    return torch.stack(rows, 1)  # (n, 2, 3)


def rotate(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    angle = level * math.radians(30)
    cos, sin = torch.cos(angle), torch.sin(angle)
    return _warp(batch, _linear(level, cos, -sin, sin, cos))


def shear_x(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    one, zero = torch.ones_like(level), torch.zeros_like(level)
    return _warp(batch, _linear(level, one, 0.3 * level, zero, one))


def shear_y(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    one, zero = torch.ones_like(level), torch.zeros_like(level)
    return _warp(batch, _linear(level, one, zero, 0.3 * level, one))


def translate_x(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Move right (left for a negative level) by ``round(0.45 * width * level)`` whole pixels, 0 coming in."""
    one, zero = torch.ones_like(level), torch.zeros_like(level)
    return _warp(batch, _linear(level, one, zero, zero, one, tx=-(0.45 * batch.shape[3] * level).round()))


def translate_y(batch: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    one, zero = torch.ones_like(level), torch.zeros_like(level)
    return _warp(batch, _linear(level, one, zero, zero, one, ty=-(0.45 * batch.shape[2] * level).round()))


OPERATIONS: dict[str, Operation] = {
    "identity": identity, "autocontrast": autocontrast, "equalize": equalize, "rotate": rotate,
    "solarize": solarize, "color": color, "contrast": contrast, "brightness": brightness, "sharpness": sharpness,
    "posterize": posterize, "shear_x": shear_x, "shear_y": shear_y, "translate_x": translate_x,
    "translate_y": translate_y,
}


def operations_for(channels: int) -> tuple[str, ...]:
    """The operations drawn from for pictures of ``channels`` channels (no ``color`` for grayscale)."""
    return tuple(name for name in OPERATIONS if channels == 3 or name != "color")


def apply_operations(batch: torch.Tensor, names: tuple[str, ...], index: torch.Tensor,
                     level: torch.Tensor) -> torch.Tensor:
    """Apply ``names[index[i]]`` at ``level[i]`` (in [-1, 1], magnitude / 10 with its sign) to picture ``i``.

    Args:
        batch: uint8 (n, C, H, W).
        names: operation names (keys of :data:`OPERATIONS`).
        index: int64 (n,) positions in ``names``.
        level: float (n,).

    Returns:
        A new uint8 batch of the same shape.
    """
    out = batch.clone()
    for k, name in enumerate(names):
        chosen = (index == k).nonzero().flatten()
        if chosen.numel():
            out[chosen] = OPERATIONS[name](batch[chosen], level[chosen])
    return out


@dataclass(frozen=True)
class RandAugment:
    """A batch transform ``(uint8 batch, generator) -> batch``: RandAugment or TrivialAugment, per picture.

    Attributes:
        policy: ``"randaugment"`` (``ops`` operations at ``magnitude``) or ``"trivialaugment"`` (one operation at
            a uniform magnitude; ``magnitude`` and ``ops`` are not used).
        magnitude: RandAugment's M, from 0 to 10.
        ops: RandAugment's N, at least 1.
    """

    policy: AugmentPolicy = "randaugment"
    magnitude: float = 9.0
    ops: int = 2

    def __post_init__(self) -> None:
        if self.policy not in ("randaugment", "trivialaugment"):
            raise ConfigError(f"unknown augmentation policy {self.policy!r}; choose randaugment or trivialaugment")
        if not 0 <= self.magnitude <= MAX_MAGNITUDE:
            raise ConfigError(f"the RandAugment magnitude lies on the scale 0 to 10, got {self.magnitude}")
        if self.ops < 1:
            raise ConfigError(f"RandAugment needs at least one operation per picture, got {self.ops}")

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if batch.dtype != torch.uint8 or batch.dim() != 4:
            raise ValueError(f"{self.policy} needs a uint8 (B, C, H, W) batch, got {batch.dtype} {tuple(batch.shape)}")
        names = operations_for(batch.shape[1])
        n, device = batch.shape[0], batch.device
        trivial = self.policy == "trivialaugment"
        for _ in range(1 if trivial else self.ops):  # the same draws per picture whatever the pixels: replayable
            index = _randint(len(names), n, generator, device)
            sign = torch.where(_uniform(n, generator, device) < 0.5, -1.0, 1.0)
            magnitude = _uniform(n, generator, device) * MAX_MAGNITUDE if trivial else self.magnitude
            batch = apply_operations(batch, names, index, sign * magnitude / MAX_MAGNITUDE)
        return batch

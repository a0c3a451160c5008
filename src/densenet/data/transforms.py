"""Whole-dataset resizing and per-batch augmentation/normalization on tensors.

Everything here works on batches ``(B, C, H, W)`` on any device. Random draws come from a
caller-supplied ``torch.Generator`` and are made on the generator's device, then moved, so a
CPU generator gives the same augmentation whether the batch lives on the CPU or a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["convert_channels", "normalize", "random_crop", "random_erasing", "random_hflip", "resize_images"]

# PIL's fixed-point ITU-R 601-2 luma weights (Image.convert("L")), so converting a tensor
# gives the same bytes as converting the PIL image.
_LUMA = (19595, 38470, 7471)


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert a uint8 batch between grayscale and RGB exactly like PIL's ``convert``.

    Args:
        images: uint8 tensor (N, C, H, W) with C in {1, 3}.
        channels: 1 or 3.

    Returns:
        uint8 tensor (N, channels, H, W); the input itself when nothing changes.
    """
    have = images.shape[1]
    if channels == have:
        return images
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        weights = torch.tensor(_LUMA, dtype=torch.int32, device=images.device).view(1, 3, 1, 1)
        luma = (images.to(torch.int32) * weights).sum(dim=1, keepdim=True)
        return ((luma + 0x8000) >> 16).to(torch.uint8)
    raise ValueError(f"cannot convert {have} channels to {channels}; only 1 <-> 3 are supported")


def _resize_chunk(chunk: torch.Tensor, size: int) -> torch.Tensor:
    if chunk.device.type == "cpu":
        # Torch's uint8 CPU kernel follows PIL's fixed-point separable filter (antialias=True widens
        # it when shrinking, as PIL does). Measured on Fashion-MNIST: identical to PIL for 28 -> 32,
        # 40, 56, 64, 96, 112, 224, 7, 14; at most 1 level elsewhere, a single pixel at 2 for 28 -> 20.
        return F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    # Other devices may lack the uint8 kernel: float math then rounding, within 1 level of PIL.
    out = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def resize_images(
    images: torch.Tensor, size: int, progress: Callable[[int], object] | None = None, chunk_size: int = 4096
) -> torch.Tensor:
    """Bilinearly resize a whole uint8 dataset to ``size x size`` once, in chunks.

    Matches ``PIL.Image.resize((size, size), Image.BILINEAR)`` (what ``torchvision``'s
    ``Resize`` does to a PIL image): bit for bit for the textbook's 28 -> 96, and within a level
    or two for other sizes (see ``_resize_chunk``).

    Args:
        images: uint8 tensor (N, C, H, W).
        size: the output height and width.
        progress: called with the number of images finished after each chunk (``tqdm.update`` fits).
        chunk_size: images per chunk; bounds the float temporaries to one chunk.

    Returns:
        uint8 tensor (N, C, size, size), a new tensor (or ``images`` itself if already that size).
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"resize_images needs a uint8 (N, C, H, W) tensor, got {images.dtype} {tuple(images.shape)}")
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    out = torch.empty((n, c, size, size), dtype=torch.uint8, device=images.device)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        out[start:stop] = _resize_chunk(images[start:stop], size)
        if progress is not None:
            progress(stop - start)
    return out


def _uniform(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(n, generator=generator, device=gen_device).to(device)


def _randint(high: int, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randint(0, high, (n,), generator=generator, device=gen_device).to(device)


def random_crop(batch: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad each image by ``padding`` pixels and crop it back at a random offset.

    Equivalent to torchvision's ``RandomCrop(size, padding)`` applied per image.

    Args:
        batch: tensor (B, C, H, W), uint8 or float.
        padding: pixels of zeros added on every side; 0 returns the batch unchanged.
        generator: source of randomness (CPU or on any device).

    Returns:
        A new tensor of the same shape, dtype and device.
    """
    if padding <= 0:
        return batch
    b, _, h, w = batch.shape
    padded = F.pad(batch, (padding, padding, padding, padding))  # (B, C, H + 2p, W + 2p)
    top = _randint(2 * padding + 1, b, generator, batch.device)
    left = _randint(2 * padding + 1, b, generator, batch.device)
    rows = (top[:, None] + torch.arange(h, device=batch.device))[:, :, None]  # (B, H, 1)
    cols = (left[:, None] + torch.arange(w, device=batch.device))[:, None, :]  # (B, 1, W)
    index = torch.arange(b, device=batch.device)[:, None, None]
    # Advanced indexing on dims 0, 2, 3 with a slice on dim 1 puts the channel last: (B, H, W, C).
    return padded.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_hflip(batch: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``.

    Args:
        batch: tensor (B, C, H, W), uint8 or float.
        generator: source of randomness.
        p: probability of flipping each image.

    Returns:
        A new tensor of the same shape, dtype and device.
    """
    flip = (_uniform(batch.shape[0], generator, batch.device) < p).view(-1, 1, 1, 1)
    return torch.where(flip, batch.flip(3), batch)


def random_erasing(
    batch: torch.Tensor,
    p: float,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float = 0,
) -> torch.Tensor:
    """Set a random rectangle of each image to ``value`` with probability ``p`` (Zhong et al. 2017).

    Unlike torchvision's ``RandomErasing`` this draws one box per image without retries: the box
    is clipped to the image instead, which keeps the whole batch in a few vectorized ops.

    Args:
        batch: tensor (B, C, H, W), uint8 or float.
        p: probability that an image gets a box.
        generator: source of randomness.
        scale: range of the box area as a fraction of the image area.
        ratio: range of the box aspect ratio (height / width), sampled log-uniformly.
        value: the fill value (0 is black for uint8 or unnormalized input, the mean after normalization).

    Returns:
        A new tensor of the same shape, dtype and device.
    """
    b, _, h, w = batch.shape
    device = batch.device
    apply = _uniform(b, generator, device) < p
    area = (scale[0] + (scale[1] - scale[0]) * _uniform(b, generator, device)) * (h * w)
    log_lo, log_hi = torch.log(torch.tensor(ratio, dtype=torch.float32))
    aspect = torch.exp(log_lo + (log_hi - log_lo) * _uniform(b, generator, device))
    box_h = torch.sqrt(area * aspect).round().clamp(1, h).long()
    box_w = torch.sqrt(area / aspect).round().clamp(1, w).long()
    top = (_uniform(b, generator, device) * (h - box_h + 1)).long()
    left = (_uniform(b, generator, device) * (w - box_w + 1)).long()
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    inside = (ys >= top.view(-1, 1, 1)) & (ys < (top + box_h).view(-1, 1, 1))
    inside = inside & (xs >= left.view(-1, 1, 1)) & (xs < (left + box_w).view(-1, 1, 1))  # (B, H, W)
    mask = (inside & apply.view(-1, 1, 1)).unsqueeze(1)  # (B, 1, H, W)
    return batch.masked_fill(mask, value)


def normalize(
    batch: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """Scale a uint8 batch to [0, 1], then compute ``(x - mean) / std`` per channel.

    With mean 0 and std 1 the result equals torchvision's ``ToTensor`` bit for bit (``x / 255``),
    which is the textbook's unnormalized input. The math runs in float32 and is cast to
    ``dtype`` last, so bf16/fp16 outputs lose no precision on the way.

    Args:
        batch: uint8 tensor (B, C, H, W); a float batch is taken as already scaled to [0, 1].
        mean: per-channel mean (one value per channel, or one value for all).
        std: per-channel standard deviation.
        dtype: output dtype.
        memory_format: e.g. ``torch.channels_last``.

    Returns:
        A new float tensor (B, C, H, W).
    """
    x = batch.to(torch.float32).div_(255) if batch.dtype == torch.uint8 else batch.to(torch.float32, copy=True)
    if any(m != 0 for m in mean) or any(s != 1 for s in std):
        shape = (1, -1, 1, 1)
        x.sub_(torch.tensor(mean, dtype=torch.float32, device=x.device).view(shape))
        x.div_(torch.tensor(std, dtype=torch.float32, device=x.device).view(shape))
    return x.to(dtype=dtype, memory_format=memory_format)

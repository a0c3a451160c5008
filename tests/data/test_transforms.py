"""Resizing parity with PIL, channel conversion, batch augmentations and normalization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densenet.data.idx import read_idx
from densenet.data.transforms import (
    convert_channels,
    normalize,
    random_crop,
    random_erasing,
    random_hflip,
    resize_images,
)


def _pil_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """What torchvision's Resize does to each PIL image: Image.resize(..., BILINEAR)."""
    out = []
    for img in images:
        arr = img.permute(1, 2, 0).numpy()
        pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        res = np.asarray(pil.resize((size, size), Image.BILINEAR))
        out.append(torch.from_numpy(res.reshape(size, size, -1).copy()).permute(2, 0, 1))
    return torch.stack(out)


@pytest.fixture(scope="module")
def fmnist_sample(fmnist_dir: Path) -> torch.Tensor:
    images = read_idx(fmnist_dir / "t10k-images-idx3-ubyte.gz")[:300]
    return torch.from_numpy(images).unsqueeze(1)  # (300, 1, 28, 28)


def test_resize_to_96_equals_pil_exactly(fmnist_sample: torch.Tensor) -> None:
    ours = resize_images(fmnist_sample, 96)
    assert ours.shape == (300, 1, 96, 96) and ours.dtype == torch.uint8
    diff = (ours.int() - _pil_resize(fmnist_sample, 96).int()).abs()
    assert int(diff.max()) == 0  # the textbook's Resize(96) + ToTensor, bit for bit


@pytest.mark.parametrize(("size", "max_levels", "max_share"), [(224, 0, 0), (14, 0, 0), (57, 1, 0.01), (20, 2, 0.03)])
def test_resize_other_sizes_close_to_pil(fmnist_sample: torch.Tensor, size: int, max_levels: int,
                                         max_share: float) -> None:
    diff = (resize_images(fmnist_sample, size).int() - _pil_resize(fmnist_sample, size).int()).abs()
    assert int(diff.max()) <= max_levels
    assert float((diff > 0).float().mean()) <= max_share


def test_resize_rgb_equals_pil() -> None:
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(resize_images(images, 96), _pil_resize(images, 96))


def test_resize_chunks_and_progress(fmnist_sample: torch.Tensor) -> None:
    done: list[int] = []
    chunked = resize_images(fmnist_sample, 40, progress=done.append, chunk_size=64)
    assert done == [64, 64, 64, 64, 44]
    assert torch.equal(chunked, resize_images(fmnist_sample, 40))
    assert resize_images(fmnist_sample, 28) is fmnist_sample  # already that size


def test_resize_rejects_float() -> None:
    with pytest.raises(ValueError, match="uint8"):
        resize_images(torch.zeros(1, 1, 4, 4), 8)


def test_convert_channels_matches_pil() -> None:
    rgb = torch.randint(0, 256, (8, 3, 10, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    gray = convert_channels(rgb, 1)
    for i in range(8):
        pil = Image.fromarray(rgb[i].permute(1, 2, 0).numpy()).convert("L")
        assert torch.equal(gray[i, 0], torch.from_numpy(np.asarray(pil).copy()))
    back = convert_channels(gray, 3)
    assert back.shape == (8, 3, 10, 10) and all(torch.equal(back[:, c], gray[:, 0]) for c in range(3))


# ------------------------------------------------------------------ augmentations


def _indexed_batch(b: int = 64, c: int = 2, h: int = 6, w: int = 5) -> torch.Tensor:
    return (torch.arange(b * c * h * w) % 251 + 1).to(torch.uint8).reshape(b, c, h, w)  # no zeros


def test_random_crop_is_a_shifted_window() -> None:
    batch = _indexed_batch()
    pad = 2
    out = random_crop(batch, pad, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(batch, (pad,) * 4)
    offsets = set()
    for i in range(len(batch)):
        matches = [(t, left) for t in range(2 * pad + 1) for left in range(2 * pad + 1)
                   if torch.equal(out[i], padded[i, :, t : t + 6, left : left + 5])]
        assert matches, f"image {i} is not a crop of its padded original"
        offsets.add(matches[0])
    assert len(offsets) > 10  # offsets vary between images
    assert torch.equal(out, random_crop(batch, pad, torch.Generator().manual_seed(0)))  # deterministic
    assert not torch.equal(out, random_crop(batch, pad, torch.Generator().manual_seed(1)))
    assert random_crop(batch, 0, torch.Generator()) is batch


def test_random_crop_float() -> None:
    batch = _indexed_batch().float() / 255
    out = random_crop(batch, 3, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == batch.shape


def test_random_hflip() -> None:
    batch = _indexed_batch(b=400)
    out = random_hflip(batch, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(out[i], batch[i].flip(2)) for i in range(400)])
    kept = torch.tensor([torch.equal(out[i], batch[i]) for i in range(400)])
    assert bool((flipped ^ kept).all())  # each image is exactly one of the two
    assert 160 < int(flipped.sum()) < 240
    assert torch.equal(random_hflip(batch, torch.Generator(), p=1.0), batch.flip(3))
    assert torch.equal(random_hflip(batch, torch.Generator(), p=0.0), batch)


def test_random_erasing_boxes() -> None:
    batch = torch.full((200, 3, 32, 32), 255, dtype=torch.uint8)
    out = random_erasing(batch, 1.0, torch.Generator().manual_seed(0))
    for img in out:
        erased = img[0] == 0
        assert torch.equal(erased, img[1] == 0) and torch.equal(erased, img[2] == 0)  # same box in all channels
        ys, xs = torch.nonzero(erased, as_tuple=True)
        assert len(ys) > 0
        box = erased[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        assert bool(box.all())  # one solid rectangle
        assert len(ys) <= 0.33 * 1024 * 1.1
    assert torch.equal(random_erasing(batch, 0.0, torch.Generator()), batch)
    half = random_erasing(batch, 0.5, torch.Generator().manual_seed(0))
    assert 60 < int((half == 0).flatten(1).any(1).sum()) < 140


def test_random_erasing_float_value() -> None:
    batch = torch.ones(4, 1, 8, 8)
    out = random_erasing(batch, 1.0, torch.Generator().manual_seed(0), value=-3.0)
    assert set(out.unique().tolist()) == {-3.0, 1.0}


# ------------------------------------------------------------------ normalization


def test_normalize_identity_equals_to_tensor() -> None:
    batch = torch.arange(256, dtype=torch.uint8).reshape(4, 1, 8, 8)
    out = normalize(batch, (0.0,), (1.0,))
    assert out.dtype == torch.float32
    assert torch.equal(out, batch.float().div(255))  # ToTensor's arithmetic
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_normalize_mean_std_dtype_and_layout() -> None:
    batch = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    out = normalize(batch, mean, std, torch.bfloat16, torch.channels_last)
    expected = (batch.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.float(), expected, atol=0.02, rtol=0.01)
    torch.testing.assert_close(normalize(batch, mean, std), expected)

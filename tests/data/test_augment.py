"""RandAugment and TrivialAugment: each operation against its definition (PIL's, exactly, for the point
operations), the identity at magnitude 0, per-picture seeded draws, and both loaders' paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from densenet.data import ImageDataset
from densenet.data.augment import OPERATIONS, RandAugment, apply_operations, operations_for
from densenet.data.loader import Augment, BatchLoader
from densenet.data.photos import TrainTransform
from densenet.data.transforms import _randint, _uniform
from densenet.errors import ConfigError

MAGNITUDE_FREE = {"identity", "autocontrast", "equalize"}  # the papers' operations without a magnitude
# What PIL (and so torchvision's and timm's PIL paths) does at a signed level in [-1, 1].
PIL_OPS = {
    "autocontrast": lambda img, level: ImageOps.autocontrast(img),
    "equalize": lambda img, level: ImageOps.equalize(img),
    "brightness": lambda img, level: ImageEnhance.Brightness(img).enhance(1 + 0.9 * level),
    "color": lambda img, level: ImageEnhance.Color(img).enhance(1 + 0.9 * level),
    "contrast": lambda img, level: ImageEnhance.Contrast(img).enhance(1 + 0.9 * level),
    "sharpness": lambda img, level: ImageEnhance.Sharpness(img).enhance(1 + 0.9 * level),
    "solarize": lambda img, level: ImageOps.solarize(img, 256 * (1 - abs(level))),
    "posterize": lambda img, level: ImageOps.posterize(img, 8 - round(4 * abs(level))),
}
LEVELS = torch.tensor([0.7, -0.4, 1.0, 0.3, -1.0, 0.55])


def pictures(channels: int, n: int = 6, size: int = 20, seed: int = 0) -> torch.Tensor:
    """Random uint8 pictures; the first spans a narrow range, so autocontrast and equalize have work to do."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    x[0] = x[0] // 3 + 40
    return x


def to_pil(picture: torch.Tensor) -> Image.Image:
    arr = picture.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


def from_pil(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(img)
    return torch.from_numpy((arr[:, :, None] if arr.ndim == 2 else arr).copy()).permute(2, 0, 1)


def test_the_papers_operations_and_no_color_for_grayscale():
    assert set(OPERATIONS) == {"identity", "autocontrast", "equalize", "rotate", "solarize", "color", "contrast",
                               "brightness", "sharpness", "posterize", "shear_x", "shear_y", "translate_x",
                               "translate_y"}
    assert operations_for(3) == tuple(OPERATIONS) and operations_for(1) == tuple(n for n in OPERATIONS if n != "color")


@pytest.mark.parametrize("name, channels", [(n, c) for n in sorted(set(OPERATIONS) - MAGNITUDE_FREE) for c in (1, 3)
                                            if n in operations_for(c)])
def test_every_operation_with_a_magnitude_is_the_identity_at_magnitude_0(name, channels):
    x = pictures(channels)
    out = OPERATIONS[name](x, torch.zeros(len(x)))
    assert out.dtype == torch.uint8 and out.shape == x.shape and torch.equal(out, x)
    assert not torch.equal(OPERATIONS[name](x, torch.full((len(x),), 0.8)), x)  # and not at magnitude 8


@pytest.mark.parametrize("name, channels", [(n, c) for n in sorted(PIL_OPS) for c in (1, 3) if n in operations_for(c)])
def test_point_operations_equal_pil_exactly(name, channels):
    x = pictures(channels)
    expected = torch.stack([from_pil(PIL_OPS[name](to_pil(p), float(level))) for p, level in zip(x, LEVELS)])
    assert torch.equal(OPERATIONS[name](x, LEVELS), expected)


def test_translations_move_whole_pixels_and_fill_with_black():
    x = pictures(1, n=2, size=21)
    right = OPERATIONS["translate_x"](x, torch.tensor([0.5, -1.0]))  # +5 px and -9 px of 21
    assert torch.equal(right[0, :, :, 5:], x[0, :, :, :-5]) and not right[0, :, :, :5].any()
    assert torch.equal(right[1, :, :, :-9], x[1, :, :, 9:]) and not right[1, :, :, -9:].any()
    down = OPERATIONS["translate_y"](x, torch.tensor([0.5, -1.0]))
    assert torch.equal(down[0, :, 5:], x[0, :, :-5]) and not down[0, :, :5].any()


def test_rotation_and_shear_match_pil_but_for_pixels_on_a_tie():
    """PIL takes the pixel under a sampling point, grid_sample the nearest centre: they differ only where a point
    falls exactly on a pixel edge."""
    x = pictures(1, n=1, size=21)
    img = to_pil(x[0])
    rotated = OPERATIONS["rotate"](x, torch.tensor([1.0]))[0]
    assert (rotated != from_pil(img.rotate(30, resample=Image.NEAREST))).float().mean() < 0.05
    sheared = OPERATIONS["shear_x"](x, torch.tensor([1.0]))[0]  # x_in = x + 0.3 (y - centre)
    reference = img.transform(img.size, Image.AFFINE, (1, 0.3, -0.3 * 10.5, 0, 1, 0), resample=Image.NEAREST)
    assert (sheared != from_pil(reference)).float().mean() < 0.08


def test_magnitude_free_operations_ignore_the_level():
    x = pictures(3)
    for name in MAGNITUDE_FREE:
        assert torch.equal(OPERATIONS[name](x, torch.zeros(6)), OPERATIONS[name](x, torch.ones(6)))


@pytest.mark.parametrize("policy", ["randaugment", "trivialaugment"])
@pytest.mark.parametrize("channels", [1, 3])
def test_same_seed_same_batch_other_seeds_differ(policy, channels):
    x = pictures(channels, n=16, size=24)
    augment = RandAugment(policy)
    first = augment(x, torch.Generator().manual_seed(3))
    assert first.dtype == torch.uint8 and first.shape == x.shape
    assert torch.equal(first, augment(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, augment(x, torch.Generator().manual_seed(4)))
    assert not torch.equal(first, x)


def test_each_picture_draws_its_own_operations():
    x = pictures(1, n=1, size=24).expand(32, -1, -1, -1).contiguous()  # one picture, 32 times
    out = RandAugment("randaugment", 9, 2)(x, torch.Generator().manual_seed(0))
    assert len({tuple(p.flatten().tolist()) for p in out}) > 16


@pytest.mark.parametrize("policy, ops", [("randaugment", 2), ("randaugment", 3), ("trivialaugment", 2)])
def test_the_draws_are_the_documented_ones(policy, ops):
    """RandAugment: N rounds of (an operation, a sign) per picture at magnitude M; TrivialAugment: one round with a
    uniform magnitude in [0, 10]. Replayed by hand from a clone of the generator."""
    x = pictures(3, n=12, size=16)
    out = RandAugment(policy, 7, ops)(x, torch.Generator().manual_seed(11))
    g, names, expected = torch.Generator().manual_seed(11), operations_for(3), x
    for _ in range(1 if policy == "trivialaugment" else ops):
        index = _randint(len(names), 12, g, x.device)
        sign = torch.where(_uniform(12, g, x.device) < 0.5, -1.0, 1.0)
        magnitude = _uniform(12, g, x.device) * 10 if policy == "trivialaugment" else 7.0
        level = sign * magnitude / 10
        expected = torch.stack([OPERATIONS[names[i]](p[None], lv[None])[0]
                                for p, i, lv in zip(expected, index.tolist(), level)])
    assert torch.equal(out, expected)
    assert torch.equal(apply_operations(x, ("identity",), torch.zeros(12, dtype=torch.int64), torch.ones(12)), x)


def test_bad_policies_are_config_errors():
    with pytest.raises(ConfigError, match="unknown augmentation policy 'autoaugment'"):
        RandAugment("autoaugment")
    with pytest.raises(ConfigError, match="scale 0 to 10, got 11"):
        RandAugment("randaugment", 11)
    with pytest.raises(ConfigError, match="at least one operation"):
        RandAugment("randaugment", 9, 0)
    with pytest.raises(ValueError, match="needs a uint8"):
        RandAugment()(torch.zeros(1, 1, 8, 8))


def test_the_batch_loader_augments_before_erasing_and_resumes_mid_epoch_exactly():
    images = pictures(1, n=40, size=32)
    ds = ImageDataset(images, torch.arange(40) % 10, [str(i) for i in range(10)], (0.5,), (0.25,), "pictures")
    policy = RandAugment("randaugment", 9, 2)
    loader = BatchLoader(ds, 8, shuffle=True, seed=1, augment=Augment(hflip=0.5, policy=policy, erasing=0.5))
    loader.set_epoch(2)
    full = list(loader)
    loader.set_epoch(2)
    loader.resume_at(3)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full[3:], list(loader), strict=True))
    plain = BatchLoader(ds, 8, shuffle=True, seed=1, augment=Augment(hflip=0.5, erasing=0.5))
    plain.set_epoch(2)
    assert not torch.equal(next(iter(plain))[0], full[0][0])


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_photos_are_augmented_per_picture_from_their_generator(mode):
    img = Image.fromarray(pictures(1 if mode == "L" else 3, n=1, size=48)[0].permute(1, 2, 0).squeeze(2).numpy())
    plain = TrainTransform(32)
    augmented = TrainTransform(32, policy=RandAugment("trivialaugment"))
    outs = [augmented(img, torch.Generator().manual_seed(s)) for s in range(6)]
    assert all(o.dtype == torch.uint8 and o.shape == (len(mode), 32, 32) for o in outs)
    assert torch.equal(outs[0], augmented(img, torch.Generator().manual_seed(0)))
    differs = [not torch.equal(o, plain(img, torch.Generator().manual_seed(s))) for s, o in enumerate(outs)]
    assert sum(differs) >= 3  # TrivialAugment may draw the identity, or a magnitude near 0, now and then

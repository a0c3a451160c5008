"""Per-picture preprocessing of photos (data/photos.py) on real files in every format and mode we read."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from tests.photo_files import KINDS, SIZES, picture, save

from densenet.data.images import preprocess_image
from densenet.data.photos import (
    EvalTransform,
    TrainTransform,
    convert_mode,
    decode,
    drafted_size,
    open_image,
    to_tensor,
)
from densenet.errors import ConfigError, DataError


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def two_colour(width: int, height: int, left: float = 0.0, top: float = 0.0) -> Image.Image:
    """Blue, with red over the left ``left`` fraction of the columns and the top ``top`` fraction of the rows."""
    img = Image.new("RGB", (width, height), (0, 0, 255))
    draw = ImageDraw.Draw(img)
    if left:
        draw.rectangle([0, 0, round(width * left) - 1, height - 1], fill=(255, 0, 0))
    if top:
        draw.rectangle([0, 0, width - 1, round(height * top) - 1], fill=(255, 0, 0))
    return img


def gradient(width: int, height: int, along: str) -> Image.Image:
    """Gray levels 0..255 rising left to right (``along="x"``) or top to bottom."""
    n = width if along == "x" else height
    ramp = (np.arange(n) * 256 // n).astype(np.uint8)
    arr = np.tile(ramp, (height, 1)) if along == "x" else np.tile(ramp[:, None], (1, width))
    return Image.fromarray(arr).convert("RGB")


# ----------------------------------------------------------------- decoding every format and mode


@pytest.mark.parametrize(("suffix", "mode"), sorted(set(KINDS)), ids=lambda v: str(v))
@pytest.mark.parametrize("size", [SIZES[0], SIZES[1]], ids=["300x200", "120x400"])
def test_every_format_and_mode_decodes_to_the_colour_it_was_drawn_in(tmp_path, suffix, mode, size):
    colour = (200, 40, 40)
    path = save(picture(*size, colour, mode, seed=1), tmp_path / f"pic.{suffix}")
    with Image.open(path) as img:
        written = img.mode
    rgb, gray = decode(path, 3), decode(path, 1)
    assert (rgb.mode, rgb.size, gray.mode, gray.size) == ("RGB", size, "L", size)
    x = EvalTransform(32)(rgb)
    assert x.dtype == torch.uint8 and x.shape == (3, 32, 32)
    assert EvalTransform(32)(gray).shape == (1, 32, 32)
    # The median pixel is the background colour, whatever the file stored (grayscale files store its luma).
    median = np.median(np.asarray(rgb).reshape(-1, 3), axis=0)
    expected = colour if written not in ("L", "I;16", "I") else (np.dot(colour, [0.299, 0.587, 0.114]),) * 3
    tolerance = 12 if written != "P" else 30  # palette files hold 64 colours
    assert np.abs(median - np.array(expected)).max() <= tolerance, (written, median)


def test_sixteen_bit_grayscale_is_scaled_to_eight_bits_not_clipped(tmp_path):
    levels = np.array([[0, 257 * 100, 257 * 200, 65535]], dtype="<u2")
    path = tmp_path / "deep.png"
    Image.fromarray(levels).save(path)
    with Image.open(path) as img:
        assert img.mode == "I;16"
    assert np.asarray(decode(path, 1)).tolist() == [[0, 100, 200, 255]]
    assert np.asarray(decode(path, 3))[0, :, 0].tolist() == [0, 100, 200, 255]


def test_alpha_and_palette_transparency_are_dropped_and_cmyk_becomes_rgb(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (10, 200, 30, 0))  # fully transparent: the colour stays, as torchvision does
    assert np.asarray(convert_mode(rgba, 3))[0, 0].tolist() == [10, 200, 30]
    palette = Image.new("P", (8, 8), 3)
    palette.putpalette([0, 0, 0] * 3 + [90, 80, 70] + [0, 0, 0] * 252)
    palette.info["transparency"] = 3
    path = tmp_path / "p.png"
    palette.save(path)
    assert np.asarray(decode(path, 3))[0, 0].tolist() == [90, 80, 70]
    save(Image.new("RGB", (16, 16), (200, 40, 40)).convert("CMYK"), tmp_path / "c.jpg")
    with Image.open(tmp_path / "c.jpg") as img:
        assert img.mode == "CMYK"
    assert np.abs(np.asarray(decode(tmp_path / "c.jpg", 3))[8, 8].astype(int) - [200, 40, 40]).max() <= 3


def test_exif_orientation_is_applied_also_when_drafting(tmp_path):
    """A phone's portrait JPEG: the pixels are stored landscape, EXIF orientation 6 says "turn 90 degrees"."""
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    two_colour(400, 300, left=1 / 4).save(path, quality=95, exif=exif)
    for short_side, size in ((None, (300, 400)), (70, (75, 100))):
        img = decode(path, 3, short_side)
        assert img.size == size  # portrait, as viewers show it (and drafted to a quarter with short_side 70)
        pixels = np.asarray(img).astype(int)
        top, bottom = pixels[: size[1] // 8], pixels[-size[1] // 2 :]
        assert top[..., 0].mean() > 200 and bottom[..., 2].mean() > 200  # the red left quarter is now on top


def test_unreadable_files_raise_a_data_error_naming_them(tmp_path):
    (tmp_path / "noise.png").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="noise.png: cannot read the image"):
        decode(tmp_path / "noise.png", 3)
    with pytest.raises(DataError, match="no such image file"):
        open_image(tmp_path / "missing.jpg")


# ----------------------------------------------------------------- evaluation: short side, centre crop


def test_eval_transform_resizes_the_short_side_and_keeps_the_aspect_ratio():
    assert EvalTransform(224).resize_to == 256  # the defaults: 256 -> 224
    assert EvalTransform(32).resize_to == round(32 / 0.875) == 37
    assert EvalTransform(100, crop_pct=0.9).resize_to == 111
    # A landscape picture whose left third is red: the short side goes to 37, the long side to
    # int(37 * 300 / 200) = 55, and the centre crop starts at column 12, so red ends near column
    # 55 / 3 - 12 = 6.3 of the crop. Stretching would instead keep red over the left third (10.7 columns).
    x = EvalTransform(32)(two_colour(300, 200, left=1 / 3))
    assert x.shape == (3, 32, 32)
    red = (x[0] > 128).float().mean(0)  # per column
    assert red[:5].min() == 1 and red[9:].max() == 0
    stretched = EvalTransform(32, keep_aspect=False)(two_colour(300, 200, left=1 / 3))
    assert (stretched[0] > 128).float().mean(0)[:10].min() == 1
    # A portrait picture whose top third is red: the centre crop keeps rows 46..77 of 123, all blue.
    portrait = EvalTransform(32)(two_colour(120, 400, top=1 / 3))
    assert portrait.shape == (3, 32, 32) and portrait[0].max() < 10 and portrait[2].min() > 245


@pytest.mark.parametrize(("width", "height", "along"), [(512, 512, "x"), (512, 384, "y"), (300, 600, "x")])
def test_the_centre_crop_keeps_crop_pct_of_the_short_side(width, height, along):
    """On a gradient, the crop's first and last columns (or rows) tell which part of the picture it kept:
    at the defaults, the middle 224/256 of the short side."""
    x = EvalTransform(224)(gradient(width, height, along))[0].float()
    line = x[0] if along == "x" else x[:, 0]
    assert x.shape == (224, 224)
    assert line[0].item() == pytest.approx(256 * (1 - 0.875) / 2, abs=2.5)
    assert line[-1].item() == pytest.approx(256 * (1 + 0.875) / 2 - 1, abs=2.5)
    full = EvalTransform(224, crop_pct=1.0)(gradient(width, height, along))[0].float()
    edge = full[0] if along == "x" else full[:, 0]
    assert edge[0].item() <= 2 and edge[-1].item() >= 253  # crop_pct 1: the whole short side


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "CMYK", "I;16"])
def test_without_keep_aspect_eval_stretches_exactly_like_preprocess_image(mode):
    img = picture(120, 400, (30, 160, 90), mode, seed=3)
    channels = 1 if mode in ("L", "I;16") else 3
    x = EvalTransform(32, keep_aspect=False)(convert_mode(img, channels))
    assert x.shape == (channels, 32, 32)
    assert torch.equal(x, preprocess_image(img, channels, 32))


def test_transform_options_are_validated():
    with pytest.raises(ConfigError, match="crop_pct"):
        EvalTransform(32, crop_pct=1.5)
    with pytest.raises(ConfigError, match="interpolation"):
        EvalTransform(32, interpolation="nearest")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="scale"):
        TrainTransform(32, scale=(0.5, 0.2))
    with pytest.raises(ConfigError, match="positive"):
        TrainTransform(0)


# ----------------------------------------------------------------- training: RandomResizedCrop, flip, colour


def test_train_transform_is_a_function_of_the_generator_seed():
    img = picture(300, 200, (200, 100, 50), seed=4)
    tf = TrainTransform(48, color_jitter=0.4, lighting=0.1)
    first = tf(img, generator(7))
    assert first.shape == (3, 48, 48) and first.dtype == torch.uint8
    assert torch.equal(first, tf(img, generator(7)))
    others = [tf(img, generator(seed)) for seed in range(8, 14)]
    assert all(not torch.equal(first, other) for other in others)


# The largest possible crop: all of a picture within the ratio range; of a 120x400 one, 120x160 (ratio 3/4).
@pytest.mark.parametrize(("width", "height", "largest"), [(300, 200, 1.0), (120, 400, 0.4), (640, 480, 1.0)])
def test_crop_boxes_stay_inside_and_within_the_scale_and_ratio_ranges(width, height, largest):
    tf = TrainTransform(32)
    g = generator(0)
    fractions, ratios = [], []
    for _ in range(2000):
        left, top, w, h = tf.crop_box(width, height, g)
        assert 0 <= left and 0 <= top and 0 < w and 0 < h and left + w <= width and top + h <= height
        fractions.append(w * h / (width * height))
        ratios.append(w / h)
    # w and h are rounded to whole pixels; the smallest crops here are about 50 pixels on a side.
    assert min(fractions) >= 0.08 * 0.96 and max(fractions) <= largest * 1.01
    assert min(ratios) >= 3 / 4 * 0.97 and max(ratios) <= 4 / 3 * 1.03
    # The draws cover the ranges: small and large crops, narrow and wide ones.
    assert min(fractions) < 0.12 and max(fractions) > 0.7 * largest
    assert min(ratios) < 0.8 and max(ratios) > 1.25


@pytest.mark.parametrize(("width", "height", "box"), [(50, 1000, (0, 466, 50, 67)), (1000, 50, (466, 0, 67, 50))])
def test_the_fallback_is_the_largest_centred_crop_within_the_ratio_range(width, height, box):
    """No crop of at least 8% of a 50x1000 picture has a ratio in [3/4, 4/3]: every attempt fails."""
    tf = TrainTransform(32)
    assert all(tf.crop_box(width, height, generator(seed)) == box for seed in range(20))
    x = tf(Image.new("RGB", (width, height), (9, 9, 9)), generator(0))
    assert x.shape == (3, 32, 32)


def test_the_fallback_of_a_square_outside_the_ratio_range_is_the_widest_allowed_crop():
    # A 100x100 crop of ratio 0.5..0.6 cannot exist: every attempt fails, and the fallback keeps the full height.
    tf = TrainTransform(32, scale=(1.0, 1.0), ratio=(0.5, 0.6))
    assert all(tf.crop_box(100, 100, generator(seed)) == (20, 0, 60, 100) for seed in range(10))
    # At scale 1 only the picture's own ratio fits, so attempts almost always fail; the fallback, for a
    # ratio within the range, is the whole picture (and a rare success is within a pixel of it).
    whole = TrainTransform(32, scale=(1.0, 1.0), ratio=(0.9, 1.2))
    for seed in range(10):
        left, top, w, h = whole.crop_box(1100, 1000, generator(seed))
        assert (top, h) == (0, 1000) and w >= 1099 and left + w <= 1100


def test_hflip_flips_left_to_right_and_half_the_time_at_p_half():
    img = two_colour(64, 64, left=0.25)
    whole = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0))  # the crop is the whole square picture
    plain = TrainTransform(32, hflip=0.0, **whole)(img, generator(3))
    flipped = TrainTransform(32, hflip=1.0, **whole)(img, generator(3))
    assert torch.equal(flipped, plain.flip(2)) and not torch.equal(flipped, plain)
    half = TrainTransform(32, hflip=0.5, **whole)
    flips = sum(torch.equal(half(img, generator(s)), flipped) for s in range(200))
    assert 70 <= flips <= 130


def test_colour_jitter_and_lighting_change_pixels_and_lighting_shifts_each_channel_evenly():
    img = picture(200, 150, (120, 110, 100), seed=5)
    base = TrainTransform(48)(img, generator(11))
    for option in ({"color_jitter": 0.4}, {"lighting": 0.1}):
        changed = TrainTransform(48, **option)(img, generator(11))
        assert changed.shape == base.shape and not torch.equal(changed, base), option
    assert torch.equal(TrainTransform(48, lighting=0.0, color_jitter=0.0)(img, generator(11)), base)
    # PCA lighting adds one constant per channel (away from the clamps at 0 and 255).
    lit = TrainTransform(48, lighting=0.5)(img, generator(11)).int()
    diff = lit - base.int()
    inside = (base > 60) & (base < 195)
    for c in range(3):
        values = diff[c][inside[c]]
        assert values.numel() > 100 and values.max() - values.min() <= 1  # rounded once after the shift


def test_grayscale_pictures_train_with_jitter_and_lighting():
    img = convert_mode(picture(90, 64, (100, 150, 200), seed=6), 1)
    x = TrainTransform(24, color_jitter=0.3, lighting=0.1)(img, generator(0))
    assert x.shape == (1, 24, 24) and x.dtype == torch.uint8


# ----------------------------------------------------------------- JPEG draft


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> tuple:
    """A 2000x1500 JPEG of smooth gradients and flat shapes (what photos mostly are)."""
    w, h = 2000, 1500
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], -1).astype(np.uint8)
    img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    draw.ellipse([600, 400, 1400, 1100], fill=(250, 250, 0))
    draw.rectangle([100, 100, 500, 300], fill=(0, 0, 255))
    path = save(img, tmp_path_factory.mktemp("jpeg") / "big.jpg")
    return path, decode(path, 3)


@pytest.mark.parametrize("short_side", [256, 300, 700, 1000])
def test_jpeg_draft_decodes_smaller_but_never_below_the_short_side_asked(big_jpeg, short_side):
    path, full = big_jpeg
    small = decode(path, 3, short_side)
    assert min(small.size) >= short_side
    assert small.size[0] / small.size[1] == pytest.approx(4 / 3, rel=0.01)
    factor = 1500 // min(small.size)
    assert factor in (1, 2, 4, 8) and 1500 // factor == min(small.size)  # draft scales by 1/2, 1/4 or 1/8 only
    assert factor == 8 or 1500 // (2 * factor) < short_side  # the largest reduction that keeps short_side
    assert factor > 1 or short_side > 750
    assert full.size == (2000, 1500)


def test_evaluation_of_a_drafted_jpeg_is_within_a_few_levels_of_the_full_decode(big_jpeg):
    path, full = big_jpeg
    tf = EvalTransform(224)
    assert tf.decode_size() == 256
    drafted, reference = tf(decode(path, 3, tf.decode_size())).int(), tf(full).int()
    diff = (drafted - reference).abs().float()
    assert diff.mean() < 1.0 and torch.quantile(diff.flatten(), 0.99) <= 4 and diff.max() <= 16


@pytest.mark.parametrize(("width", "height", "short_side"), [
    (2000, 1500, 256), (2037, 1554, 194), (475, 468, 234), (1830, 1831, 915), (640, 480, 100), (300, 200, 400)])
def test_drafted_size_predicts_the_decoded_size_from_the_header_alone(tmp_path, width, height, short_side):
    """The memory budget is judged from drafted_size; (2037, 1554) and (475, 468) are sizes where a simpler
    rule (halve while the short side stays long enough) was off by a factor of 4."""
    path = save(Image.new("RGB", (width, height), (90, 90, 90)), tmp_path / "p.jpg")
    assert drafted_size(width, height, short_side) == decode(path, 3, short_side).size
    assert min(drafted_size(width, height, short_side)) >= min(short_side, width, height)


def test_drafting_is_only_for_jpegs_and_only_when_keeping_the_aspect(tmp_path):
    path = save(picture(800, 600, (50, 50, 50)), tmp_path / "big.png")
    assert decode(path, 3, 100).size == (800, 600)  # PNG has no reduced decode
    assert EvalTransform(32, keep_aspect=False).decode_size() is None  # stretching: what older runs decoded
    tf = TrainTransform(224)
    assert tf.decode_size() == math.ceil(224 / math.sqrt(0.08 / (4 / 3)))  # the smallest crop still spans 224
    assert to_tensor(decode(path, 3)).shape == (3, 600, 800)

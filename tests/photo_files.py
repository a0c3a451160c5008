"""Generated photo collections for the photo-pipeline tests: real files in every format and mode we read.

Pictures are drawn from a seed, so a test can rebuild exactly the folder another test (or a worker
process) sees. Each class has its own dominant colour so a small network can learn it quickly.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

# (format suffix, PIL mode) pairs a collection cycles through: every format and every mode the pipeline reads.
KINDS = (
    ("jpg", "RGB"), ("png", "RGB"), ("bmp", "RGB"), ("webp", "RGB"), ("png", "L"), ("png", "RGBA"),
    ("png", "P"), ("jpg", "CMYK"), ("png", "I;16"), ("jpg", "L"), ("webp", "RGBA"), ("bmp", "P"),
)
# (width, height): landscape, portrait, square, and the long thin ones.
SIZES = ((300, 200), (120, 400), (96, 96), (200, 150), (64, 90), (400, 120))
CLASS_COLOURS = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (50, 60, 210)}


def picture(width: int, height: int, colour: tuple[int, int, int], mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A noisy picture around ``colour``, with a bright block at a random place, converted to ``mode``."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    bw, bh = max(1, width // 4), max(1, height // 4)
    x, y = int(rng.integers(0, width - bw + 1)), int(rng.integers(0, height - bh + 1))
    pixels[y : y + bh, x : x + bw] = 255 - np.array(colour)
    return convert_to(Image.fromarray(pixels), mode)


def convert_to(img: Image.Image, mode: str) -> Image.Image:
    """An RGB picture in ``mode``, including the two PIL cannot convert to directly (16-bit, palette)."""
    if mode == "I;16":
        gray = np.asarray(img.convert("L"), dtype="<u2") * 257  # the full 16-bit range
        return Image.fromarray(gray)  # little-endian uint16: mode I;16
    if mode == "P":
        return img.convert("P", palette=Image.ADAPTIVE, colors=64)
    return img.convert(mode)


def save(img: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if path.suffix in (".jpg", ".jpeg", ".webp") else {}
    img.save(path, **options)
    return path


def write_photo_folder(root: Path, per_class: int = 12, classes: tuple[str, ...] = tuple(CLASS_COLOURS),
                       seed: int = 0, kinds: tuple[tuple[str, str], ...] = KINDS,
                       sizes: tuple[tuple[int, int], ...] = SIZES) -> Path:
    """``root/<class>/<i>.<ext>``: ``per_class`` pictures per class cycling through ``kinds`` and ``sizes``."""
    rng = random.Random(seed)
    for c, name in enumerate(classes):
        for i in range(per_class):
            suffix, mode = kinds[(i + c) % len(kinds)]
            width, height = sizes[(i + 2 * c) % len(sizes)]
            img = picture(width, height, CLASS_COLOURS[name], mode, seed=rng.randrange(2**31))
            save(img, root / name / f"{i:04d}.{suffix}")
    return root


def write_plain_pngs(root: Path, count: int, size: int = 32, classes: tuple[str, ...] = tuple(CLASS_COLOURS),
                     seed: int = 0) -> Path:
    """``count`` square RGB PNGs spread over ``classes``: the class colour with a block of another shade at a
    random place. Flat areas compress, so the files stay small while a decoded picture takes 3 * size**2 bytes."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    block = max(1, size // 3)
    for i in range(count):
        name = classes[i % len(classes)]
        pixels = np.empty((size, size, 3), dtype=np.uint8)
        pixels[:] = CLASS_COLOURS[name]
        x, y = rng.integers(0, size - block + 1, 2)
        pixels[y : y + block, x : x + block] = rng.integers(0, 256, 3)
        Image.fromarray(pixels).save(root / name / f"{i:06d}.png", compress_level=1)
    return root


def truncated_jpeg(path: Path, size: tuple[int, int] = (160, 120), keep: float = 0.4) -> Path:
    """A real JPEG cut after ``keep`` of its bytes: the header reads, the pixels do not."""
    save(picture(*size, (120, 120, 120)), path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def random_bytes(path: Path, n: int = 2048, seed: int = 0) -> Path:
    """A file of random bytes under a picture's name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def write_multilabel_csv(root: Path, count: int, size: int = 32, test_every: int = 5, seed: int = 0,
                         classes: tuple[str, ...] = tuple(CLASS_COLOURS)) -> Path:
    """``root/images/*.png`` and ``root/labels.csv`` (``path,labels,split``): each picture holds a random subset of
    the classes, each a patch of its colour on a gray noisy background; an empty ``labels`` field is no finding.
    Every ``test_every``-th picture is in the test split. Returns the CSV's path."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = ["path,labels,split"]
    patch = size // 3
    for i in range(count):
        pixels = np.clip(rng.normal(110, 30, (size, size, 3)), 0, 255).astype(np.uint8)
        present = [c for c in classes if rng.random() < 0.4]
        for name in present:
            x, y = rng.integers(0, size - patch + 1, 2)
            pixels[y : y + patch, x : x + patch] = CLASS_COLOURS[name]
        Image.fromarray(pixels).save(root / "images" / f"{i:05d}.png")
        lines.append(f"images/{i:05d}.png,{'|'.join(present)},{'test' if i % test_every == 0 else 'train'}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"

"""A tiny picture dataset drawn on the fly: circles, squares and triangles in a folder per class.

It exists so that the image-folder path (train on your own pictures, then predict) can be
shown and tested end to end without downloading anything.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def draw_shape(shape: str, size: int, rng: random.Random, aspect: float = 1.0) -> Image.Image:
    """One RGB picture of ``shape`` with random position, scale and colours, ``size`` high and
    ``round(size * aspect)`` wide."""
    background = tuple(rng.randrange(0, 90) for _ in range(3))
    color = tuple(rng.randrange(150, 256) for _ in range(3))
    width = round(size * aspect)
    img = Image.new("RGB", (width, size), background)
    draw = ImageDraw.Draw(img)
    r = rng.uniform(0.22, 0.4) * min(size, width)
    cx, cy = rng.uniform(r, width - r), rng.uniform(r, size - r)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return img


def write_shapes_folder(root: str | Path, per_class: int = 100, size: int = 48, seed: int = 0,
                        formats: tuple[str, ...] = ("png", "jpg", "bmp"), aspect: float = 1.0) -> Path:
    """Write ``root/<shape>/<i>.<format>`` pictures (one subfolder per class, formats taking turns,
    heights from ``size`` to ``size + 16``, ``aspect`` times as wide) and return ``root``."""
    rng = random.Random(seed)
    root = Path(root)
    for shape in SHAPES:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            fmt = formats[i % len(formats)]
            draw_shape(shape, size + rng.randrange(0, 17), rng, aspect).save(root / shape / f"{i:04d}.{fmt}")
    return root


if __name__ == "__main__":
    import sys

    print(write_shapes_folder(sys.argv[1] if len(sys.argv) > 1 else "shapes"))

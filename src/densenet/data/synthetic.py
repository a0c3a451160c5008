"""A tiny picture dataset drawn on the fly: circles, squares and triangles in a folder per class.

It exists so that the image-folder path (train on your own pictures, then predict) can be
shown and tested end to end without downloading anything.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def draw_shape(shape: str, size: int, rng: random.Random) -> Image.Image:
    """One RGB picture of ``shape`` with random position, scale and colours."""
    background = tuple(rng.randrange(0, 90) for _ in range(3))
    color = tuple(rng.randrange(150, 256) for _ in range(3))
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    r = rng.uniform(0.22, 0.4) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return img


def write_shapes_folder(root: str | Path, per_class: int = 100, size: int = 48, seed: int = 0) -> Path:
    """Write ``root/<shape>/<i>.png`` pictures (one subfolder per class) and return ``root``."""
    rng = random.Random(seed)
    root = Path(root)
    for shape in SHAPES:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            fmt = ("png", "jpg", "bmp")[i % 3]
            draw_shape(shape, size + rng.randrange(0, 17), rng).save(root / shape / f"{i:04d}.{fmt}")
    return root


if __name__ == "__main__":
    import sys

    print(write_shapes_folder(sys.argv[1] if len(sys.argv) > 1 else "shapes"))

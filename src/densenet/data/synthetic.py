"""Tiny picture datasets drawn on the fly: circles, squares and triangles.

Two layouts, so the photo paths can be shown and tested end to end without downloading anything:

- :func:`write_shapes_folder`: one subfolder per class, one shape per picture on a plain background
  (``--dataset image-folder``).
- :func:`write_scenes`: shapes at random positions on a textured background (stripes or smooth noise),
  with ``labels.csv`` for ``--dataset csv --labels`` and ``boxes.csv``, each object's bounding box, to check
  where a model looks (``densenet explain``).

From the shell: ``python -m densenet.data.synthetic DIR`` writes the class folders;
``python -m densenet.data.synthetic scenes DIR --count N [--max-objects K] [--size S] [--seed S]`` the scenes.
"""

from __future__ import annotations

import argparse
import csv
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from densenet.data.labels import NO_FINDING
from densenet.errors import ConfigError

SHAPES = ("circle", "square", "triangle")
SCENE_TEST_FRACTION = 0.2  # the last pictures of a scene folder are its test split
PRESENCE = 0.4  # with several objects per picture: each class is present with this probability, independently


def _draw_object(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, color: object) -> None:
    """Draw one ``shape`` of half-size ``r`` centred on (cx, cy)."""
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


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
    _draw_object(draw, shape, cx, cy, r, color)
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


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float pixels of a dark texture: stripes at a random angle and period, or smooth noise."""
    low = rng.uniform(10, 70, size=3)
    high = low + rng.uniform(30, 70, size=3)
    if rng.random() < 0.5:
        angle, period, phase = rng.uniform(0, np.pi), rng.uniform(3, 10), rng.uniform(0, 2 * np.pi)
        y, x = np.mgrid[0:height, 0:width]
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + phase)
    else:
        cells = (rng.random((max(2, height // 6), max(2, width // 6))) * 255).astype(np.uint8)
        t = np.asarray(Image.fromarray(cells).resize((width, height), Image.BICUBIC), dtype=np.float64) / 255
    return low + (high - low) * t[..., None]


def _place(kinds: Sequence[str], width: int, height: int, radius: tuple[float, float],
           rng: np.random.Generator) -> list[tuple[str, float, float, float]]:
    """(shape, cx, cy, r) of each object that found a spot not touching the others (30 tries each)."""
    placed: list[tuple[str, float, float, float]] = []
    for shape in kinds:
        for _ in range(30):
            r = rng.uniform(*radius) * min(width, height)
            cx, cy = rng.uniform(r + 1, width - r - 1), rng.uniform(r + 1, height - r - 1)
            if all(abs(cx - x) > r + q + 2 or abs(cy - y) > r + q + 2 for _, x, y, q in placed):
                placed.append((shape, cx, cy, r))
                break
    return placed


def draw_scene(kinds: Sequence[str], size: int, rng: np.random.Generator,
               aspect: float = 1.0) -> tuple[Image.Image, list[tuple[str, int, int, int, int]]]:
    """One RGB picture, ``size`` high and ``round(size * aspect)`` wide: a textured background with one object
    of each shape in ``kinds`` where it fits without touching the others (one always fits).

    Returns:
        The picture and each drawn object's ``(shape, x0, y0, x1, y1)``: its pixel box, x1 and y1 exclusive.
    """
    width = round(size * aspect)
    radius = (0.12, 0.22) if len(kinds) == 1 else (0.1, 0.18)
    img = Image.fromarray(np.clip(_background(width, size, rng), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    boxes = []
    for shape, cx, cy, r in _place(kinds, width, size, radius, rng):
        color = tuple(int(c) for c in rng.integers(150, 256, size=3))
        _draw_object(draw, shape, cx, cy, r, color)
        mask = Image.new("L", img.size)
        _draw_object(ImageDraw.Draw(mask), shape, cx, cy, r, 255)
        boxes.append((shape, *mask.getbbox()))
    grain = rng.normal(0, 8, size=(size, width, 3))  # over objects too, so no region is flat
    return Image.fromarray(np.clip(np.asarray(img) + grain, 0, 255).astype(np.uint8)), boxes


def _scene_kinds(i: int, classes: Sequence[str], max_objects: int, rng: np.random.Generator) -> list[str]:
    """The shapes of picture ``i``: classes in turn with one object each, else independent draws (maybe none)."""
    if max_objects == 1:
        return [classes[i % len(classes)]]
    present = [c for c in classes if rng.random() < PRESENCE]
    kinds = present + [c for c in present if rng.random() < 0.25]  # now and then a second one of a class
    return [kinds[j] for j in rng.permutation(len(kinds))][:max_objects]


def _check_scenes(count: int, size: int, max_objects: int, classes: Sequence[str], aspect: float) -> None:
    if count < 1 or size < 16 or max_objects < 1 or not aspect > 0:
        raise ConfigError(f"scenes need count >= 1, size >= 16, max_objects >= 1 and aspect > 0; got count={count}, "
                          f"size={size}, max_objects={max_objects}, aspect={aspect}")
    unknown = [c for c in classes if c not in SHAPES]
    if not classes or unknown or len(set(classes)) != len(classes):
        raise ConfigError(f"scene classes must be distinct names from {', '.join(SHAPES)}; got {list(classes)}")


def write_scenes(folder: str | Path, count: int, size: int = 64, max_objects: int = 1, seed: int = 0,
                 classes: Sequence[str] = SHAPES, aspect: float = 1.0) -> Path:
    """Write ``count`` scenes of shapes on textured backgrounds, with their label file and boxes.

    ``folder/images/NNNNN.png`` are the pictures (``size`` high, ``round(size * aspect)`` wide). With
    ``max_objects`` 1 each picture shows one object and the classes take turns; ``folder/labels.csv`` is
    ``path,label,split``. With more, each class is present with probability 0.4 independently of the others
    (sometimes twice), at most ``max_objects`` objects in all, so some pictures show none; ``labels.csv`` is
    ``path,labels,split`` with ``|``-separated names, ``No Finding`` for an empty picture. The last 20% of the
    pictures are the test split. ``folder/boxes.csv`` is ``path,class,x0,y0,x1,y1``, one row per object, in
    pixels (x1, y1 exclusive). Train on it with ``--dataset csv --data-dir folder --labels folder/labels.csv``.

    Args:
        folder: Where to write (created).
        count: How many pictures.
        size: Picture height in pixels (at least 16).
        max_objects: The most objects in one picture.
        seed: The same seed writes the same files.
        classes: Which of :data:`SHAPES` to draw.
        aspect: Width over height.

    Returns:
        ``folder``.

    Raises:
        ConfigError: a count, size, object count or aspect out of range, or an unknown class.
    """
    _check_scenes(count, size, max_objects, classes, aspect)
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    n_test = max(1, round(count * SCENE_TEST_FRACTION)) if count >= 2 else 0
    labels, boxes = [], []
    for i in range(count):
        path = f"images/{i:05d}.png"
        img, objects = draw_scene(_scene_kinds(i, classes, max_objects, rng), size, rng, aspect)
        img.save(folder / path)
        names = sorted({obj[0] for obj in objects})
        label = names[0] if max_objects == 1 else "|".join(names) or NO_FINDING
        labels.append((path, label, "test" if i >= count - n_test else "train"))
        boxes += [(path, *obj) for obj in objects]
    _write_csv(folder / "labels.csv", ("path", "label" if max_objects == 1 else "labels", "split"), labels)
    _write_csv(folder / "boxes.csv", ("path", "class", "x0", "y0", "x1", "y1"), boxes)
    return folder


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def read_boxes(folder: str | Path) -> dict[str, list[tuple[str, int, int, int, int]]]:
    """``folder/boxes.csv`` as {path: [(class, x0, y0, x1, y1), ...]} (paths relative to ``folder``)."""
    out: dict[str, list[tuple[str, int, int, int, int]]] = {}
    with open(Path(folder) / "boxes.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            box = tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1"))
            out.setdefault(row["path"], []).append((row["class"], *box))  # type: ignore[arg-type]
    return out


def _parser(scenes: bool) -> argparse.ArgumentParser:
    prog = "python -m densenet.data.synthetic" + (" scenes" if scenes else "")
    if not scenes:
        p = argparse.ArgumentParser(prog=prog, description="Write a folder per shape class (image-folder layout); "
                                    f"`{prog} scenes --help` for scenes with labels.csv and boxes.csv.")
        p.add_argument("dir", nargs="?", default="shapes", metavar="DIR", help="where to write (default: shapes)")
        return p
    p = argparse.ArgumentParser(prog=prog, description="Write shapes on textured backgrounds: DIR/images/*.png, "
                                "DIR/labels.csv (for --dataset csv --labels) and DIR/boxes.csv.")
    p.add_argument("dir", metavar="DIR", help="where to write")
    p.add_argument("--count", type=int, required=True, metavar="N", help="how many pictures")
    p.add_argument("--max-objects", type=int, default=1, metavar="K",
                   help="the most objects per picture (default 1: single-label; more: multi-label, some empty)")
    p.add_argument("--size", type=int, default=64, metavar="S", help="picture height in pixels (default 64)")
    p.add_argument("--aspect", type=float, default=1.0, metavar="A", help="width over height (default 1)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the same seed writes the same files (default 0)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m densenet.data.synthetic [scenes] DIR ...``: print the folder written."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["scenes"]:
        print(write_shapes_folder(_parser(scenes=False).parse_args(argv).dir))
        return 0
    args = _parser(scenes=True).parse_args(argv[1:])
    try:
        print(write_scenes(args.dir, args.count, args.size, args.max_objects, args.seed, aspect=args.aspect))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

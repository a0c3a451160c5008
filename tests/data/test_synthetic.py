"""Synthetic scenes: deterministic files that the label-file reader takes, with boxes that match the pictures."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from densenet.data.labels import read_label_file
from densenet.data.synthetic import SHAPES, main, read_boxes, write_scenes
from densenet.errors import ConfigError


def files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_same_seed_writes_the_same_files(tmp_path):
    a = files(write_scenes(tmp_path / "a", 12, size=24, max_objects=3, seed=7))
    b = files(write_scenes(tmp_path / "b", 12, size=24, max_objects=3, seed=7))
    c = files(write_scenes(tmp_path / "c", 12, size=24, max_objects=3, seed=8))
    assert len(a) == 14 and a == b  # 12 pictures, labels.csv, boxes.csv
    assert a["labels.csv"] != c["labels.csv"] or a["images/00000.png"] != c["images/00000.png"]


def test_single_object_scenes_are_a_single_label_file_with_one_box_per_picture(tmp_path):
    folder = write_scenes(tmp_path / "s", 30, size=40, aspect=1.5, seed=1)
    train, test = (read_label_file(folder, folder / "labels.csv", split) for split in ("train", "test"))
    assert train.classes == list(SHAPES) and len(train.paths) == 24 and len(test.paths) == 6
    assert train.labels.dtype == torch.int64 and torch.bincount(train.labels).tolist() == [8, 8, 8]
    boxes = read_boxes(folder)
    for split in (train, test):
        for path, label in zip(split.paths, split.labels.tolist()):
            img = np.asarray(Image.open(path), dtype=np.float64)
            assert img.shape == (40, 60, 3)
            [(cls, x0, y0, x1, y1)] = boxes[path.relative_to(folder).as_posix()]
            assert cls == SHAPES[label] and 0 <= x0 < x1 <= 60 and 0 <= y0 < y1 <= 40 and x1 - x0 >= 0.24 * 40 - 1
            background = np.ones(img.shape[:2], bool)
            background[y0:y1, x0:x1] = False
            assert img[y0:y1, x0:x1].mean() > img[background].mean() + 40  # the object stands out...
            assert img[background].std() > 8  # ...from a background that is not flat


def test_several_objects_make_independent_multi_label_rows_and_empty_pictures(tmp_path):
    folder = write_scenes(tmp_path / "m", 400, size=48, max_objects=3, seed=2)
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "labels", "split"]
    train = read_label_file(folder, folder / "labels.csv", "train")
    assert train.classes == list(SHAPES) and train.labels.shape == (320, 3)
    y = train.labels.numpy()
    assert 0.1 < (y.sum(1) == 0).mean() < 0.35  # "No Finding" pictures
    assert all(0.3 < p < 0.5 for p in y.mean(0))
    for i in range(3):
        for j in range(i + 1, 3):  # co-occurrence as independent classes would have it
            assert abs((y[:, i] * y[:, j]).mean() - y[:, i].mean() * y[:, j].mean()) < 0.05
    boxes = read_boxes(folder)
    assert max(len(b) for b in boxes.values()) == 3
    for row in rows:
        found = boxes.get(row["path"], [])
        assert row["labels"] == ("|".join(sorted({b[0] for b in found})) or "No Finding")
        for k, a in enumerate(found):  # objects do not overlap
            for b in found[k + 1:]:
                assert a[3] <= b[1] or b[3] <= a[1] or a[4] <= b[2] or b[4] <= a[2]


def test_the_command_line_writes_scenes_or_class_folders(tmp_path, capsys):
    assert main(["scenes", str(tmp_path / "s"), "--count", "5", "--max-objects", "2", "--size", "20"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "s")
    assert len(list((tmp_path / "s" / "images").glob("*.png"))) == 5
    assert Image.open(tmp_path / "s" / "images" / "00004.png").size == (20, 20)
    assert main([str(tmp_path / "folders")]) == 0  # without "scenes": one folder per class, as before
    assert sorted(p.name for p in (tmp_path / "folders").iterdir()) == list(SHAPES)
    assert main(["scenes", str(tmp_path / "bad"), "--count", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: scenes need count >= 1")


def test_unknown_classes_are_refused():
    with pytest.raises(ConfigError, match="scene classes must be distinct names from circle, square, triangle"):
        write_scenes("unused", 3, classes=("circle", "hexagon"))

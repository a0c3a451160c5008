"""The ImageNet preset on a small generated folder in ImageNet's own layouts."""

import csv
import json

import pytest
from tests.helpers import run_cli

from densenet.data.synthetic import SHAPES, draw_shape
from densenet.engine.config import load_preset

WNIDS = ("n01440764", "n01443537", "n01484850")  # one wnid per shape


def _imagenet_folder(root, flat_val: bool, per_class: int = 4):
    """train/<wnid>/*.JPEG, and val/ as class folders or flat with the devkit's LOC_val_solution.csv."""
    import random

    rng = random.Random(0)
    rows = []
    for wnid, shape in zip(WNIDS, SHAPES):
        (root / "train" / wnid).mkdir(parents=True)
        for i in range(per_class):
            draw_shape(shape, 90, rng, aspect=4 / 3).save(root / "train" / wnid / f"{wnid}_{i}.JPEG")
        for _ in range(2):
            image_id = f"ILSVRC2012_val_{len(rows) + 1:08d}"
            folder = root / "val" if flat_val else root / "val" / wnid
            folder.mkdir(parents=True, exist_ok=True)
            draw_shape(shape, 80, rng, aspect=3 / 4).save(folder / f"{image_id}.JPEG")
            rows.append((image_id, f"{wnid} 10 10 60 60 {wnid} 5 5 20 20"))
    if flat_val:
        with open(root / "LOC_val_solution.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["ImageId", "PredictionString"])
            writer.writerows(rows)
    return root


def test_the_preset_is_the_papers_recipe_on_streamed_photos():
    c = load_preset("densenet121-imagenet")
    assert (c.model.name, c.data.dataset, c.data.resize, c.data.stream) == ("densenet121", "image-folder", 224, True)
    assert (c.data.rrc_scale, c.data.crop_pct, c.data.keep_aspect, c.data.hflip) == (0.08, 0.875, True, True)
    assert (c.optim.milestones, c.run.epochs, c.run.batch_size) == ([30, 60], 90, 256)


@pytest.mark.parametrize("flat_val", [False, True], ids=["val-class-folders", "val-flat-devkit-csv"])
def test_one_short_epoch_of_the_imagenet_preset(tmp_path, flat_val):
    data = _imagenet_folder(tmp_path / "imagenet", flat_val)
    run = tmp_path / "run"
    # The preset as shipped, shortened: one epoch of 12 pictures at 64px (densenet121's smallest sensible
    # size on a CPU test budget), eager so the test stays in seconds.
    result = run_cli("train", "--preset", "densenet121-imagenet", "--data-dir", str(data), "--epochs", "1",
                     "--batch-size", "4", "--resize", "64", "--workers", "2", "--no-compile", "--no-progress",
                     "--out", str(run), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["epochs"] == 1 and summary["data_paths"] == {"train": "stream", "test": "stream"}
    assert "data: streaming the train split" in result.stderr and "--stream" in result.stderr
    card = json.loads((run / "model.json").read_text())
    assert card["classes"] == list(WNIDS)
    assert card["preprocessing"] | {"mean": None, "std": None} == {
        "channels": 3, "image_size": 64, "resize": "center-crop", "crop_pct": 0.875, "interpolation": "bilinear",
        "mean": None, "std": None}
    assert card["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["examples"] == 12


def test_a_flat_val_folder_without_labels_is_refused(tmp_path):
    data = _imagenet_folder(tmp_path / "imagenet", flat_val=True)
    (data / "LOC_val_solution.csv").unlink()
    result = run_cli("train", "--preset", "densenet121-imagenet", "--data-dir", str(data), "--epochs", "1",
                     "--no-progress", "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "LOC_val_solution.csv" in last and "--labels" in last

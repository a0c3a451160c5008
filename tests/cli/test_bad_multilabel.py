"""Bad input to multi-label runs and to `densenet explain`, through the real CLI: one `error:` line or a warning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from densenet.models import create_model
from densenet.rundir import ModelCard, Preprocessing, save_model
from tests.cli.reliability import TINY, error_line
from tests.run_dirs import multilabel_run


def _picture(path: Path) -> Path:
    Image.fromarray(np.full((40, 30, 3), 120, np.uint8)).save(path)
    return path


def _csv(root: Path, header: str, rows: list[str]) -> Path:
    (root / "images").mkdir(parents=True)
    for i in range(len(rows)):
        _picture(root / "images" / f"{i}.png")
    (root / "labels.csv").write_text("\n".join([header, *(f"images/{i}.png,{row}" for i, row in enumerate(rows))]))
    return root / "labels.csv"


def test_explain_with_a_class_the_run_does_not_know(tmp_path, densenet):
    run = multilabel_run(tmp_path)
    message = error_line(densenet("explain", str(run), str(_picture(tmp_path / "p.png")), "--class", "dog",
                                  "--out", str(tmp_path / "out")), 2)
    assert "class 'dog' is not one of the run's classes: blue, green, red" in message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_explain_on_a_layer_a_resnet_baseline_does_not_have(tmp_path, densenet):
    torch.manual_seed(0)
    save_model(tmp_path / "run", create_model("resnet18", num_classes=2),
               ModelCard("resnet18", {"in_channels": 3, "num_classes": 2}, ["a", "b"], Preprocessing(3, 32)))
    message = error_line(densenet("explain", str(tmp_path / "run"), str(_picture(tmp_path / "p.png")), "--layer",
                                  "features.norm5", "--out", str(tmp_path / "out")), 2)
    assert "resnet18 has no layer 'features.norm5'; layers: conv1, bn1" in message


def test_a_multi_label_csv_whose_test_split_names_a_class_the_train_split_lacks(tmp_path, densenet):
    labels = _csv(tmp_path / "data", "path,labels,split", ["a|b,train", "b,train", "a,test", "a|zebra,test"])
    message = error_line(densenet("train", "--dataset", "csv", "--data-dir", str(tmp_path / "data"), "--labels",
                                  str(labels), "--out", str(tmp_path / "run"), *TINY), 1)
    assert f"{str(labels).lower()}, line 5: class 'zebra' appears only in the test split" in message
    assert not (tmp_path / "run").exists()


def test_a_class_with_no_positive_picture_is_warned_about_and_its_auroc_is_undefined(tmp_path, densenet):
    rows = [f"{i % 2},{(i + 1) % 2},0,{'test' if i % 4 < 2 else 'train'}" for i in range(16)]
    labels = _csv(tmp_path / "data", "path,cat,dog,zebra,split", rows)
    run = tmp_path / "run"
    trained = densenet("train", "--dataset", "csv", "--data-dir", str(tmp_path / "data"), "--labels", str(labels),
                       "--model", "d2l_densenet", "--model-kwargs", '{"block_config": [2, 2], "growth_rate": 8}',
                       "--epochs", "1", "--workers", "0", "--out", str(run), *TINY)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "warning: zebra has no positive picture in the train split: the network cannot learn it" in trained.stderr
    evaluated = densenet("evaluate", str(run), "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]

    def no_nan(constant: str) -> None:
        raise AssertionError(f"{constant} in evaluate --json")

    report = json.loads(evaluated.stdout, parse_constant=no_nan)
    assert report["auroc"]["zebra"] is None and report["undefined"] == ["zebra"]
    assert report["auroc"]["cat"] is not None and report["mean_auroc"] is not None

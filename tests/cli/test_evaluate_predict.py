"""``densenet evaluate`` and ``densenet predict`` with ``--tta flip``, on a two-class and a multi-label run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from densenet.cli.main import main
from tests.run_dirs import binary_run, multilabel_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {"binary": binary_run(root / "binary"), "multi": multilabel_run(root / "multi")}


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[str, str]:
    assert main(list(args)) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_evaluate_flip_on_a_two_class_run(runs, capsys):
    run = str(runs["binary"])
    document = json.loads(cli(capsys, "evaluate", run, "--tta", "flip", "--json")[0])
    assert document["tta"] == "flip" and document["top5_accuracy"] is None and document["examples"] == 12
    assert {"accuracy", "macro_f1", "ece", "per_class_accuracy", "confusion_matrix"} <= set(document)
    out, err = cli(capsys, "evaluate", run, "--tta", "flip")
    assert "on 12 test images (flip TTA)" in out and "top-5 accuracy n/a (fewer than 5 classes)" in out
    assert f"macro F1 {document['macro_f1']:.4f}" in out and f"ECE (15 bins) {document['ece']:.4f}" in out
    assert "roc_curves.png" in err and "confusion_matrix.png" in err


def test_evaluate_on_a_multilabel_run_prints_each_classs_auroc(runs, capsys):
    run = str(runs["multi"])
    document = json.loads(cli(capsys, "evaluate", run, "--json")[0])
    out, _ = cli(capsys, "evaluate", run)
    for name in ("blue", "green", "red"):
        auroc = document["auroc"][name]
        assert any(line.split()[:2] == [name, "undefined" if auroc is None else f"{auroc:.4f}"]
                   for line in out.splitlines())
    assert f"mean AUROC {document['mean_auroc']:.4f} over" in out and "mAP" in out


def test_predict_flip_on_a_multilabel_run_is_the_mean_of_a_picture_and_its_mirror(runs, capsys, tmp_path):
    picture = sorted((runs["multi"].parent / "data" / "images").glob("*.png"))[0]
    mirror = tmp_path / "mirror.png"
    Image.open(picture).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirror)
    run = str(runs["multi"])

    def probs(*args: str) -> list[dict[str, float]]:
        rows = json.loads(cli(capsys, "predict", run, *args, "--top-k", "3", "--json")[0])
        return [{p["class"]: p["probability"] for p in row["predictions"]} for row in rows]

    plain, mirrored = probs(str(picture), str(mirror))
    (flipped,) = probs(str(picture), "--tta", "flip")
    assert flipped == pytest.approx({c: (plain[c] + mirrored[c]) / 2 for c in plain}, abs=1e-6)
    rows = json.loads(cli(capsys, "predict", run, str(picture), "--tta", "flip", "--json")[0])
    values = [p["probability"] for p in rows[0]["predictions"]]
    assert values == sorted(values, reverse=True) and len(values) == 3
    assert "independent per class" in cli(capsys, "predict", run, str(picture), "--tta", "flip")[0]

"""``densenet convert``: a torchvision checkpoint becomes a run directory with ImageNet preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from densenet.cli.main import main
from densenet.models import create_model
from densenet.rundir import Preprocessing, load
from tests.models.weights_helpers import to_legacy, trained

IMAGENET = Preprocessing(3, 224, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], "center-crop", 0.875, "bilinear")


def test_a_legacy_torchvision_checkpoint_becomes_a_run_directory(tmp_path: Path, capsys) -> None:
    source = trained("densenet121")
    torch.save({"state_dict": {"module." + k: v for k, v in to_legacy(source.state_dict()).items()}},
               tmp_path / "densenet121.pth")
    (tmp_path / "classes.txt").write_text("cat\ndog\n\nfox\nowl\nbee\n")
    rc = main(["convert", str(tmp_path / "densenet121.pth"), "--model", "densenet121", "--classes",
               str(tmp_path / "classes.txt"), "--output", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out.splitlines()[0] == "classifier: checkpoint 1000 classes, this run 5, re-initialized"
    assert f"wrote {tmp_path / 'run'}/{{model.safetensors, model.json}}: densenet121, 5 classes" in out
    assert "sha256" in err

    model = load(tmp_path / "run")
    assert model.card.preprocessing == IMAGENET
    assert model.card.classes == ["cat", "dog", "fox", "owl", "bee"]
    assert model.card.model_kwargs == {"num_classes": 5, "in_channels": 3}
    theirs = source.state_dict()
    for key, value in model.state_dict().items():
        if not key.startswith("classifier.") and not key.endswith("num_batches_tracked"):  # legacy: none saved
            assert torch.equal(value, theirs[key]), key
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 5)


def test_json_output_and_a_gray_model(tmp_path: Path, capsys) -> None:
    torch.save(trained("densenet_bc100_k12").state_dict(), tmp_path / "w.pth")
    rc = main(["convert", str(tmp_path / "w.pth"), "--model", "densenet_bc100_k12", "--in-channels", "1",
               "--num-classes", "3", "--output", str(tmp_path / "run"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert doc["adaptations"] == ["classifier: checkpoint 10 classes, this run 3, re-initialized",
                                  "features.conv0: checkpoint 3 input channels, this model 1: summed over channels"]
    assert doc["model_kwargs"] == {"num_classes": 3, "in_channels": 1}
    assert doc["source"]["path"] == str(tmp_path / "w.pth") and len(doc["source"]["sha256"]) == 64
    pre = load(tmp_path / "run").card.preprocessing
    assert (pre.channels, pre.image_size, pre.resize, pre.crop_pct) == (1, 32, "center-crop", 0.875)
    assert pre.mean == pytest.approx([0.449]) and pre.std == pytest.approx([0.226])


def test_refusals_are_one_error_line(tmp_path: Path, capsys) -> None:
    torch.save(create_model("resnet20").state_dict(), tmp_path / "resnet.pth")
    run = ["--model", "densenet_bc100_k12", "--output", str(tmp_path / "run")]
    assert main(["convert", str(tmp_path / "resnet.pth"), *run]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error: weights ") and "look like another architecture than this DenseNet" in err[-1]
    assert not (tmp_path / "run").exists()
    torch.save(create_model("densenet_bc100_k12").state_dict(), tmp_path / "w.pth")
    assert main(["convert", str(tmp_path / "w.pth"), *run]) == 0
    assert main(["convert", str(tmp_path / "w.pth"), *run]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "w.pth"), *run, "--overwrite"]) == 0
    assert main(["convert", str(tmp_path / "w.pth"), *run, "--overwrite", "--classes", str(tmp_path / "no.txt")]) == 2
    assert "error: --classes" in capsys.readouterr().err

"""Bad input to fine-tuning through the real CLI: one ``error:`` line, the right exit status, nothing written.

The weights files are real files these tests write: a ResNet's state dict, a ``.pth`` cut in half, and a pickle
whose ``__reduce__`` would create a marker file if anything ever unpickled it.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from densenet.models import create_model
from tests.cli.reliability import TINY, error_line


def train(shapes_dir: Path, run: Path, *args: str) -> list[str]:
    """``densenet train``'s arguments for a tiny run on the shapes folder, plus ``args``."""
    return ["train", "--model", "d2l_densenet", "--dataset", "image-folder", "--data-dir", str(shapes_dir),
            "--out", str(run), *TINY, *args]


class _WritesAFile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "the pickle ran"))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("weights")
    files = {"resnet": root / "resnet18.pth", "cut": root / "cut.pth", "code": root / "code.pth"}
    torch.save(create_model("resnet18", num_classes=10).state_dict(), files["resnet"])
    torch.save(create_model("d2l_densenet", in_channels=3).state_dict(), files["cut"])
    files["cut"].write_bytes(files["cut"].read_bytes()[: files["cut"].stat().st_size // 2])
    files["marker"] = root / "marker.txt"
    files["code"].write_bytes(pickle.dumps({"state_dict": _WritesAFile(files["marker"])}))
    return files


def test_a_source_that_does_not_exist(shapes_dir, tmp_path, densenet):
    message = error_line(densenet(*train(shapes_dir, tmp_path / "run", "--init-from", str(tmp_path / "nope.pth"))), 1)
    assert f"weights {tmp_path / 'nope.pth'} do not exist; pass a .pth/.pt/.bin checkpoint, a .safetensors" in message
    assert not (tmp_path / "run").exists()


def test_weights_of_another_architecture(shapes_dir, tmp_path, densenet, bad_files):
    message = error_line(densenet(*train(shapes_dir, tmp_path / "run", "--init-from", str(bad_files["resnet"]))), 1)
    assert "look like another architecture than this densenet: missing keys" in message
    assert "unexpected keys" in message and "conv1.weight, bn1.weight" in message
    assert "pass the --model it was trained as" in message
    assert not (tmp_path / "run").exists()


def test_a_truncated_pth(shapes_dir, tmp_path, densenet, bad_files):
    message = error_line(densenet(*train(shapes_dir, tmp_path / "run", "--init-from", str(bad_files["cut"]))), 1)
    assert f"{str(bad_files['cut']).lower()} is truncated or not a pytorch checkpoint" in message
    assert not (tmp_path / "run").exists()


def test_a_pth_that_carries_code_is_refused_and_never_runs(shapes_dir, tmp_path, densenet, bad_files):
    message = error_line(densenet(*train(shapes_dir, tmp_path / "run", "--init-from", str(bad_files["code"]))), 1)
    assert "was refused by the restricted unpickler (torch.load weights_only=true)" in message
    assert not bad_files["marker"].exists()
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (("--freeze-until", "layer3"),
     "argument --freeze-until: invalid choice: 'layer3' (choose from 'stem', 'denseblock1'"),
    (("--backbone-lr-scale", "0"), "argument --backbone-lr-scale: expected a positive number, got 0"),
    (("--backbone-lr-scale", "-0.1"), "argument --backbone-lr-scale: expected a positive number, got -0.1"),
    (("--model", "densenet_bc100_k12", "--freeze-until", "denseblock4"),
     "--freeze-until denseblock4: this network has 3 dense blocks; choose stem, denseblock1, denseblock2, denseblock3"),
])
def test_bad_fine_tuning_options(args, expected, shapes_dir, tmp_path, densenet):
    message = error_line(densenet(*train(shapes_dir, tmp_path / "run", *args)), 2)
    assert expected.lower() in message
    assert not (tmp_path / "run").exists()


def test_init_from_together_with_resume(model_dir, tmp_path, densenet):
    message = error_line(densenet("train", "--resume", str(tmp_path / "old"), "--init-from", str(model_dir)), 2)
    assert "--init-from starts a new run from weights, and --resume continues a run from its own checkpoint" in message
    assert "drop one of them" in message

"""model.safetensors + model.json: a round trip that looks through wrappers, and refusals that say what to do."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from torch import nn

from densenet.errors import RunDirError, UnsafeFileError
from densenet.models import create_model
from densenet.rundir import ModelCard, Preprocessing, load, model_files, read_card, save_model

KWARGS = {"in_channels": 1, "num_classes": 3}
CARD = ModelCard(model="d2l_densenet", model_kwargs=KWARGS, classes=["a", "b", "c"],
                 preprocessing=Preprocessing(channels=1, image_size=32, mean=[0.25], std=[0.5]), dataset="toy")


class Wrapper(nn.Module):
    """Stands in for DistributedDataParallel: the real model is ``.module``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


def test_round_trip_through_a_wrapper_gives_the_same_model_and_card(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("d2l_densenet", **KWARGS).eval()
    weights = save_model(tmp_path / "run", Wrapper(model), CARD)
    assert weights == tmp_path / "run" / "model.safetensors"
    assert json.loads((tmp_path / "run" / "model.json").read_text()) == asdict(CARD)

    loaded = load(tmp_path / "run")
    assert not loaded.training and loaded.card == CARD
    assert loaded.state_dict().keys() == model.state_dict().keys()  # no "module." prefix
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    for path in (tmp_path / "run", weights, tmp_path / "run" / "model.json"):
        assert read_card(path) == CARD


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFileError, match="reads weights from model.safetensors only"):
        model_files(tmp_path / "model.pt")
    with pytest.raises(RunDirError, match="does not exist"):
        model_files(tmp_path / "nowhere")
    save_model(tmp_path, create_model("d2l_densenet", **KWARGS), CARD)
    (tmp_path / "model.json").write_text('{"model": "d2l_densenet"}')
    with pytest.raises(RunDirError, match="is not a valid densenet model.json"):
        read_card(tmp_path / "model.json")
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(RunDirError, match=r"not a run directory with a trained model \(missing model.safetensors\)"):
        load(tmp_path)

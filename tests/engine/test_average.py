"""Checkpoint averaging: the mean of the kept epoch checkpoints, BatchNorm statistics re-estimated on the training
split, a run directory of its own; and --keep-checkpoints keeps exactly the last K."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from densenet.engine.average import average_run, average_state_dicts
from densenet.engine.config import load_preset
from densenet.engine.data import build_data
from densenet.engine.distributed import DistContext
from densenet.engine.evaluate import evaluate_run
from densenet.engine.trainer import train
from densenet.errors import UsageError
from densenet.rundir import read_config


def test_the_average_of_state_dicts_is_the_mean_and_counters_are_the_last():
    states = [{"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)},
              {"w": torch.tensor([2.0, 4.0]), "n": torch.tensor(5)},
              {"w": torch.tensor([6.0, 0.0]), "n": torch.tensor(9)}]
    out = average_state_dicts(states)
    assert torch.equal(out["w"], torch.tensor([3.0, 2.0])) and out["w"].dtype == torch.float32
    assert out["n"].item() == 9
    with pytest.raises(ValueError):
        average_state_dicts([states[0], {"w": torch.zeros(2)}])


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory, fashion_dir):
    """Three epochs with the last three epoch checkpoints kept (320 images in 10 batches of 32, no augmentation)."""
    run = tmp_path_factory.mktemp("average") / "run"
    cfg = load_preset("d2l-fashion-mnist").replace({
        "data.data_dir": str(fashion_dir), "data.resize": 32, "data.train_subset": 320, "data.test_subset": 100,
        "run.batch_size": 32, "run.epochs": 3, "run.compile": False, "run.device": "cpu", "run.precision": "fp32",
        "run.keep_checkpoints": 3, "optim.lr": 0.05})
    train(cfg, run, progress=False)
    return run


def test_keep_checkpoints_keeps_the_last_k_epochs(tmp_path, fashion_dir, kept_run):
    names = sorted(p.name for p in (kept_run / "checkpoints").iterdir())
    assert names == ["best.pt", "epoch-0001.pt", "epoch-0002.pt", "epoch-0003.pt", "last.pt"]
    last = torch.load(kept_run / "checkpoints" / "last.pt", weights_only=True)
    third = torch.load(kept_run / "checkpoints" / "epoch-0003.pt", weights_only=True)
    assert all(torch.equal(last["model"][k], third["model"][k]) for k in last["model"])
    cfg = read_config(kept_run).replace({"run.keep_checkpoints": 1, "run.epochs": 2})
    train(cfg, tmp_path / "one", progress=False)  # older ones are pruned
    assert sorted(p.name for p in (tmp_path / "one" / "checkpoints").glob("epoch-*")) == ["epoch-0002.pt"]


def test_average_is_the_mean_of_the_last_k_with_batchnorm_measured_on_the_training_split(tmp_path, kept_run):
    summary = average_run(kept_run, 2, tmp_path / "avg")
    assert summary["averaged"]["epochs"] == [2, 3] and summary["averaged"]["checkpoints"] == ["epoch-0002.pt",
                                                                                             "epoch-0003.pt"]
    assert {"model.safetensors", "model.json", "config.json", "summary.json"} == {p.name for p in
                                                                                  (tmp_path / "avg").iterdir()}
    assert json.loads((tmp_path / "avg" / "summary.json").read_text()) == summary
    assert 0.0 <= summary["test_acc"] <= 1.0 and summary["test_top5_acc"] >= summary["test_acc"]
    saved = load_file(tmp_path / "avg" / "model.safetensors")
    epochs = [torch.load(kept_run / "checkpoints" / f"epoch-000{e}.pt", weights_only=True)["model"] for e in (2, 3)]
    for key in ("features.conv0.weight", "classifier.weight", "features.norm0.weight"):
        assert torch.allclose(saved[key], (epochs[0][key] + epochs[1][key]) / 2, atol=1e-7, rtol=0), key
    # norm0's running mean: over 10 equal batches, the cumulative mean of batch means is the training split's mean
    # of conv0's output, channel by channel (the checkpoints' momentum-averaged statistics are not).
    data = build_data(read_config(kept_run), DistContext())
    weight, bias = saved["features.conv0.weight"], saved.get("features.conv0.bias")
    outputs = torch.cat([torch.nn.functional.conv2d(x, weight, bias, padding=3, stride=2)
                         for x, _ in data.train_loader])
    mean = outputs.double().mean((0, 2, 3)).float()
    assert torch.allclose(saved["features.norm0.running_mean"], mean, atol=1e-5)
    assert not torch.allclose(epochs[1]["features.norm0.running_mean"], mean, atol=1e-3)


def test_average_refuses_more_epochs_than_were_kept_and_a_used_out_folder(tmp_path, kept_run):
    with pytest.raises(UsageError, match=r"kept 3 epoch checkpoints \(epochs 1, 2, 3\), and --last 4 needs 4: "
                                         r"train with --keep-checkpoints 4"):
        average_run(kept_run, 4, tmp_path / "avg")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    with pytest.raises(UsageError, match="already exists and is not empty"):
        average_run(kept_run, 2, tmp_path / "used")
    assert not (tmp_path / "avg").exists()


def test_a_validation_split_run_is_averaged_and_scored_on_its_held_out_images(tmp_path, fashion_dir):
    """The search for a recipe never reads the test set: a --val-split run's average is evaluated on the same
    held-out images its epochs were, and says so."""
    cfg = load_preset("d2l-fashion-mnist").replace({
        "data.data_dir": str(fashion_dir), "data.resize": 32, "data.train_subset": 320, "data.val_split": 100,
        "run.batch_size": 32, "run.epochs": 2, "run.compile": False, "run.device": "cpu", "run.precision": "fp32",
        "run.keep_checkpoints": 2, "optim.lr": 0.05})
    train(cfg, tmp_path / "run", progress=False)
    summary = average_run(tmp_path / "run", 2, tmp_path / "avg")
    assert summary["eval_split"] == "validation" and summary["averaged"]["epochs"] == [1, 2]
    again = evaluate_run(tmp_path / "avg", split="validation")
    assert again["examples"] == 100 and again["accuracy"] == pytest.approx(summary["test_acc"], abs=1e-6)

"""`--val-split N`: a search evaluates on training images held out, never on the test set."""

import json

import pytest
import torch
from tests.helpers import run_cli
from tests.run_dirs import binary_run

from densenet.engine import data as data_module
from densenet.engine.config import load_preset
from densenet.engine.distributed import DistContext
from densenet.errors import ConfigError


def val_config(data_dir, **overrides):
    base = {"data.data_dir": str(data_dir), "data.resize": 32, "data.val_split": 500, "data.train_subset": 1000,
            "data.download": False, "run.batch_size": 64, "run.epochs": 1, "run.compile": False, "run.device": "cpu"}
    return load_preset("d2l-fashion-mnist").replace({**base, **overrides})


def test_the_held_out_images_are_the_same_for_every_seed_and_disjoint_from_training(fashion_dir, tmp_path):
    folder = fashion_dir
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    runs = [data_module.build_data(val_config(folder, **{"run.seed": seed}), ctx) for seed in (0, 1)]
    assert [(d.eval_split, d.num_train, d.num_test) for d in runs] == [("validation", 1000, 500)] * 2
    val = [torch.cat([x for x, _ in d.test_loader]) for d in runs]
    assert torch.equal(val[0], val[1])  # the seed picks the training subset, not the validation draw
    full = data_module.load_split(val_config(folder, **{"data.train_subset": None, "data.val_split": None}), "train")
    held = full.subset(500, seed=data_module.VAL_SEED)
    assert torch.bincount(held.labels).tolist() == [50] * 10
    rest, _ = full.split(500, seed=data_module.VAL_SEED)
    train_keys = {img.numpy().tobytes() for img in rest.images}
    assert sum(img.numpy().tobytes() in train_keys for img in held.images) <= 2  # Fashion-MNIST has a few twins


def test_a_run_with_a_validation_split_never_reads_the_test_set_and_says_so(fashion_dir, tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "--preset", "densenet-fashion-mnist", "--data-dir", str(fashion_dir), "--resize", "32",
                     "--val-split", "500", "--train-subset", "1000", "--batch-size", "64", "--epochs", "2",
                     "--no-compile", "--precision", "fp32", "--device", "cpu", "--no-progress", "--out", str(run))
    assert result.returncode == 0, result.stderr[-2000:]
    log = result.stdout + result.stderr
    assert "loading fashion-mnist train split" in log and "test split" not in log
    assert "validation: 500 training images held out and evaluated each epoch; the test set is not read" in log
    assert "(1000 train / 500 validation images at 32px)" in log
    assert "epoch 2/2: loss" in log and ", val acc 0." in log and "test acc" not in log
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval_split"] == "validation" and summary["test_acc"] > 0.4  # chance is 0.1
    assert json.loads((run / "config.json").read_text())["data"]["val_split"] == 500
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    # `densenet evaluate --split validation` meets the same 500 images again, and scores the final weights alike
    evaluated = run_cli("evaluate", str(run), "--data-dir", str(fashion_dir), "--split", "validation", "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    result = json.loads(evaluated.stdout)
    assert (result["split"], result["examples"]) == ("validation", 500)
    assert result["accuracy"] == pytest.approx(summary["test_acc"], abs=1 / 500 + 1e-9)  # fp32 on both sides
    flipped = run_cli("evaluate", str(run), "--data-dir", str(fashion_dir), "--split", "validation", "--tta", "flip")
    assert flipped.returncode == 0 and " on 500 validation images (flip TTA)" in flipped.stdout


def test_evaluating_a_validation_split_the_run_does_not_have_is_refused(tmp_path):
    run = binary_run(tmp_path)
    result = run_cli("evaluate", str(run), "--split", "validation")
    assert result.returncode == 2
    assert f"error: {run} was trained without --val-split, so it has no validation split; evaluate its test set" \
        in result.stderr


@pytest.mark.parametrize("overrides, message", [
    ({"data.test_subset": 100}, "--test-subset has nothing to act on"),
    ({"data.dataset": "image-folder"}, "keep a validation collection of its own"),
])
def test_conflicting_options_are_refused(fashion_dir, overrides, message):
    with pytest.raises(ConfigError, match=message):
        val_config(fashion_dir, **overrides)


def test_a_training_subset_larger_than_what_is_left_is_refused(fashion_dir):
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    config = val_config(fashion_dir, **{"data.val_split": 5000, "data.train_subset": 59000})
    with pytest.raises(ConfigError, match=r"--train-subset 59000 is larger than the training images left after "
                                          r"--val-split 5000 \(55000 images\)"):
        data_module.build_data(config, ctx)


def test_the_cli_refuses_a_validation_split_as_large_as_the_training_set(fashion_dir, tmp_path):
    result = run_cli("train", "--preset", "d2l-fashion-mnist", "--data-dir", str(fashion_dir), "--val-split", "60000",
                     "--no-compile", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.returncode == 2  # a configuration error, as for every bad option value
    assert "error: --val-split 60000 holds out at least the whole training set (60000 images)" in result.stderr

"""The modern recipe's flags through the real CLI: on the default compiled path, then `densenet average` and
`densenet evaluate` of the averaged run; and each bad value's one `error:` line."""

from __future__ import annotations

import json

import pytest

from densenet.engine.config import load_preset
from densenet.engine.performance import cpu_supports_bf16
from densenet.engine.trainer import train
from tests.cli.reliability import cli_json_ok, error_line

# 256 images at batch 32: 8 micro-batches an epoch, 4 optimizer steps. A small d2l_densenet keeps compiling short.
RECIPE = ["--preset", "densenet-fashion-mnist", "--resize", "32", "--train-subset", "256", "--test-subset", "100",
          "--batch-size", "32", "--epochs", "2", "--model-kwargs", '{"block_config": [2, 2, 2, 2], "growth_rate": 16}',
          "--ema", "0.9", "--accum-steps", "2", "--optimizer", "adamw", "--lr", "0.002", "--betas", "0.9,0.99",
          "--momentum", "0", "--no-nesterov", "--no-decay-bn-bias", "--keep-checkpoints", "2", "--no-progress"]


def test_the_recipe_on_the_compiled_path_then_average_and_evaluate(tmp_path, fashion_dir, densenet):
    run, avg = tmp_path / "run", tmp_path / "avg"
    summary = cli_json_ok(densenet, "train", *RECIPE, "--data-dir", str(fashion_dir), "--out", str(run))
    assert summary["compiled"] is True and summary["precision"] == ("bf16" if cpu_supports_bf16() else "fp32")
    assert summary["weights"] in ("raw", "ema") and 0 <= summary["ema_test_acc"] <= 1 and "test_top5_acc" in summary
    config = json.loads((run / "config.json").read_text())
    assert (config["optim"]["betas"], config["optim"]["ema"], config["run"]["accum_steps"]) == ([0.9, 0.99], 0.9, 2)
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert all({"test_acc", "ema_test_acc", "test_top5_acc", "ema_test_top5_acc", "weights"} <= set(r) for r in rows)

    averaged = cli_json_ok(densenet, "average", str(run), "--last", "2", "--data-dir", str(fashion_dir),
                           "--out", str(avg))
    assert averaged["averaged"]["epochs"] == [1, 2] and averaged["test_acc"] > 0.1  # chance is 0.1
    evaluation = cli_json_ok(densenet, "evaluate", str(avg), "--data-dir", str(fashion_dir), "--test-subset", "100")
    # The same 100 test images and the same fp32 model: evaluate reproduces the average's figures.
    assert evaluation["accuracy"] == averaged["test_acc"]
    assert evaluation["top5_accuracy"] == pytest.approx(averaged["test_top5_acc"])


@pytest.mark.parametrize("flag, value, message", [
    ("--accum-steps", "0", "argument --accum-steps: expected a positive integer, got 0"),
    ("--ema", "1.5", "ema is the decay of the weights' moving average and must lie strictly between 0 and 1, "
                     "such as 0.999; got 1.5"),
    ("--ema", "0", "must lie strictly between 0 and 1, such as 0.999; got 0.0"),
    ("--optimizer", "adam", "argument --optimizer: invalid choice: 'adam'"),
    ("--betas", "0.9", "betas must be two numbers in [0, 1), such as 0.9,0.999; got [0.9]"),
])
def test_bad_recipe_values(flag, value, message, tmp_path, densenet):
    result = densenet("train", flag, value, "--out", str(tmp_path / "run"))
    assert message in error_line(result, 2)
    assert not (tmp_path / "run").exists()


def test_average_with_fewer_checkpoints_kept_than_asked(tmp_path, fashion_dir, densenet):
    cfg = load_preset("d2l-fashion-mnist").replace({
        "data.data_dir": str(fashion_dir), "data.resize": 32, "data.train_subset": 64, "data.test_subset": 32,
        "run.batch_size": 32, "run.epochs": 2, "run.compile": False, "run.device": "cpu", "run.precision": "fp32",
        "run.keep_checkpoints": 1})
    train(cfg, tmp_path / "run", progress=False)
    message = error_line(densenet("average", str(tmp_path / "run"), "--last", "2", "--out", str(tmp_path / "avg")), 2)
    assert message == (f"{tmp_path}/run kept 1 epoch checkpoint (epochs 2), and --last 2 needs 2: train with "
                       "--keep-checkpoints 2 (or more) to keep them, or average fewer").lower()
    assert not (tmp_path / "avg").exists()

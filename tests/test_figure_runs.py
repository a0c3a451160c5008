"""The run records' blocks: the long preset's search, its runs' mean and spread, and the comparison table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.figure_runs import (
    ABLATION,
    RUN_RECORDS,
    SEARCH,
    fashion_mnist_table,
    long_ablation,
    long_average,
    long_search,
    long_tta,
    preset_comparison,
    seed_runs,
)

LSCPU = ("CPU(s):  2\nModel name:   Intel Xeon\nFlags:  fpu amx_bf16\nbf16/AMX flags: amx_bf16 amx_int8 avx512_bf16\n")


def record(folder: Path, started: str, summary: dict, flags: str = "", seed: int = 0, resize: int = 64) -> Path:
    folder.mkdir(parents=True)
    ema = summary.pop("ema", None)
    base = {"epochs": 8, "precision": "bf16", "elapsed_s": 780.0, "params": 758226, "eval_split": "validation"}
    (folder / "summary.json").write_text(json.dumps({**base, **summary}))
    (folder / "config.json").write_text(json.dumps({"run": {"seed": seed}, "data": {"resize": resize},
                                                         "optim": {"ema": ema}}))
    (folder / "lscpu.txt").write_text(LSCPU)
    (folder / "command.txt").write_text(f"densenet train --preset p --seed {seed} --out x --no-progress {flags}\n"
                                        f"started {started}, finished later, exit 0, git abc\n")
    return folder


def evaluation(folder: Path, name: str, split: str, tta: str | None, accuracy: float) -> None:
    """What `densenet evaluate --json` writes, reduced to the keys the blocks read."""
    (folder / f"{name}.json").write_text(json.dumps({"split": split, "tta": tta, "accuracy": accuracy,
                                                      "examples": 5000}))


def test_the_search_table_lists_every_variant_in_the_order_it_ran(tmp_path):
    root = tmp_path / SEARCH
    record(root / "densenet-fashion-mnist-seed0-crop-erase", "2026-12-01T23:00:00Z",
           {"test_acc": 0.9402, "ema_test_acc": 0.9431}, "--val-split 5000 --crop-padding 4 --random-erasing 0.25")
    record(root / "densenet-fashion-mnist-seed0-crop", "2026-12-01T22:30:00Z",
           {"test_acc": 0.9388, "ema_test_acc": 0.9410}, "--val-split 5000 --crop-padding 4")
    rows = long_search(tmp_path).splitlines()
    assert rows[2] == "| `-crop` | `--val-split 5000 --crop-padding 4` | 8 | 0.9388 | 0.9410 | 13.0 |"
    assert rows[3].startswith("| `-crop-erase` | `--val-split 5000 --crop-padding 4 --random-erasing 0.25` | 8 | "
                              "0.9402")
    assert "Every run on Intel Xeon, 2 CPUs (bf16/AMX flags: amx_bf16 amx_int8 avx512_bf16), bf16" in rows[-1]
    record(root / "densenet-fashion-mnist-seed0-long-avg", "2026-12-06T14:00:00Z", {"test_acc": 0.9421, "epochs": 45},
           "--val-split 5000 --epochs 45 --keep-checkpoints 10")  # trained without --ema
    assert long_search(tmp_path).splitlines()[4] == ("| `-long-avg` | `--val-split 5000 --epochs 45 --keep-checkpoints "
                                                      "10` | 45 | 0.9421 | — (no `--ema`) | 13.0 |")


def test_a_search_run_that_read_the_test_set_is_refused(tmp_path):
    record(tmp_path / SEARCH / "densenet-fashion-mnist-seed0-x", "2026-12-01T22:30:00Z",
           {"test_acc": 0.95, "eval_split": "test"})
    with pytest.raises(ValueError, match="evaluates on its validation split, not on test"):
        long_search(tmp_path)


def test_flip_tta_is_tabled_for_each_variant_measured_with_its_change(tmp_path):
    root = tmp_path / SEARCH
    assert long_tta(tmp_path).startswith("Not measured yet: `bash scripts/long-tta.sh`")
    run = record(root / "densenet-fashion-mnist-seed0-crop-erase", "2026-12-01T23:00:00Z", {"test_acc": 0.9338})
    record(root / "densenet-fashion-mnist-seed0-crop", "2026-12-01T22:30:00Z", {"test_acc": 0.9322})  # not measured
    evaluation(run, "evaluation-validation", "validation", None, 0.9336)
    evaluation(run, "evaluation-validation-flip", "validation", "flip", 0.9362)
    rows = long_tta(tmp_path).splitlines()
    assert rows[2:4] == ["| `-crop-erase` | 0.9336 | 0.9362 | +0.26 pt |", ""]
    assert "on each run's 5,000 held-out training images" in rows[-1]
    evaluation(run, "evaluation-validation-flip", "test", "flip", 0.95)  # the test set under a validation name
    with pytest.raises(ValueError, match="evaluated split 'test' with TTA 'flip', not 'validation' with 'flip'"):
        long_tta(tmp_path)


def average(folder: Path, k: int, epochs: list[int], accuracy: float, split: str = "validation") -> None:
    """What `densenet average --json` writes, reduced to the keys the block reads."""
    (folder / f"average-last{k}.json").write_text(json.dumps({
        "test_acc": accuracy, "eval_split": split,
        "averaged": {"run_dir": f"runs/records/{folder.name}", "epochs": epochs}}))


def test_checkpoint_averages_are_tabled_against_the_last_epoch_as_trained(tmp_path):
    root = tmp_path / SEARCH
    assert long_average(tmp_path).startswith("Not measured yet: `bash scripts/long-average.sh NAME K`")
    run = record(root / "densenet-fashion-mnist-seed0-crop-erase-avg", "2026-12-06T12:00:00Z",
                 {"test_acc": 0.9338, "weights": "raw"})
    record(root / "densenet-fashion-mnist-seed0-crop", "2026-12-01T22:30:00Z", {"test_acc": 0.9322})  # not averaged
    evaluation(run, "evaluation-validation", "validation", None, 0.9342)
    average(run, 3, [6, 7, 8], 0.9361)
    average(run, 1, [8], 0.9340)
    rows = long_average(tmp_path).splitlines()
    assert rows[2:6] == ["| `-crop-erase-avg` | epoch 8 | as trained | 0.9342 | |",
                         "| `-crop-erase-avg` | epoch 8 | re-estimated | 0.9340 | -0.02 pt |",
                         "| `-crop-erase-avg` | mean of epochs 6-8 | re-estimated | 0.9361 | +0.19 pt |", ""]
    assert "on the run's 5,000 held-out training images, in fp32" in rows[-1]

    average(run, 3, [5, 6, 7], 0.94)  # not the run's last epochs
    with pytest.raises(ValueError, match=r"averages epochs \[5, 6, 7\] of .*, not the last 3 of"):
        long_average(tmp_path)
    average(run, 3, [6, 7, 8], 0.95, split="test")
    with pytest.raises(ValueError, match="average-last3.json is scored on the test split"):
        long_average(tmp_path)
    average(run, 3, [6, 7, 8], 0.9361)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "weights": "ema"}))
    with pytest.raises(ValueError, match="holds the ema weights"):
        long_average(tmp_path)


def long_runs(root: Path) -> str:
    return seed_runs(root, "densenet-fashion-mnist-long")


def test_the_long_runs_give_each_seed_and_the_mean_with_its_sample_spread(tmp_path):
    root = tmp_path / RUN_RECORDS
    assert long_runs(tmp_path) == "No run of `densenet-fashion-mnist-long` has a committed record yet.\n"
    record(root / "densenet-fashion-mnist-long-seed0", "2026-12-02T00:00:00Z", {"test_acc": 0.919, "interrupted": True})
    assert long_runs(tmp_path) == "No run of `densenet-fashion-mnist-long` has a committed record yet.\n"  # Ctrl-C
    (root / "densenet-fashion-mnist-long-seed0" / "summary.json").unlink()
    (root / "densenet-fashion-mnist-long-seed0").rename(tmp_path / "gone")
    record(root / "densenet-fashion-mnist-long-seed0", "2026-12-02T00:00:00Z",
           {"test_acc": 0.9541, "ema_test_acc": 0.9550, "epochs": 45, "elapsed_s": 4500.0, "eval_split": "test",
            "ema": 0.999})
    assert "One seed so far (0.9550)" in long_runs(tmp_path)
    record(root / "densenet-fashion-mnist-long-seed1", "2026-12-02T02:00:00Z",
           {"test_acc": 0.9555, "ema_test_acc": 0.9570, "epochs": 45, "elapsed_s": 4620.0, "eval_split": "test",
            "ema": 0.999}, seed=1)
    lines = long_runs(tmp_path).splitlines()
    assert lines[2].startswith("| 0 | **0.9550** | EMA, last epoch | 45 | 75.0 min | Intel Xeon, 2 CPUs")
    assert lines[3].startswith("| 1 | **0.9570** | EMA, last epoch | 45 | 77.0 min |")
    assert lines[0].endswith("| machine |")  # no flip-TTA evaluation filed yet: no column for it
    # mean 0.9560; sample std sqrt(2 * 0.001^2 / 1) = 0.0014
    assert lines[-1] == "Mean over 2 seeds: **0.9560 ± 0.0014** (sample standard deviation)."
    evaluation(root / "densenet-fashion-mnist-long-seed0", "evaluation-test-flip", "test", "flip", 0.9571)
    lines = long_runs(tmp_path).splitlines()
    assert lines[3].endswith("| — |")  # seed 1's flip TTA not measured yet
    assert lines[-1].endswith("(sample standard deviation).")  # one seed of two: no mean
    evaluation(root / "densenet-fashion-mnist-long-seed1", "evaluation-test-flip", "test", "flip", 0.9591)
    lines = long_runs(tmp_path).splitlines()
    assert lines[2].endswith("| 0.9571 |") and lines[3].endswith("| 0.9591 |")
    assert lines[-1].endswith("(sample standard deviation). With flip TTA: 0.9581 ± 0.0014.")


def test_without_ema_the_raw_weights_are_the_headline(tmp_path):
    record(tmp_path / RUN_RECORDS / "densenet-fashion-mnist-long-seed3", "2026-12-02T00:00:00Z",
           {"test_acc": 0.9561, "epochs": 40, "elapsed_s": 4000.0, "eval_split": "test"}, seed=3)
    assert long_runs(tmp_path).splitlines()[2].startswith("| 3 | **0.9561** | raw, last epoch | 40 | 66.7 min |")


def test_the_comparison_table_keeps_each_preset_to_its_own_runs(tmp_path):
    root = tmp_path / RUN_RECORDS
    record(root / "densenet-fashion-mnist-seed0", "2026-12-01T10:00:00Z",
           {"test_acc": 0.9367, "epochs": 10, "eval_split": "test"})
    record(root / "densenet-fashion-mnist-seed1", "2026-12-01T12:00:00Z",
           {"test_acc": 0.9385, "epochs": 10, "eval_split": "test"}, seed=1)
    record(root / "densenet-fashion-mnist-long-seed0", "2026-12-02T00:00:00Z",
           {"test_acc": 0.9541, "ema_test_acc": 0.9550, "epochs": 45, "elapsed_s": 4500.0, "eval_split": "test"})
    rows = {line.split(" | ")[0].strip("| `"): line for line in fashion_mnist_table(tmp_path).splitlines()[2:]}
    assert "**0.9376 ± 0.0013 (2 seeds)**" in rows["densenet-fashion-mnist` (d2l_densenet)"]
    assert "10 epochs at 64 px, 13.0 min on Intel Xeon, bf16" in rows["densenet-fashion-mnist` (d2l_densenet)"]
    assert "**0.9541 (1 seed)**" in rows["densenet-fashion-mnist-long` (d2l_densenet)"]  # raw: no --ema
    assert "not run yet" in rows["d2l-fashion-mnist"]
    assert "| 0.954 |" in rows["Fashion-MNIST benchmark: DenseNet-BC"]


def test_the_preset_comparison_is_paired_over_shared_seeds_and_welch_otherwise(tmp_path):
    root = tmp_path / RUN_RECORDS
    test = {"eval_split": "test"}
    record(root / "densenet-fashion-mnist-seed0", "2026-12-01T10:00:00Z", {"test_acc": 0.936, **test})
    record(root / "d2l-fashion-mnist-seed0", "2026-12-01T11:00:00Z", {"test_acc": 0.908, **test})
    record(root / "d2l-fashion-mnist-seed1", "2026-12-01T12:00:00Z", {"test_acc": 0.900, **test}, seed=1)
    compare = lambda: preset_comparison(tmp_path, "densenet-fashion-mnist", "d2l-fashion-mnist")  # noqa: E731
    assert compare().startswith("Not compared yet: `densenet-fashion-mnist` has 1 recorded seed(s)")
    record(root / "densenet-fashion-mnist-seed1", "2026-12-01T13:00:00Z", {"test_acc": 0.938, **test}, seed=1)
    record(root / "densenet-fashion-mnist-seed2", "2026-12-01T14:00:00Z", {"test_acc": 0.940, **test}, seed=2)
    # Seeds {0, 1, 2} against {0, 1}: Welch. Means 0.9380 and 0.9040: +3.40 points. Variances of the means
    # 0.002^2 / 3 = 1.3333e-6 and 0.005657^2 / 2 = 1.6e-5; Welch df = (1.7333e-5)^2 / ((1.3333e-6)^2 / 2 +
    # (1.6e-5)^2 / 1) = 1.17, and with the stats module's t975(1.17) = 9.083 (its quantiles are tested in
    # tests/experiments) the half-width is 9.083 * sqrt(1.7333e-5) = 3.78 points.
    assert compare() == ("`densenet-fashion-mnist` 0.9380 ± 0.0020 (3 seeds) against `d2l-fashion-mnist` 0.9040 ± "
                         "0.0057 (2 seeds): a difference of **+3.40 points**, 95% Welch t interval -0.38 to +7.18 "
                         "points (1.2 degrees of freedom).\n")
    record(root / "d2l-fashion-mnist-seed2", "2026-12-01T15:00:00Z", {"test_acc": 0.905, **test}, seed=2)
    # The same seeds: paired. Differences 0.028, 0.038, 0.035: mean 3.37 points, sample sd 0.0051316, so the
    # half-width is t975(2) * 0.0051316 / sqrt(3) = 4.3027 * 0.0029627 = 1.27 points.
    assert compare().endswith("a difference of **+3.37 points**, 95% paired t interval +2.09 to +4.64 points "
                              "(2.0 degrees of freedom).\n")


def test_a_validation_split_run_is_no_preset_run(tmp_path):
    record(tmp_path / RUN_RECORDS / "d2l-fashion-mnist-seed0", "2026-12-01T11:00:00Z", {"test_acc": 0.91})
    with pytest.raises(ValueError, match="scored on the test set, not on its validation split"):
        seed_runs(tmp_path, "d2l-fashion-mnist")


PLANNED = {"crop": ("data", "random_crop_padding", 0), "erasing": ("data", "random_erasing", 0.0),
           "hflip": ("data", "hflip", False), "label-smoothing": ("optim", "label_smoothing", 0.0)}


def with_config(folder: Path, **data: Any) -> Path:
    """Give a record the long preset's data settings, changed by ``data``."""
    config = json.loads((folder / "config.json").read_text())
    config["data"] = {"resize": 64, "hflip": True, "random_crop_padding": 4, "random_erasing": 0.25, **data}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_the_ablation_table_sets_each_run_beside_the_full_recipe_at_its_seed(tmp_path):
    assert long_ablation(tmp_path, PLANNED).startswith("No ablation run has a record yet")
    for seed, acc, started in ((0, 0.9480, "2026-12-01T23:34:21Z"), (1, 0.9482, "2026-12-02T01:44:38Z")):
        with_config(record(tmp_path / RUN_RECORDS / f"densenet-fashion-mnist-long-seed{seed}", started,
                           {"test_acc": acc, "eval_split": "test", "epochs": 45}, seed=seed))
    run = with_config(record(tmp_path / ABLATION / "densenet-fashion-mnist-long-no-erasing-seed0",
                             "2026-12-06T05:20:00Z", {"test_acc": 0.9461, "eval_split": "test", "epochs": 45,
                                                      "elapsed_s": 4800.0}), random_erasing=0.0)
    rows = long_ablation(tmp_path, PLANNED).splitlines()
    assert rows[2] == ("| erasing | 0.9461 | -0.19 pt | 0 | 45 | 80.0 min | Intel Xeon, 2 CPUs (bf16/AMX flags: "
                       "amx_bf16 amx_int8 avx512_bf16), bf16 |")
    assert rows[4] == ("Each row is one run, a single draw of its seed; the full recipe's own seeds are "
                       "0.9481 ± 0.0001 (2 seeds).")
    assert rows[-1] == "Not run yet: crop, hflip, label-smoothing."
    with_config(run, random_erasing=0.0, hflip=False)  # a second change: the row would not measure erasing alone
    with pytest.raises(ValueError, match=r"differs from densenet-fashion-mnist-long-seed0's in \['data.hflip', "
                                         r"'data.random_erasing'\], not in data.random_erasing alone"):
        long_ablation(tmp_path, PLANNED)
    with_config(run, random_erasing=0.0)
    record(tmp_path / ABLATION / "densenet-fashion-mnist-long-no-ema-seed0", "2026-12-06T07:00:00Z",
           {"test_acc": 0.95, "eval_split": "test"})
    with pytest.raises(ValueError, match="'ema' is not an ingredient of densenet-fashion-mnist-long"):
        long_ablation(tmp_path, PLANNED)


def test_an_ablation_run_without_full_runs_or_scored_on_a_validation_split(tmp_path):
    run = record(tmp_path / ABLATION / "densenet-fashion-mnist-long-no-crop-seed0", "2026-12-06T05:20:00Z",
                 {"test_acc": 0.94, "eval_split": "test"})
    rows = long_ablation(tmp_path, PLANNED).splitlines()
    assert rows[2].startswith("| crop | 0.9400 | no full run at this seed | 0 |")
    assert rows[4] == "Each row is one run, a single draw of its seed."
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "eval_split": "validation"}))
    with pytest.raises(ValueError, match="scored on the test set, not on validation"):
        long_ablation(tmp_path, PLANNED)

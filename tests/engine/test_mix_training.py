"""Mixup, CutMix and RandAugment/TrivialAugment in real training runs: no train accuracy and the one log line that
says why, an exact resume from mid-epoch, and the compiled default path through the CLI (torchrun:
tests/engine/test_distributed.py)."""

from __future__ import annotations

import json
import math

import torch
from safetensors.torch import load_file
from tests.helpers import run_cli

from densenet.engine.config import load_preset
from densenet.engine.mix import Mixer
from densenet.engine.performance import cpu_supports_bf16
from densenet.engine.trainer import train

WHY = ("mixing: Mixup alpha 0.4 and CutMix alpha 1.0 on 80% of the batches; the train loss is the soft-target "
       "cross-entropy, and no train accuracy is reported (a mixed picture has no single true class)")


def mix_config(fashion_dir, **overrides):
    """256 pictures at 32 px in batches of 64 (4 per epoch), fp32, with dropout, flips, RandAugment, Mixup and
    CutMix on 80% of the batches, and label smoothing: every random stream must resume exactly."""
    return load_preset("d2l-fashion-mnist").replace({
        "data.data_dir": str(fashion_dir), "data.resize": 32, "data.train_subset": 256, "data.test_subset": 100,
        "run.batch_size": 64, "run.epochs": 2, "run.compile": False, "run.device": "cpu", "run.precision": "fp32",
        "data.hflip": True, "data.augment": "randaugment", "data.mixup": 0.4, "data.cutmix": 1.0,
        "data.mix_prob": 0.8, "optim.label_smoothing": 0.1, "optim.momentum": 0.9,
        "model.kwargs": {"drop_rate": 0.1}, **overrides})


def mix_state_after(draws: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    """The mixing generator's state after ``draws`` batches, from a twin of the run's mixer."""
    twin = Mixer(0.4, 1.0, 0.8, 0.5, 10, seed)
    for _ in range(draws):
        twin.draw(size, size)
    return twin.generator.get_state()


def rows_of(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_mixed_augmented_run_reports_no_train_accuracy_and_resumes_mid_epoch_exactly(tmp_path, fashion_dir):
    cfg = mix_config(fashion_dir)
    said: list[str] = []
    full = train(cfg, tmp_path / "full", progress=False, log=said.append)
    assert [m for m in said if m.startswith("mixing:")] == [WHY]
    epoch_lines = [m for m in said if m.startswith("epoch ")]
    assert len(epoch_lines) == 2 and not any("train acc" in m for m in epoch_lines)
    assert full["train_acc"] is None and [r["train_acc"] for r in rows_of(tmp_path / "full")] == [None, None]
    assert all(math.isfinite(r["loss"]) for r in rows_of(tmp_path / "full"))

    split = tmp_path / "split"
    train(cfg, split, progress=False, on_batch_end=lambda s: (s.epoch, s.batch) == (2, 1))
    state = torch.load(split / "checkpoints" / "last.pt", weights_only=True)
    assert (state["partial"]["epoch"], state["partial"]["batches"]) == (2, 1)
    assert torch.equal(state["rng"]["mix"], mix_state_after(5))  # 4 batches of epoch 1, 1 of epoch 2
    train(cfg, split, resume=True, progress=False)
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(split / "model.safetensors")
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    keep = ("epoch", "loss", "train_acc", "test_acc", "test_loss", "examples", "lr")
    assert [[{k: r[k] for k in keep} for r in rows_of(d)] for d in (tmp_path / "full", split)] == \
        [[{k: r[k] for k in keep} for r in rows_of(tmp_path / "full")]] * 2

    plain = train(cfg.replace({"data.mixup": 0.0, "data.cutmix": 0.0, "run.epochs": 1}), tmp_path / "plain",
                  progress=False)
    assert plain["train_acc"] is not None  # and mixing changed what trained:
    assert rows_of(tmp_path / "plain")[0]["loss"] != rows_of(tmp_path / "full")[0]["loss"]


def test_the_compiled_default_path_trains_with_mixing_and_trivialaugment(tmp_path, fashion_dir):
    run = tmp_path / "run"
    result = run_cli("train", "--preset", "densenet-fashion-mnist", "--data-dir", str(fashion_dir), "--resize", "32",
                     "--train-subset", "256", "--test-subset", "100", "--batch-size", "64", "--epochs", "1",
                     "--mixup", "0.4", "--cutmix", "1.0", "--mix-prob", "0.8", "--augment", "trivialaugment",
                     "--model-kwargs", '{"block_config": [2, 2, 2, 2], "growth_rate": 16}', "--no-progress",
                     "--out", str(run), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["compiled"] is True and summary["precision"] == ("bf16" if cpu_supports_bf16() else "fp32")
    assert summary["train_acc"] is None and math.isfinite(summary["loss"])
    assert result.stderr.count("no train accuracy is reported") == 1
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert torch.equal(state["rng"]["mix"], mix_state_after(4))
    assert json.loads((run / "config.json").read_text())["data"]["augment"] == "trivialaugment"


def test_the_augment_policy_reaches_the_in_memory_batches_and_the_photos():
    from densenet.data.augment import RandAugment
    from densenet.engine.config import TrainConfig
    from densenet.engine.data import augmentation, photo_transforms

    config = TrainConfig().replace({"data.augment": "trivialaugment", "data.ra_magnitude": 5, "data.ra_ops": 3})
    assert augmentation(config).policy == RandAugment("trivialaugment", 5, 3)
    assert photo_transforms(config.replace({"data.dataset": "image-folder"}))[0].policy == RandAugment(
        "trivialaugment", 5, 3)
    assert augmentation(TrainConfig()) is None and photo_transforms(TrainConfig())[0].policy is None

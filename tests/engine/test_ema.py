"""--ema: one update against a hand computation, the selection of the winning weights, and exact resume with
EMA, gradient accumulation, AdamW and kept epoch checkpoints on."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from densenet.engine import ema as ema_module
from densenet.engine import trainer as trainer_module
from densenet.engine.config import load_preset
from densenet.engine.ema import WeightEMA, score, winner
from densenet.engine.trainer import train


def test_one_update_is_the_hand_computed_moving_average_and_buffers_are_copied():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = WeightEMA(model, decay=0.9)
    ema.update(model)  # the first update copies the weights
    first = {k: v.clone() for k, v in model.state_dict().items()}
    assert all(torch.equal(ema.module.state_dict()[k], first[k]) for k in first)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model.train()(torch.randn(8, 3))  # moves BatchNorm's running statistics
    ema.update(model)
    after = model.state_dict()
    for name, _ in model.named_parameters():
        expected = 0.9 * first[name] + 0.1 * after[name]
        assert torch.allclose(ema.module.state_dict()[name], expected, atol=1e-7, rtol=0), name
    for name, _ in model.named_buffers():  # copied, not averaged
        assert torch.equal(ema.module.state_dict()[name], after[name]), name
    assert not torch.equal(after["1.running_mean"], first["1.running_mean"])

    again = WeightEMA(model, decay=0.9)
    again.load_state_dict(ema.state_dict())
    assert int(again.state_dict()["updates"]) == 2
    for e in (ema, again):  # the restored average continues exactly
        e.update(model)
    assert all(torch.equal(ema.module.state_dict()[k], again.module.state_dict()[k]) for k in first)


def test_the_winner_is_the_higher_score_and_raw_wins_ties():
    assert winner({"test_acc": 0.8, "ema_test_acc": 0.81}, "test_acc") == "ema"
    assert winner({"test_acc": 0.8, "ema_test_acc": 0.8}, "test_acc") == "raw"
    assert winner({"test_acc": 0.8}, "test_acc") == "raw"
    assert score({"test_acc": 0.8, "ema_test_acc": 0.81}, "test_acc") == 0.81
    assert winner({"test_mean_auroc": None, "ema_test_mean_auroc": 0.6}, "test_mean_auroc") == "ema"


def recipe_config(fashion_dir, **overrides):
    # 320 images at batch 32: 10 micro-batches an epoch, in optimizer steps of 3, 3, 3 and 1.
    base = {"data.data_dir": str(fashion_dir), "data.resize": 32, "data.train_subset": 320, "data.test_subset": 100,
            "run.batch_size": 32, "run.epochs": 2, "run.compile": False, "run.device": "cpu", "run.precision": "fp32",
            "data.random_crop_padding": 2, "data.hflip": True, "model.kwargs": {"drop_rate": 0.2},
            "optim.optimizer": "adamw", "optim.lr": 0.002, "optim.betas": [0.8, 0.99], "optim.weight_decay": 0.05,
            "optim.decay_bn_bias": False, "optim.schedule": "cosine", "optim.schedule_per": "step",
            "optim.ema": 0.9, "run.accum_steps": 3, "run.keep_checkpoints": 2}
    return load_preset("d2l-fashion-mnist").replace({**base, **overrides})


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            assert_equal_states(a[key], b[key])
        elif isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def test_a_run_with_ema_accumulation_and_adamw_resumes_exactly(tmp_path, fashion_dir, one_thread):
    cfg = recipe_config(fashion_dir)
    full = train(cfg, tmp_path / "full", progress=False)
    seen = []
    # Asked to stop after micro-batch 4 of epoch 2: the step of micro-batches 4-6 ends first.
    stopped = train(cfg, tmp_path / "split", progress=False,
                    on_batch_end=lambda s: seen.append((s.epoch, s.batch)) or (s.epoch, s.batch) == (2, 4))
    assert stopped["interrupted"] and seen[-1] == (2, 6)
    partial = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)
    assert partial["partial"]["batches"] == 6 and int(partial["ema"]["updates"]) == 4 + 2
    train(cfg, tmp_path / "split", resume=True, progress=False)

    a, b = (torch.load(tmp_path / d / "checkpoints" / "last.pt", weights_only=True) for d in ("full", "split"))
    for key in ("model", "optimizer", "scheduler", "ema"):
        assert_equal_states(a[key], b[key])
    assert int(a["ema"]["updates"]) == 8 and a["scheduler"]["last_epoch"] == 8  # 4 optimizer steps per epoch
    assert {s["step"].item() for s in a["optimizer"]["state"].values()} == {8.0}
    assert {tuple(g["betas"]) for g in a["optimizer"]["param_groups"]} == {(0.8, 0.99)}
    assert {g["weight_decay"] for g in a["optimizer"]["param_groups"]} == {0.0, 0.05}  # --no-decay-bn-bias
    rows = [[json.loads(r) for r in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
            for d in ("full", "split")]
    keys = ("loss", "train_acc", "test_acc", "test_top5_acc", "ema_test_acc", "ema_test_loss", "weights", "lr")
    assert [[r[k] for k in keys] for r in rows[0]] == [[r[k] for k in keys] for r in rows[1]]
    assert full["weights"] == rows[0][-1]["weights"] and "ema_test_acc" in full and "test_top5_acc" in full
    kept = sorted(p.name for p in (tmp_path / "split" / "checkpoints").glob("epoch-*.pt"))
    assert kept == ["epoch-0001.pt", "epoch-0002.pt"]
    for name in kept:
        assert_equal_states(*(torch.load(tmp_path / d / "checkpoints" / name, weights_only=True)["ema"]
                              for d in ("full", "split")))


def test_the_winning_weights_go_to_best_pt_and_model_safetensors(tmp_path, fashion_dir, monkeypatch):
    # Real training; only the accuracies are scripted: raw then EMA, per epoch. EMA wins both epochs, epoch 1 is best.
    scripted = iter([0.50, 0.60, 0.55, 0.58])
    real = trainer_module.evaluate
    monkeypatch.setattr(trainer_module, "evaluate", lambda *a, **k: {**real(*a, **k), "accuracy": next(scripted)})
    cfg = recipe_config(fashion_dir, **{"run.accum_steps": 1, "run.keep_checkpoints": 0, "optim.ema": 0.5})
    summary = train(cfg, tmp_path / "run", progress=False)
    assert (summary["weights"], summary["best_weights"], summary["best_test_acc"]) == ("ema", "ema", 0.60)
    assert (summary["test_acc"], summary["ema_test_acc"]) == (0.55, 0.58)
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert (best["epoch"], best["best_weights"], best["best"]) == (1, "ema", 0.60)
    saved = load_file(tmp_path / "run" / "model.safetensors")
    assert all(torch.equal(saved[k], last["ema"]["model"][k]) for k in saved)
    assert not all(torch.equal(saved[k], last["model"][k]) for k in saved)
    assert ema_module.PREFIX == "ema_"

"""DDP on real torchrun processes (gloo, 2 CPU ranks) on a small real Fashion-MNIST subset."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.helpers import cli_json

WORKER = Path(__file__).with_name("ddp_worker.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory, fashion_dir):
    """Two-rank runs (per-rank batch 32, with and without SyncBatchNorm) and single-process batch-64 runs."""
    root = tmp_path_factory.mktemp("ddp")
    out = {}
    for name, sync in (("ddp", False), ("ddp_sync", True)):
        out[name] = root / name
        out[name].mkdir()
        _run(_torchrun(str(WORKER), "--out", str(out[name]), "--data-dir", str(fashion_dir), "--batch-size", "32",
                       *(["--sync-bn"] if sync else [])))
    out["single"] = root / "single"
    out["single"].mkdir()
    _run([sys.executable, str(WORKER), "--out", str(out["single"]), "--data-dir", str(fashion_dir),
          "--batch-size", "64"])
    return out


def test_ranks_end_with_identical_weights(ddp_runs):
    for name in ("ddp", "ddp_sync"):
        a = load_file(ddp_runs[name] / "rank0.safetensors")
        b = load_file(ddp_runs[name] / "rank1.safetensors")
        params = [k for k in a if "running" not in k and "num_batches" not in k]
        assert params and all(torch.equal(a[k], b[k]) for k in params)


def test_one_epoch_loss_matches_single_process_with_same_global_batch(ddp_runs):
    single = json.loads((ddp_runs["single"] / "summary0.json").read_text())
    sync = json.loads((ddp_runs["ddp_sync"] / "summary0.json").read_text())
    plain = json.loads((ddp_runs["ddp"] / "summary0.json").read_text())
    assert sync["world_size"] == plain["world_size"] == 2 and single["world_size"] == 1
    # Same batches (one sampler convention) and SyncBatchNorm: only float summation order differs.
    assert sync["loss"] == pytest.approx(single["loss"], rel=1e-3)
    # Per-rank BatchNorm statistics over 32 instead of 64 images: close, not equal.
    assert plain["loss"] == pytest.approx(single["loss"], rel=0.05)
    # Test accuracy is reduced over both ranks' shards: it covers all 200 test images once.
    assert sync["test_acc"] * 200 == pytest.approx(round(sync["test_acc"] * 200))


def test_only_rank0_writes_and_metrics_have_one_row_per_epoch(ddp_runs):
    run = ddp_runs["ddp"] / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]
    assert json.loads((run / "summary.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


def test_torchrun_cli_trains_and_resumes(tmp_path, fashion_dir):
    run_dir = tmp_path / "cli"
    common = ["--no-progress", "--no-compile", "--precision", "fp32", "--device", "cpu"]
    _run(_torchrun("-m", "densenet", "train", "--data-dir", str(fashion_dir), "--resize", "32", "--train-subset",
                   "256", "--test-subset", "100", "--batch-size", "32", "--epochs", "1", "--out", str(run_dir),
                   *common))
    _run(_torchrun("-m", "densenet", "train", "--resume", str(run_dir), "--epochs", "2", "--no-progress"))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 2
    assert cli_json("evaluate", str(run_dir), "--data-dir", str(fashion_dir), "--test-subset", "100")["accuracy"] > 0

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
TOLERANCE = 0.02  # relative, on the first epoch's mean training loss (observed: 0.4%)
ROOT = Path(__file__).resolve().parents[2]
# This checkout's sources first, also where another checkout of the package is installed (editable).
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory, fashion_dir):
    """A two-rank run with per-rank batch 32, and a single-process run with batch 64."""
    root = tmp_path_factory.mktemp("ddp")
    out = {"ddp": root / "ddp"}
    out["ddp"].mkdir()
    _run(_torchrun(str(WORKER), "--out", str(out["ddp"]), "--data-dir", str(fashion_dir), "--batch-size", "32"))
    out["single"] = root / "single"
    out["single"].mkdir()
    _run([sys.executable, str(WORKER), "--out", str(out["single"]), "--data-dir", str(fashion_dir),
          "--batch-size", "64"])
    return out


def test_ranks_end_with_identical_weights(ddp_runs):
    a = load_file(ddp_runs["ddp"] / "rank0.safetensors")
    b = load_file(ddp_runs["ddp"] / "rank1.safetensors")
    params = [k for k in a if "running" not in k and "num_batches" not in k]
    assert len(params) > 50 and all(torch.equal(a[k], b[k]) for k in params)


def test_one_epoch_loss_matches_single_process_with_same_global_batch(ddp_runs):
    single = json.loads((ddp_runs["single"] / "summary0.json").read_text())
    ddp = json.loads((ddp_runs["ddp"] / "summary0.json").read_text())
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    # The same images in the same global batches (one sampler convention), the same init and averaged
    # gradients; only BatchNorm's batch statistics differ (per rank over 32 images instead of 64).
    assert ddp["loss"] == pytest.approx(single["loss"], rel=TOLERANCE)
    assert ddp["train_acc"] == pytest.approx(single["train_acc"], abs=0.05)
    # Test accuracy is reduced over both ranks' shards: it covers all 200 test images once.
    assert ddp["test_acc"] * 200 == pytest.approx(round(ddp["test_acc"] * 200))


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


def test_a_run_interrupted_mid_epoch_under_torchrun_resumes_bit_identical(tmp_path, fashion_dir):
    # 512 images over 2 ranks at batch 32: 8 batches per rank per epoch; stop after batch 3 of epoch 2.
    common = ["--data-dir", str(fashion_dir), "--batch-size", "32", "--epochs", "2"]
    full, split = tmp_path / "full", tmp_path / "split"
    for folder in (full, split):
        folder.mkdir()
    _run(_torchrun(str(WORKER), "--out", str(full), *common))
    _run(_torchrun(str(WORKER), "--out", str(split), *common, "--interrupt-at", "2,3"))
    state = torch.load(split / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and (state["partial"]["epoch"], state["partial"]["batches"]) == (2, 3)
    assert state["partial"]["count"] == 2 * 3 * 32  # summed over both ranks
    _run(_torchrun(str(WORKER), "--out", str(split), *common, "--resume"))
    for rank in (0, 1):
        a, b = load_file(full / f"rank{rank}.safetensors"), load_file(split / f"rank{rank}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [[json.loads(r) for r in (d / "run" / "metrics.jsonl").read_text().splitlines()] for d in (full, split)]
    for key in ("loss", "train_acc", "test_acc", "examples"):
        assert [r[key] for r in rows[0]] == [r[key] for r in rows[1]], key


def test_fine_tuning_under_torchrun_keeps_ranks_identical_and_the_frozen_stages_fixed(tmp_path, fashion_dir):
    """The classifier-only epoch, then the DDP wrapper rebuilt for what trains from epoch 2 on."""
    from densenet.engine.finetune import frozen_tensors
    from densenet.models import create_model
    from densenet.rundir import ModelCard, Preprocessing, save_model

    torch.manual_seed(4)
    source = create_model("d2l_densenet", in_channels=1, num_classes=10)
    save_model(tmp_path / "source", source, ModelCard("d2l_densenet", {"in_channels": 1, "num_classes": 10},
               [str(i) for i in range(10)], Preprocessing(1, 32, [0.0], [1.0])))
    _run(_torchrun(str(WORKER), "--out", str(tmp_path), "--data-dir", str(fashion_dir), "--batch-size", "32",
                   "--epochs", "2", "--finetune", str(tmp_path / "source")))
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert [k for k in a if "running" not in k and "num_batches" not in k and not torch.equal(a[k], b[k])] == []
    original = source.state_dict()
    frozen = [k for k, _ in frozen_tensors(source, "denseblock1")]
    assert [k for k in frozen if not torch.equal(a[k], original[k])] == []
    later = [k for k in a if k.startswith("features.denseblock2.") and k.endswith("conv1.weight")]
    assert later and all(not torch.equal(a[k], original[k]) for k in later)
    assert not torch.equal(a["classifier.weight"], original["classifier.weight"])


def test_mixing_under_torchrun_shares_one_stream_that_rank_0_saves_for_every_rank(tmp_path, fashion_dir):
    """Mixup, CutMix and RandAugment on, stopped after batch 2 of epoch 2 and resumed: the ranks end with the same
    weights, and each rank's mixing generator where 16 draws (8 batches per rank per epoch) put it."""
    from densenet.engine.mix import Mixer

    common = ["--data-dir", str(fashion_dir), "--batch-size", "32", "--epochs", "2", "--mix", "--out", str(tmp_path)]
    _run(_torchrun(str(WORKER), *common, "--interrupt-at", "2,2"))
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert (state["partial"]["epoch"], state["partial"]["batches"]) == (2, 2)
    _run(_torchrun(str(WORKER), *common, "--resume"))
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert [k for k in a if "running" not in k and "num_batches" not in k and not torch.equal(a[k], b[k])] == []
    twin = Mixer(0.4, 1.0, 1.0, 0.5, 10, seed=0)
    for _ in range(16):
        twin.draw(32, 32)
    for rank in (0, 1):
        assert torch.equal(torch.load(tmp_path / f"mix{rank}.pt", weights_only=True), twin.generator.get_state())
    summary = json.loads((tmp_path / "summary0.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 2 and summary["train_acc"] is None


def test_accumulated_micro_batches_all_reduce_once_per_step_and_match_the_global_batch(tmp_path):
    _run(_torchrun(str(Path(__file__).with_name("accum_ddp_worker.py")), "--out", str(tmp_path)))
    for rank in (0, 1):
        result = json.loads((tmp_path / f"accum{rank}.json").read_text())
        # 2 optimizer steps of 3 micro-batches: one all-reduce per step (the model's gradients fit one bucket).
        assert result["world_size"] == 2 and result["allreduces"] == 2
        assert result["max_diff"] < 1e-6


def test_ema_accumulation_and_adamw_under_torchrun_keep_ranks_identical(tmp_path, fashion_dir):
    _run(_torchrun(str(WORKER), "--out", str(tmp_path), "--data-dir", str(fashion_dir), "--batch-size", "32",
                   "--recipe"))
    for name in ("rank", "ema"):
        a, b = load_file(tmp_path / f"{name}0.safetensors"), load_file(tmp_path / f"{name}1.safetensors")
        assert [k for k in a if "running" not in k and "num_batches" not in k and not torch.equal(a[k], b[k])] == []
    state = torch.load(tmp_path / "run" / "checkpoints" / "epoch-0001.pt", weights_only=True)
    # 512 images over 2 ranks at batch 32: 8 micro-batches per rank, 4 optimizer steps.
    assert int(state["ema"]["updates"]) == 4 and {s["step"].item() for s in state["optimizer"]["state"].values()} == {4}
    summary = json.loads((tmp_path / "summary0.json").read_text())
    assert summary["world_size"] == 2 and summary["weights"] in ("raw", "ema") and "ema_test_acc" in summary

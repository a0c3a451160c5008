"""scripts/gpu-bench.sh in its tiny mode: every part at minimal size on the CPU, merged into one JSON document."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_mode_runs_every_part_and_writes_one_document(fashion_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "GPU_BENCH_TINY": "1", "DEST": str(tmp_path / "out"), "GPU_BENCH_WORK": str(tmp_path / "w"),
           "DENSENET_DATA": str(fashion_dir.parent), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-bench.sh"), sys.executable], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gpu-bench.json", "gpu-bench.log"]
    doc = json.loads((tmp_path / "out" / "gpu-bench.json").read_text())
    parts = doc["parts"]
    assert doc["tiny"] and doc["all_ok"], {n: p.get("log_tail") for n, p in parts.items()}
    assert doc["set"] == "perf"
    assert list(parts) == ["seed", "densenet121", "memory", "torchrun", "nccl", "train10"]
    assert all(p["exit"] == 0 and p["seconds"] > 0 and p["command"] for p in parts.values())
    seed = parts["seed"]["result"]
    assert list(seed["baselines"]) == ["naive", "peer"] and seed["batch_size"] == 4
    assert parts["densenet121"]["result"]["baseline"] == "peer"
    assert parts["memory"]["result"]["memory_efficient"] and parts["memory"]["result"]["baseline"] == "plain"
    assert parts["nccl"]["result"] == {"backend": "gloo", "world_size": 1, "all_reduce_ok": True}
    assert parts["torchrun"]["result"]["epochs"] == 1 and parts["train10"]["result"]["epochs"] == 1
    targets = doc["targets"]
    assert targets["seed"]["images_per_s"] == seed["images_per_s"] and targets["seed"]["target"] == 22000
    assert targets["seed"]["vs_peer"] == seed["baselines"]["peer"]["speedup"]
    assert 0 <= targets["train10"]["test_acc"] <= 1


def test_the_long_set_trains_the_long_preset_per_seed_and_files_each_as_a_record(fashion_dir: Path,
                                                                                   tmp_path: Path) -> None:
    env = {**os.environ, "GPU_BENCH_TINY": "1", "GPU_BENCH_SET": "long", "DEST": str(tmp_path / "out"),
           "GPU_BENCH_WORK": str(tmp_path / "w"), "DENSENET_DATA": str(fashion_dir.parent), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-bench.sh"), sys.executable], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = tmp_path / "out" / "gpu-bench.json"
    doc = json.loads(document.read_text())
    assert doc["set"] == "long" and doc["tiny"] and doc["all_ok"]
    assert list(doc["parts"]) == ["long-seed0", "long-seed1", "long-seed2"]
    for seed, part in enumerate(doc["parts"].values()):
        assert f"--preset densenet-fashion-mnist-long --seed {seed} " in part["command"]
        assert part["run"]["config"]["run"]["seed"] == seed and len(part["run"]["metrics"]) == 1
    accs = [p["result"]["test_acc"] for p in doc["parts"].values()]
    target = doc["targets"]
    assert target["test_acc"] == accs and target["seeds_finished"] == 3 and target["goal"] == 0.955
    assert abs(target["mean"] - sum(accs) / 3) < 1e-12 and target["met"] == (target["mean"] >= 0.955)

    filed = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_bench.py"), "records", str(document),
                            str(tmp_path / "records")], capture_output=True, text=True, timeout=60)
    assert filed.returncode == 0, filed.stderr
    assert "tiny-mode check on the CPU" in filed.stderr
    for seed in range(3):
        record = tmp_path / "records" / f"densenet-fashion-mnist-long-seed{seed}"
        assert sorted(p.name for p in record.iterdir()) == ["command.txt", "config.json", "machine.json",
                                                            "metrics.jsonl", "summary.json"]
        assert json.loads((record / "summary.json").read_text())["test_acc"] == accs[seed]
        assert json.loads((record / "metrics.jsonl").read_text().splitlines()[0])["epoch"] == 1
        assert json.loads((record / "machine.json").read_text())["gpu"] is None  # no GPU here


def test_an_unknown_set_and_a_perf_document_are_refused(tmp_path: Path) -> None:
    env = {**os.environ, "GPU_BENCH_SET": "fast", "DEST": str(tmp_path / "out"), "GPU_BENCH_WORK": str(tmp_path)}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-bench.sh"), sys.executable], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "GPU_BENCH_SET is perf or long, not 'fast'" in done.stderr
    perf = tmp_path / "perf.json"
    perf.write_text(json.dumps({"set": "perf", "parts": {}}))
    filed = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_bench.py"), "records", str(perf),
                            str(tmp_path / "records")], capture_output=True, text=True, timeout=60)
    assert filed.returncode == 1 and "records are filed from a GPU_BENCH_SET=long run" in filed.stderr
    assert not (tmp_path / "records").exists()

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

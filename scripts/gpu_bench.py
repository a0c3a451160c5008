"""Helpers of scripts/gpu-bench.sh.

``gpu_bench.py allreduce cuda|cpu``: under torchrun, join a process group (nccl on CUDA, gloo on the CPU) and
all-reduce one tensor; prints a JSON line.
``gpu_bench.py merge PARTS``: one JSON document from the folder PARTS (each part's output, exit status, seconds and
command), the machine, and the issue's targets against the measured figures. ``$GPU_BENCH_SET`` names the parts:
``perf`` (issue #23) or ``long`` (issue #22: the long preset's seeds, each with its run's config and metrics).
``gpu_bench.py records GPU_BENCH_JSON FOLDER``: files a long set's runs as records,
``FOLDER/densenet-fashion-mnist-long-seed<N>/`` with ``summary.json``, ``config.json``, ``metrics.jsonl``,
``command.txt`` and ``machine.json`` (the GPU, torch and CUDA).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

SETS = {"perf": ("seed", "densenet121", "memory", "torchrun", "nccl", "train10"),
        "long": ("long-seed0", "long-seed1", "long-seed2")}
LONG_PRESET = "densenet-fashion-mnist-long"
LONG_GOAL = 0.955  # issue #22: the mean test accuracy of at least 2 seeds
TARGETS = {  # issue #23, part 4
    "seed_images_per_s": 22000,  # 4x the textbook's V100 figure of about 5,500 images/s
    "densenet121_vs_peer": 1.2,
    "memory_ratio_at_most": 1 / 3,
    "memory_speed_at_least": 0.8,  # at most 20% slower
}


def allreduce(device: str) -> None:
    import torch
    import torch.distributed as dist

    backend = "nccl" if device == "cuda" else "gloo"
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    t = torch.ones(4, device=device) * (dist.get_rank() + 1)
    dist.all_reduce(t)
    ok = t.tolist() == [float(dist.get_world_size() * (dist.get_world_size() + 1) // 2)] * 4
    print(json.dumps({"backend": backend, "world_size": dist.get_world_size(), "all_reduce_ok": ok}))
    dist.destroy_process_group()
    sys.exit(0 if ok else 1)


def _part(parts: Path, name: str) -> dict[str, Any]:
    meta = parts / f"{name}.meta"
    if not meta.is_file():
        return {"skipped": True}
    rc, ms, cap, command = meta.read_text().split("\n", 3)
    entry: dict[str, Any] = {"exit": int(rc), "seconds": round(int(ms) / 1000, 1), "cap_s": int(cap),
                             "command": command.strip()}
    text = (parts / f"{name}.json").read_text() if (parts / f"{name}.json").is_file() else ""
    try:
        entry["result"] = json.loads(text)
    except json.JSONDecodeError:
        last = [line for line in text.splitlines() if line.startswith("{")]
        entry["result"] = json.loads(last[-1]) if last else None
        log = parts / f"{name}.log"
        entry["log_tail"] = log.read_text()[-2000:] if log.is_file() else ""
    run = parts.parent / "runs" / name
    if name.startswith("long-") and (run / "config.json").is_file():  # what a record needs beside the summary
        from densenet.engine.logging import read_metrics

        entry["run"] = {"config": json.loads((run / "config.json").read_text()),
                        "metrics": read_metrics(run) if (run / "metrics.jsonl").is_file() else []}
    return entry


def _long_target(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Issue #22's goal against the finished seeds: mean test accuracy (sample std) over at least 2 of them."""
    done = [p["result"] for p in parts.values() if p.get("result") and not p["result"].get("interrupted")]
    accs = [r["test_acc"] for r in done]
    mean = statistics.mean(accs) if accs else None
    std = statistics.stdev(accs) if len(accs) > 1 else None
    return {"seeds_finished": len(accs), "test_acc": accs, "mean": mean, "std": std, "goal": LONG_GOAL,
            "met": len(accs) >= 2 and mean >= LONG_GOAL, "elapsed_s": [r["elapsed_s"] for r in done]}


def _targets(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def result(name: str) -> dict[str, Any]:
        return parts[name].get("result") or {}

    seed, d121, mem, train = result("seed"), result("densenet121"), result("memory"), result("train10")
    out: dict[str, Any] = {}
    if seed:
        b = seed.get("baselines", {})
        out["seed"] = {"images_per_s": seed["images_per_s"], "target": TARGETS["seed_images_per_s"],
                       "met": seed["images_per_s"] >= TARGETS["seed_images_per_s"],
                       "vs_naive": b.get("naive", {}).get("speedup"), "vs_peer": b.get("peer", {}).get("speedup")}
    if d121:
        ratio = d121.get("baselines", {}).get("peer", {}).get("speedup")
        out["densenet121"] = {"images_per_s": d121["images_per_s"], "vs_peer": ratio,
                              "target": TARGETS["densenet121_vs_peer"],
                              "met": ratio is not None and ratio >= TARGETS["densenet121_vs_peer"]}
    if mem:
        ratio, speed = mem.get("memory_ratio"), mem.get("speedup")
        out["memory"] = {"memory_ratio": ratio, "speed": speed, "met": ratio is not None and speed is not None
                         and ratio <= TARGETS["memory_ratio_at_most"] and speed >= TARGETS["memory_speed_at_least"]}
    if train:
        out["train10"] = {"epochs": train.get("epochs"), "test_acc": train.get("test_acc"),
                          "elapsed_s": train.get("elapsed_s"), "examples_per_sec": train.get("examples_per_sec")}
    return out


def merge(folder: Path) -> None:
    import torch

    chosen = os.environ.get("GPU_BENCH_SET", "perf")
    parts = {name: _part(folder, name) for name in SETS[chosen]}
    cuda = torch.cuda.is_available()
    doc = {"tiny": os.environ.get("GPU_BENCH_TINY", "0") == "1", "torch": torch.__version__,
           "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0) if cuda else None,
           "gpus": torch.cuda.device_count() if cuda else 0, "python": platform.python_version(),
           "data": os.environ.get("DENSENET_DATA"), "set": chosen,
           "targets": _long_target(parts) if chosen == "long" else _targets(parts), "parts": parts,
           "all_ok": all(p.get("exit") == 0 for p in parts.values())}
    print(json.dumps(doc, indent=2))


def records(document: Path, folder: Path) -> None:
    """File each long-set part that trained as a run record under ``folder``, named as record-runs.sh names them."""
    from densenet.rundir.files import write_json

    doc = json.loads(document.read_text())
    if doc.get("set") != "long":
        sys.exit(f"error: {document} holds the {doc.get('set', 'perf')!r} set; records are filed from a "
                 "GPU_BENCH_SET=long run")
    if doc.get("tiny"):
        print(f"note: {document} is a tiny-mode check on the CPU, not a GPU measurement", file=sys.stderr)
    machine = {k: doc.get(k) for k in ("gpu", "gpus", "torch", "cuda", "python", "tiny")}
    for name, part in doc["parts"].items():
        if not part.get("run") or not part.get("result"):
            print(f"skipping {name}: {'no time left' if part.get('skipped') else 'it left no run'}", file=sys.stderr)
            continue
        out = folder / f"{LONG_PRESET}-seed{name.removeprefix('long-seed')}"
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "summary.json", part["result"])
        write_json(out / "config.json", part["run"]["config"])
        (out / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in part["run"]["metrics"]))
        (out / "command.txt").write_text(f"{part['command']}\nexit {part['exit']} after {part['seconds']} s "
                                         f"(cap {part['cap_s']} s), from scripts/gpu-bench.sh GPU_BENCH_SET=long\n")
        write_json(out / "machine.json", machine)
        print(out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["allreduce"]:
        allreduce(sys.argv[2])
    elif sys.argv[1:2] == ["merge"]:
        merge(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["records"] and len(sys.argv) == 4:
        records(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit("usage: gpu_bench.py allreduce cuda|cpu | merge PARTS | records GPU_BENCH_JSON FOLDER")

"""The generated blocks of README.md and BENCHMARKS.md, each rendered from its record (see tests/figures.py);
the run records' renderers live in tests/figure_runs.py."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.figure_runs import (
    RUNS,
    ablation_planned,
    fashion_mnist_table,
    long_ablation,
    long_average,
    long_search,
    long_tta,
    preset_comparison,
    run_record,
    seed_runs,
)
from tests.figure_runs import read_json as _json
from tests.figure_runs import read_lscpu as _lscpu

BENCH = "docs/records/bench"


def d2l_summary() -> str:
    """What ``densenet summary`` prints for the seed's network, and its error for an input too small."""
    from densenet.cli.main import main

    parts = []
    for argv in (["summary", "d2l_densenet"], ["summary", "d2l_densenet", "--input-size", "1,28,28"]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(argv)
        parts.append(f"$ densenet {' '.join(argv)}\n{out.getvalue()}{err.getvalue()}")
    return "```\n" + "\n".join(parts) + "```\n"


BENCH_ROWS = (  # (result, record stem, cell style): the 2026-12-01 re-measurement
    ("1: d2l_densenet train, batch 256, vs naive", "result1-d2l-train", "speed"),
    ("2: densenet121 infer, batch 1, vs naive", "result2-densenet121-infer", "speed"),
    ("3 eager: BC-190 train, memory-efficient vs plain", "result3-bc190-eager", "memory"),
    ("3 compiled", "result3-bc190-compiled", "memory"),
)


def _bench_cell(r: dict[str, Any], style: str, bold: bool) -> str:
    em = "**" if bold else ""
    # The CPU-time ratio from the medians, which the record keeps to 4 decimals (its cpu_time_speedup has 3:
    # 1.325 would print as 1.32x where the medians give 1.3255).
    cpu_ratio = r["baseline_median_cpu_s"] / r["median_cpu_s"]
    if style == "speed":
        memory = f"; memory {r['memory_ratio']:.3f}" if r["mode"] == "train" else ""
        return f"{em}{r['speedup']:.2f}x{em} (CPU time {cpu_ratio:.2f}x){memory}"
    cell = (f"{em}memory {r['memory_ratio']:.3f}, {r['speedup']:.3f} speed{em} ({1 - r['speedup']:.1%} slower; "
            f"CPU time {cpu_ratio:.3f})")
    if r["compiled"]:
        cell += (f"; started {r['machine']['date'][11:16]} UTC, compilation {r['warmup_s']:.0f} s and "
                 f"{r['baseline_warmup_s']:.0f} s")
    return cell


def bench_results(bench: Path) -> str:
    """The 2026-12-01 results table: this branch's records against those of commit c6422db."""
    lines = ["| result | command (all `--threads 1 --json`) | record | redesign (this branch) | before the redesign "
             "(`c6422db`), same machine |", "|---|---|---|---|---|"]
    for label, stem, style in BENCH_ROWS:
        record = _json(bench / f"2026-12-01-{stem}.json")
        command = record["machine"]["command"]
        if " --threads 1" not in command or " --json" not in command:
            raise ValueError(f"{stem}: the table's header says --threads 1 --json, the record ran {command!r}")
        old = bench / f"2026-12-01-old-c6422db-{stem}.json"
        before = _bench_cell(_json(old), style, bold=False) if old.exists() else "not run"
        lines.append(f"| {label} | `{command.replace(' --threads 1', '').replace(' --json', '')}` | `{stem}` | "
                     f"{_bench_cell(record, style, bold=True)} | {before} |")
    return "\n".join(lines) + "\n"


BACKENDS = {"eager_fp32": "eager fp32", "torch_fast": "fast path (channels_last + bf16 + compile)",
            "onnxruntime": "ONNX Runtime fp32"}


def _best(results: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for r in results:
        key = (r["model"], r["batch_size"])
        if r["backend"] != "eager_fp32" and (key not in best or r["speedup"] > best[key]["speedup"]):
            best[key] = r
    return best


def backends_1thread(path: Path) -> str:
    """The 2026-11-28 one-thread backends table and its goal line."""
    results = _json(path)["results"]
    best = _best(results)
    lines = ["| model | input | batch | backend | images/s | median ms | vs eager fp32 |",
             "|---|---|---:|---|---:|---:|---:|"]
    for r in results:
        ratio = f"{r['speedup']:.2f}x"
        ratio = f"**{ratio}**" if best[(r["model"], r["batch_size"])] is r else ratio
        lines.append(f"| {r['model']} | {'x'.join(map(str, r['input_size']))} | {r['batch_size']} | "
                     f"{BACKENDS[r['backend']]} | {r['images_per_s']:.1f} | {r['median_ms']:.2f} | {ratio} |")
    ones = [r for (_, batch), r in best.items() if batch == 1]
    met = all(r["speedup"] >= 2 for r in ones)
    ratios = ", ".join(f"{r['speedup']:.2f}x" for r in ones)
    lines += ["", f"Goal \"best backend at batch 1 >= 2x eager fp32\": {'met' if met else 'not met'} for "
              f"{'both models' if len(ones) == 2 else 'every model'} ({ratios})."]
    return "\n".join(lines) + "\n"


def backends_2threads(path: Path, other: Path) -> str:
    """The 2026-11-28 two-thread backends table, and the largest logit differences of both backends runs."""
    results = _json(path)["results"]
    lines = ["| model | batch | eager fp32 img/s | fast path img/s | ONNX Runtime img/s |", "|---|---:|---:|---:|---:|"]
    groups: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["model"], r["batch_size"]), {})[r["backend"]] = r
    for (model, batch), row in groups.items():
        eager, fast, ort = row["eager_fp32"], row["torch_fast"], row["onnxruntime"]
        lines.append(f"| {model} | {batch} | {eager['images_per_s']:.1f} | {fast['images_per_s']:.1f} "
                     f"({fast['speedup']:.1f}x) | {ort['images_per_s']:.1f} ({ort['speedup']:.1f}x) |")
    both = results + _json(other)["results"]
    ort = max(r["max_abs_diff"] for r in both if r["backend"] == "onnxruntime")
    fast = max((r for r in both if r["backend"] == "torch_fast"), key=lambda r: r["max_abs_diff"])
    ort_text = f"{ort:.1e}".replace("e-0", "e-")  # 2.1e-6, as people write it
    lines += ["", f"Max abs difference vs eager fp32 logits, over both runs: ONNX Runtime <= {ort_text}; the bf16 "
              f"fast path up to {fast['max_abs_diff']:.3f} ({fast['model']})."]
    return "\n".join(lines) + "\n"


AMX_TRAINING = (("d2l_densenet training, 96 px, batch 256", "amx-d2l-train"),
                ("densenet121 training, 224 px, batch 32", "amx-densenet121-train"))


def _ratio(r: dict[str, Any], name: str) -> str:
    b = r["baselines"].get(name)
    if b is None:
        return "—"
    return f"**{b['speedup']:.2f}x** (CPU time {b['median_cpu_s'] / r['median_cpu_s']:.2f}x)"


def amx_training(bench: Path) -> str:
    """Issue #23's training table on the AMX Xeon: the fast path against naive and peer, one process each."""
    lines = ["| work | command (`--threads 1 --json`) | naive img/s | peer img/s | fast path img/s | fast / peer "
             "| fast / naive | load average before, after |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for label, stem in AMX_TRAINING:
        r = _json(bench / f"2026-12-01-{stem}.json")
        m = r["machine"]
        if not (m["amx_bf16"] and r["precision"] == "bf16" and r["threads"] == 1):
            raise ValueError(f"{stem}: the table is of bf16 on an AMX CPU at one thread")
        speeds = [f"{r['baselines'][n]['images_per_s']:.1f}" if n in r["baselines"] else "—" for n in ("naive", "peer")]
        command = m["command"].replace(" --threads 1", "").replace(" --json", "")
        lines.append(f"| {label} | `{command}` | {speeds[0]} | {speeds[1]} | {r['images_per_s']:.1f} | "
                     f"{_ratio(r, 'peer')} | {_ratio(r, 'naive')} | {m['load_average'][0]:.2f}, "
                     f"{m['load_average_after'][0]:.2f} |")
    return "\n".join(lines) + "\n"


AMX_INFER = (("batch 1, 1 thread", "b1-1t"), ("batch 32, 1 thread", "b32-1t"), ("batch 1, 2 threads", "b1-2t"),
             ("batch 32, 2 threads", "b32-2t"))
INFER_TARGETS = {1: 60, 32: 100}  # issue #23: images/s of the best backend, densenet121 at 224, on a 2-core AMX CPU


def amx_inference(bench: Path) -> str:
    """Issue #23's inference table on the AMX Xeon: every backend, four runs, and the targets' verdicts."""
    runs = {stem: _json(bench / f"2026-12-01-amx-infer-{stem}.json") for _, stem in AMX_INFER}
    for stem, doc in runs.items():
        if not (doc["machine"]["amx_int8"] and doc["model"] == "densenet121" and doc["input_size"] == [3, 224, 224]):
            raise ValueError(f"{stem}: the table is of densenet121 at 224 on an AMX CPU")
    by_backend = {stem: {r["backend"]: r for r in doc["results"]} for stem, doc in runs.items()}
    first = runs[AMX_INFER[0][1]]["results"]
    lines = ["| backend | " + " | ".join(f"{label} img/s (vs eager)" for label, _ in AMX_INFER) + " | detail |",
             "|---|" + "---:|" * len(AMX_INFER) + "---|"]
    for row in first:
        name = row["backend"]
        cells = [f"{by_backend[stem][name]['images_per_s']:.1f} ({by_backend[stem][name]['speedup']:.2f}x)"
                 for _, stem in AMX_INFER]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['detail']} |")
    lines.append("")
    for label, stem in AMX_INFER:
        rows = by_backend[stem]
        best = max(rows.values(), key=lambda r: r["images_per_s"])
        target = INFER_TARGETS[runs[stem]["batch_size"]]
        verdict = "met" if best["images_per_s"] >= target else "not met"
        lines.append(f"- {label}: best `{best['backend']}` {best['images_per_s']:.1f} images/s, "
                     f"{best['images_per_s'] / rows['fast']['images_per_s']:.2f}x the fast path; target "
                     f">= {target} images/s {verdict} (load average {runs[stem]['machine']['load_average'][0]:.2f} "
                     f"before, {runs[stem]['machine']['load_average_after'][0]:.2f} after).")
    return "\n".join(lines) + "\n"


def amx_malloc(bench: Path) -> str:
    """The allocator setting on the AMX Xeon: CPU time per step of fast and peer, glibc as it is and keeping memory."""
    runs = {name: _json(bench / f"2026-12-01-amx-malloc-{name}.json") for name in ("default", "keep")}
    lines = ["| variant | CPU s per step, glibc as it is | keeping freed memory | faster by |", "|---|---:|---:|---:|"]
    variants = (("fast path", lambda r: r["median_cpu_s"]), ("peer", lambda r: r["baselines"]["peer"]["median_cpu_s"]))
    for label, get in variants:
        before, after = get(runs["default"]), get(runs["keep"])
        lines.append(f"| {label} | {before:.3f} | {after:.3f} | {before / after:.2f}x |")
    return "\n".join(lines) + "\n"


def chexnet_example(record: Path) -> str:
    """README's CheXNet-style run (scripts/chexnet-example.sh): the machine, the two runs, the per-class AUROC
    without and with --tta flip, where the heatmaps peak against the objects' boxes, and the export check."""
    cpu = _lscpu(record / "lscpu.txt")
    pre, run = _json(record / "pretrained" / "summary.json"), _json(record / "findings-run" / "summary.json")
    plain, tta = _json(record / "evaluation.json"), _json(record / "evaluation-tta.json")
    export = _json(record / "export.json")
    lines = [f"On {cpu['Model name']}, {cpu['CPU(s)']} CPUs (bf16/AMX flags: {cpu['bf16/AMX flags']}), "
             f"{run['precision']}, {'compiled' if run['compiled'] else 'not compiled'}: pretraining reached test "
             f"accuracy {pre['test_acc']:.3f} in {pre['elapsed_s']:.0f} s; fine-tuning reached mean test AUROC "
             f"{run['test_mean_auroc']:.3f} (mAP {run['test_map']:.3f}) in {run['elapsed_s']:.0f} s.", "",
             "| finding | AUROC | AUROC, `--tta flip` | average precision |", "|---|---:|---:|---:|"]
    lines += [f"| {c} | {plain['auroc'][c]:.3f} | {tta['auroc'][c]:.3f} | {plain['average_precision'][c]:.3f} |"
              for c in plain["classes"]]
    lines += [f"| **mean** | **{plain['mean_auroc']:.3f}** | **{tta['mean_auroc']:.3f}** | **{plain['map']:.3f}** |",
              "", f"`--tta flip` changes the mean AUROC by {tta['mean_auroc'] - plain['mean_auroc']:+.3f} and the "
              f"mAP by {tta['map'] - plain['map']:+.3f}."]
    boxes = [line.split(",") for line in (record / "explain-boxes.csv").read_text().splitlines() if line.strip()]
    for entry in _json(record / "explain.json"):
        for e in entry["explanations"]:
            x, y = e["peak"]
            inside = any(b[1] == e["class"] and int(b[2]) <= x < int(b[4]) and int(b[3]) <= y < int(b[5])
                         for b in boxes)
            lines.append(f"- `{e['class']}` (probability {e['probability']:.3f}): the heatmap peaks at ({x}, {y}), "
                         f"{'inside' if inside else 'outside'} a {e['class']}'s box.")
    lines += ["", f"The exported ONNX model matches PyTorch within {export['max_abs_diff']:.1e} (max abs difference)."]
    return "\n".join(lines) + "\n"



def renderers(root: Path) -> dict[str, tuple[str, Callable[[], str]]]:
    """Every generated block: its name -> (the doc that holds it, what renders it from its record)."""
    bench = root / BENCH
    one = bench / "2026-11-28-backends-1thread-export-bench.json"
    two = bench / "2026-11-28-backends-2threads-export-bench.json"
    return {
        **{name: ("README.md", lambda record=record: run_record(root, record)) for name, record in RUNS.items()},
        "d2l-summary": ("README.md", d2l_summary),
        "bench-2026-12-01": ("BENCHMARKS.md", lambda: bench_results(bench)),
        "amx-training": ("BENCHMARKS.md", lambda: amx_training(bench)),
        "amx-inference": ("BENCHMARKS.md", lambda: amx_inference(bench)),
        "amx-malloc": ("BENCHMARKS.md", lambda: amx_malloc(bench)),
        "backends-1thread": ("BENCHMARKS.md", lambda: backends_1thread(one)),
        "backends-2threads": ("BENCHMARKS.md", lambda: backends_2threads(two, one)),
        "long-search": ("README.md", lambda: long_search(root)),
        "long-tta": ("README.md", lambda: long_tta(root)),
        "long-average": ("README.md", lambda: long_average(root)),
        "long-ablation": ("README.md", lambda: long_ablation(root, ablation_planned(root))),
        **{f"{block}-runs": ("README.md", lambda preset=preset: seed_runs(root, preset)) for block, preset in
           (("seed", "d2l-fashion-mnist"), ("recommended", "densenet-fashion-mnist"),
            ("long", "densenet-fashion-mnist-long"))},
        "preset-comparison": ("README.md",
                              lambda: preset_comparison(root, "densenet-fashion-mnist", "d2l-fashion-mnist")),
        "fashion-mnist-table": ("README.md", lambda: fashion_mnist_table(root)),
        "chexnet-example": ("README.md", lambda: chexnet_example(root / "docs" / "records" / "chexnet-example")),
    }

"""Inference speed of one model on CPU backends, measured in one process: ``python -m densenet.export.bench``.

Backends:

- ``eager_fp32``: the PyTorch model as trained, fp32, under ``torch.inference_mode``. The baseline.
- ``torch_fast``: channels-last memory format, bf16 autocast and :func:`torch.compile`. If compiling
  fails (no C++ compiler, unsupported op), it runs channels-last + bf16 in eager mode and says so.
- ``onnxruntime``: the fp32 ONNX export (:func:`densenet.export.export_onnx`) on ONNX Runtime's CPU
  provider with all graph optimizations and ``intra_op_num_threads`` = the thread count.

After warm-up, the timed steps are interleaved (one call of each backend per round), so a load
change on a shared machine hits every backend alike; each backend's figure is its median step.
``speedup`` is images/s relative to ``eager_fp32`` at the same model and batch size, and
``max_abs_diff`` is the largest logit difference from ``eager_fp32`` on the same input (bf16
autocast is not exact).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from densenet.export.formats import export_onnx
from densenet.models import create_model, model_info

BACKENDS = ("eager_fp32", "torch_fast", "onnxruntime")
Runner = Callable[[torch.Tensor], torch.Tensor]


def benchmark_backends(model_name: str, batch_sizes: Sequence[int] = (1, 64),
                       input_size: Sequence[int] | None = None, steps: int = 10, warmup: int = 3,
                       threads: int = 2, backends: Sequence[str] = BACKENDS) -> list[dict[str, Any]]:
    """Time ``model_name``'s inference on each backend at each batch size.

    Args:
        model_name: A registered model; freshly initialized weights (speed does not depend on them).
        batch_sizes: Batch sizes to time.
        input_size: One image's ``(C, H, W)``; default: the registry's input size for the model.
        steps: Timed calls per backend and batch size (the median is reported).
        warmup: Untimed calls first (these also trigger ``torch.compile``).
        threads: CPU threads for PyTorch and ONNX Runtime alike (restored afterwards for PyTorch).
        backends: Which of :data:`BACKENDS` to run; ``eager_fp32`` is always run as the baseline.

    Returns:
        One dict per (batch size, backend): ``model``, ``input_size``, ``batch_size``, ``backend``,
        ``detail``, ``median_ms``, ``images_per_s``, ``speedup``, ``max_abs_diff``, ``warmup_s`` (the
        warm-up calls, including compilation), ``steps``.
    """
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise ValueError(f"unknown backend(s) {sorted(unknown)}; choose from {BACKENDS}")
    size = tuple(input_size or model_info(model_name).input_size)
    model = create_model(model_name, in_channels=size[0]).eval()
    names = ["eager_fp32", *[b for b in backends if b != "eager_fp32"]]
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="densenet-bench-") as tmp:
            for batch in batch_sizes:
                x = torch.randn(batch, *size, generator=torch.Generator().manual_seed(0))
                runners = {name: _make_runner(name, model, size, threads, Path(tmp)) for name in names}
                rows += _time_backends(model_name, size, batch, x, runners, steps, warmup)
    finally:
        torch.set_num_threads(old_threads)
    return rows


def _make_runner(name: str, model: nn.Module, size: tuple[int, ...], threads: int,
                 tmp: Path) -> tuple[Runner, str]:
    if name == "eager_fp32":
        return _no_grad(model), "fp32, NCHW"
    if name == "torch_fast":
        return _fast_runner(model)
    return _onnx_runner(model, size, threads, tmp)


def _no_grad(fn: Runner) -> Runner:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return fn(x)

    return run


def _fast_runner(model: nn.Module) -> tuple[Runner, str]:
    fast = _copy_channels_last(model)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fast(x.contiguous(memory_format=torch.channels_last))

    compiled = torch.compile(forward)
    state = {"fn": compiled, "detail": "channels_last + bf16 autocast + torch.compile (inductor)"}

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if state["fn"] is compiled:
                try:
                    return compiled(x).float()
                except Exception as exc:  # inductor raises many types (BackendCompilerFailed, CalledProcessError...)
                    state["fn"] = forward
                    state["detail"] = (f"channels_last + bf16 autocast, eager (torch.compile failed: "
                                       f"{type(exc).__name__})")
            return state["fn"](x).float()

    run.state = state  # type: ignore[attr-defined]  # read after warm-up for the report
    return run, "pending"


def _copy_channels_last(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(memory_format=torch.channels_last).eval()


def _onnx_runner(model: nn.Module, size: tuple[int, ...], threads: int, tmp: Path) -> tuple[Runner, str]:
    import onnxruntime as ort

    path = tmp / "model.onnx"
    if not path.exists():
        export_onnx(model, path, size)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])

    return run, f"fp32, ORT_ENABLE_ALL, intra_op={threads}, onnxruntime {ort.__version__}"


def _time_backends(model_name: str, size: tuple[int, ...], batch: int, x: torch.Tensor,
                   runners: dict[str, tuple[Runner, str]], steps: int, warmup: int) -> list[dict[str, Any]]:
    setup: dict[str, float] = {}
    outputs: dict[str, torch.Tensor] = {}
    for name, (run, _) in runners.items():
        start = time.perf_counter()
        for _ in range(max(warmup, 1)):
            outputs[name] = run(x)
        setup[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(steps):
        for name, (run, _) in runners.items():
            start = time.perf_counter()
            run(x)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["eager_fp32"])
    rows = []
    for name, (run, detail) in runners.items():
        median = statistics.median(times[name])
        state = getattr(run, "state", None)
        rows.append({
            "model": model_name, "input_size": list(size), "batch_size": batch, "backend": name,
            "detail": state["detail"] if state else detail, "median_ms": round(median * 1e3, 3),
            "images_per_s": round(batch / median, 2), "speedup": round(base / median, 3),
            "max_abs_diff": float((outputs[name].float() - outputs["eager_fp32"]).abs().max()),
            "warmup_s": round(setup[name], 2), "steps": steps,
        })
    return rows


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Render benchmark rows as a markdown table (one row per model, batch size and backend)."""
    lines = ["| model | input | batch | backend | images/s | median ms | vs eager fp32 | max abs diff | detail |",
             "|---|---|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {'x'.join(map(str, r['input_size']))} | {r['batch_size']} | {r['backend']} "
                     f"| {r['images_per_s']:.1f} | {r['median_ms']:.2f} | {r['speedup']:.2f}x "
                     f"| {r['max_abs_diff']:.2g} | {r['detail']} |")
    return "\n".join(lines)


def _environment(threads: int) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "cpu": cpu,
            "threads": threads, "logical_cpus": os.cpu_count(), "torch": torch.__version__,
            "onnxruntime": ort_version, "python": platform.python_version(), "load_average_before": _load()}


def _load() -> list[float] | None:
    # Other processes on a shared machine skew timings; the 1/5/15-minute load average records how busy it was.
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m densenet.export.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["d2l_densenet", "densenet121"], metavar="MODEL")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 64], metavar="B")
    parser.add_argument("--steps", type=int, default=10, help="timed calls per backend (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per backend first")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every backend")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--json-out", type=Path, default=None, metavar="FILE", help="also save the raw results")
    args = parser.parse_args(argv)
    environment = _environment(args.threads)
    rows = []
    for name in args.models:
        print(f"benchmarking {name}...", file=sys.stderr, flush=True)
        rows += benchmark_backends(name, args.batch_sizes, steps=args.steps, warmup=args.warmup,
                                   threads=args.threads, backends=args.backends)
    document = {"command": "python -m densenet.export.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
                **environment, "steps": args.steps, "warmup": args.warmup,
                "load_average_after": _load(), "results": rows}
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")
    print(to_markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

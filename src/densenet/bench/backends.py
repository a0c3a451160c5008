"""Inference speed of one model on several backends, in one process: ``densenet bench infer --backend ...``.

Backends:

- ``eager``: the PyTorch model as built, fp32, NCHW, eager, under ``torch.inference_mode``. The reference.
- ``fast``: the fast path as the trainer runs it (:func:`~densenet.engine.performance.prepare_model`:
  bf16 autocast where the CPU has native bf16, channels-last, ``torch.compile`` with its fallback to eager).
- ``onnxruntime``: the fp32 ONNX export (:func:`~densenet.export.formats.export_onnx`) on ONNX Runtime's
  CPU provider, all graph optimizations, ``intra_op_num_threads`` = torch's thread count.
- ``onnxruntime-int8``: that export quantized by :func:`~densenet.export.quantize.quantize_onnx` (static QDQ,
  per channel), calibrated on random inputs: speed does not depend on the weights' values, accuracy does,
  and ``densenet export --quantize int8`` calibrates on the run's pictures instead.
- ``openvino``, ``openvino-bf16``, ``openvino-int8``: the model converted to OpenVINO
  (:mod:`~densenet.export.openvino_ir`) and compiled for the CPU in fp32, in bf16 (``INFERENCE_PRECISION_HINT``),
  or quantized to int8 by NNCF on random inputs (as above), ``INFERENCE_NUM_THREADS`` = torch's thread count.
- ``torchscript``: the fp32 TorchScript export (:func:`~densenet.export.formats.export_torchscript`),
  loaded with ``torch.jit.load``.

The exported backends run through :mod:`densenet.export.runtime`, the code ``predict --backend`` uses.

The calls are timed by :func:`~densenet.bench.timing.time_interleaved`, the loop ``densenet bench``
uses for every figure. ``speedup`` is images/s relative to ``eager``; ``max_abs_diff`` is the largest
logit difference from ``eager`` on the same input (bf16 autocast is not exact).
"""

from __future__ import annotations

import copy
import functools
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from densenet.bench.timing import Log, time_interleaved
from densenet.engine.performance import PerfOptions, ResolvedPerf, is_compiled, prepare_model, resolve
from densenet.engine.step import infer_step
from densenet.errors import ConfigError

BACKENDS = ("eager", "fast", "onnxruntime", "onnxruntime-int8", "openvino", "openvino-bf16", "openvino-int8",
            "torchscript")
CALIBRATION_BATCHES = 4  # random batches the bench's int8 backends calibrate on
Runner = Callable[[], torch.Tensor]
EAGER = ResolvedPerf(torch.device("cpu"), "fp32", channels_last=False, compile=False, reasons=("eager fp32 NCHW",))


def run_backends(model_name: str, batch_size: int, input_size: Sequence[int], backends: Sequence[str] = BACKENDS,
                 steps: int = 10, warmup: int = 2, perf: PerfOptions | None = None, num_classes: int | None = None,
                 log: Log | None = None) -> dict[str, Any]:
    """Time ``model_name``'s inference on each backend (CPU), ``eager`` always first as the reference.

    Args:
        model_name: A registered model; freshly initialized weights (speed does not depend on them).
        batch_size: Images per call.
        input_size: One image's ``(C, H, W)``.
        backends: Which of :data:`BACKENDS` to run.
        steps: Timed calls per backend (the median is reported).
        warmup: Untimed calls per backend first (``torch.compile`` compiles here).
        perf: The fast backend's options (default: everything automatic).
        num_classes: Classifier outputs (default: the model's own).
        log: Where progress lines go.

    Returns:
        ``model``, ``input_size``, ``batch_size``, ``threads``, ``steps``, ``warmup`` and ``results``: one dict per
        backend with ``backend``, ``detail``, ``images_per_s``, ``median_ms``, ``median_cpu_ms``, ``speedup``,
        ``cpu_time_speedup``, ``max_abs_diff`` and ``warmup_s``.
    """
    from densenet.models import create_model, model_info

    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise ConfigError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    size = tuple(input_size)
    torch.manual_seed(0)
    model = create_model(model_name, in_channels=size[0], num_classes=num_classes or model_info(model_name).num_classes)
    model.eval()
    x = torch.randn(batch_size, *size, generator=torch.Generator().manual_seed(0))
    names = ["eager", *dict.fromkeys(b for b in backends if b != "eager")]
    with tempfile.TemporaryDirectory(prefix="densenet-bench-") as tmp:
        runners = {name: _runner(name, model, x, perf or PerfOptions(), Path(tmp)) for name in names}
        timings = time_interleaved({n: r[0] for n, r in runners.items()}, steps, warmup, "cpu", log,
                                   per_call=batch_size)
        outputs = {name: run().float() for name, (run, _) in runners.items()}
    base = timings["eager"]
    rows = []
    for name, (_, detail) in runners.items():
        t = timings[name]
        rows.append({"backend": name, "detail": detail(), "images_per_s": round(batch_size / t.median_s, 2),
                     "median_ms": round(t.median_s * 1e3, 3), "median_cpu_ms": round(t.median_cpu_s * 1e3, 3),
                     "speedup": round(base.median_s / t.median_s, 3),
                     "cpu_time_speedup": round(base.median_cpu_s / t.median_cpu_s, 3),
                     "max_abs_diff": float((outputs[name] - outputs["eager"]).abs().max()),
                     "warmup_s": round(t.warmup_s, 2)})
    return {"mode": "infer", "model": model_name, "input_size": list(size), "batch_size": batch_size,
            "threads": torch.get_num_threads(), "steps": steps, "warmup": warmup, "results": rows}


def _runner(name: str, model: nn.Module, x: torch.Tensor, perf: PerfOptions,
            tmp: Path) -> tuple[Runner, Callable[[], str]]:
    """One backend's call on ``x`` and a function describing it (read after the timed calls)."""
    if name == "eager":
        return functools.partial(infer_step, model, x, EAGER), lambda: "fp32, NCHW, eager"
    if name == "fast":
        resolved = resolve(perf, "cpu")
        fast = prepare_model(copy.deepcopy(model), resolved)
        xf = x.contiguous(memory_format=torch.channels_last) if resolved.channels_last else x
        return functools.partial(infer_step, fast, xf, resolved), lambda: (
            f"{resolved.precision}, channels_last={resolved.channels_last}, compiled={is_compiled(fast)}")
    if name.startswith("onnxruntime"):
        return _onnx_runner(model, x, tmp, int8=name.endswith("-int8"))
    if name.startswith("openvino"):
        return _openvino_runner(model, x, name.partition("-")[2] or "fp32")
    return _torchscript_runner(model, x, tmp)


def _random_calibration(x: torch.Tensor) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(x.shape, generator=g) for _ in range(CALIBRATION_BATCHES)]


def _onnx_runner(model: nn.Module, x: torch.Tensor, tmp: Path, int8: bool) -> tuple[Runner, Callable[[], str]]:
    from densenet.export.formats import ExportError, export_onnx
    from densenet.export.quantize import quantize_onnx
    from densenet.export.runtime import onnx_runtime

    try:
        path = export_onnx(model, tmp / "model.onnx", x.shape[1:])
        if int8:
            path = quantize_onnx(path, tmp / "model-int8.onnx", _random_calibration(x))
        runtime = onnx_runtime(path)
    except ExportError as exc:
        raise ConfigError(str(exc)) from None
    precision = "int8 static QDQ U8S8 per-channel, calibrated on random inputs" if int8 else "fp32"
    return functools.partial(runtime, x), lambda: f"{precision}, {runtime.detail}"


def _openvino_runner(model: nn.Module, x: torch.Tensor, precision: str) -> tuple[Runner, Callable[[], str]]:
    from densenet.export.formats import ExportError
    from densenet.export.openvino_ir import compile_ir, quantize_openvino, to_openvino
    from densenet.export.runtime import openvino_runtime

    try:
        converted = to_openvino(model, x.shape[1:])
        if precision == "int8":
            converted = quantize_openvino(converted, _random_calibration(x))
        runtime = openvino_runtime(compile_ir(converted, precision, torch.get_num_threads()), precision)
    except ExportError as exc:
        raise ConfigError(str(exc)) from None
    calibrated = ", NNCF int8 calibrated on random inputs" if precision == "int8" else ""
    return functools.partial(runtime, x), lambda: f"{runtime.detail}{calibrated}"


def _torchscript_runner(model: nn.Module, x: torch.Tensor, tmp: Path) -> tuple[Runner, Callable[[], str]]:
    from densenet.export.formats import export_torchscript

    loaded = torch.jit.load(str(export_torchscript(model, tmp / "model.pt", x.shape[1:])), map_location="cpu").eval()
    return functools.partial(infer_step, loaded, x, EAGER), lambda: "fp32, NCHW, torch.jit.trace + torch.jit.load"


def to_markdown(doc: dict[str, Any]) -> str:
    """The results of :func:`run_backends` as a markdown table."""
    lines = [f"{doc['model']} {'x'.join(map(str, doc['input_size']))}, batch {doc['batch_size']}, "
             f"{doc['threads']} threads, median of {doc['steps']} calls", "",
             "| backend | images/s | median ms | vs eager | max abs diff | detail |", "|---|---:|---:|---:|---:|---|"]
    for r in doc["results"]:
        lines.append(f"| {r['backend']} | {r['images_per_s']:.1f} | {r['median_ms']:.2f} | {r['speedup']:.2f}x "
                     f"| {r['max_abs_diff']:.2g} | {r['detail']} |")
    return "\n".join(lines)

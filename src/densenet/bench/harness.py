"""Throughput and peak memory of training or inference steps: the fast path against a baseline, in one process.

A training step is forward, cross-entropy, backward and an SGD step on random data; an inference step
is one forward pass in eval mode under ``torch.inference_mode``. The fast model and the baseline take
turns step by step (the order alternates each round), so noise from other processes on the machine
hits both, and the medians are compared (:func:`densenet.bench.timing.time_interleaved`). The training
step is the trainer's (:func:`densenet.engine.step.train_step`).

Baselines:

- ``"naive"``: the textbook implementation of the same architecture with the same weights
  (:func:`densenet.bench.baselines.naive_model`): every dense block re-concatenates
  ``X = torch.cat((X, Y), dim=1)`` after each layer, fp32, eager, contiguous (NCHW).
- ``"peer"``: the same textbook model with the three lines a practitioner adds
  (:func:`densenet.bench.baselines.peer_model`): channels-last, bf16 autocast where the hardware has it, and
  ``torch.compile``, as :func:`~densenet.engine.performance.resolve` decides them for the fast path.
- ``"plain"``: the fast settings without gradient checkpointing; compares the memory-efficient mode.

Several baselines can run at once; all variants take turns in the same rounds.

Inference backends (eager, fast, ONNX Runtime, TorchScript) are :mod:`densenet.bench.backends`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from densenet.bench.baselines import naive_model, peer_model
from densenet.bench.timing import Log, Timing, time_interleaved
from densenet.engine.performance import (
    PerfOptions,
    ResolvedPerf,
    is_compiled,
    make_grad_scaler,
    prepare_model,
    resolve,
)
from densenet.engine.step import infer_step, train_step
from densenet.errors import ConfigError

MODES = ("train", "infer")
BASELINES = ("naive", "peer", "plain")


@dataclass
class BenchConfig:
    """One benchmark: which model, which step, which input, and how to run it."""

    mode: str  # "train" (forward + loss + backward + SGD step) or "infer" (eval-mode forward)
    model: str  # a registered model name
    batch_size: int
    input_size: tuple[int, int, int]  # (C, H, W) of one image
    steps: int = 10  # timed steps per variant
    warmup: int = 2  # untimed steps per variant first (compilation happens here)
    baseline: str | tuple[str, ...] | None = None  # one or more of BASELINES; stored as a tuple (empty: none)
    memory_efficient: bool = False  # the fast model with set_grad_checkpointing(True)
    perf: PerfOptions = field(default_factory=PerfOptions)  # precision, channels_last, compile of the fast model
    device: str = "cpu"  # "cpu", "cuda" or "cuda:N"
    num_classes: int | None = None  # classifier outputs (default: the model's own)
    measure_memory: bool = True  # one extra step per variant to measure peak memory
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # builder arguments overriding the model's config

    def __post_init__(self) -> None:
        self.input_size = tuple(self.input_size)  # type: ignore[assignment]
        names = () if self.baseline is None else (self.baseline,) if isinstance(self.baseline, str) else self.baseline
        self.baseline = tuple(dict.fromkeys(names))  # each once, in the order given
        unknown = [b for b in self.baseline if b not in BASELINES]
        checks = [
            (self.mode in MODES, f"mode must be one of {', '.join(MODES)}, got {self.mode!r}"),
            (not unknown, f"baseline must be one of {', '.join(BASELINES)}, got {', '.join(map(repr, unknown))}"),
            (self.batch_size >= 1, f"batch size must be a positive integer, got {self.batch_size}"),
            (self.steps >= 1, f"steps must be a positive integer, got {self.steps}"),
            (self.warmup >= 0, f"warmup must be >= 0, got {self.warmup}"),
            (len(self.input_size) == 3 and min(self.input_size) >= 1,
             f"input size must be three positive integers C,H,W, got {self.input_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


# -- steps -----------------------------------------------------------------------------------------------
@dataclass
class Variant:
    """One contender: a model, the data it runs on, and its step function."""

    name: str
    model: nn.Module
    perf: ResolvedPerf
    step: Callable[[], None] = field(init=False)
    x: torch.Tensor = field(init=False)
    resident_bytes: int = 0  # parameters, buffers, optimizer state and inputs held between steps


def _make_step(variant: Variant, mode: str, x: torch.Tensor, y: torch.Tensor) -> None:
    model, perf = variant.model, variant.perf
    if perf.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    variant.x = x
    held = list(model.parameters()) + list(model.buffers()) + [x]
    if mode == "infer":
        model.eval()
        variant.step = functools.partial(infer_step, model, x, perf)
    else:
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)  # no momentum: no optimizer state
        variant.step = functools.partial(train_step, model, optimizer, x, y, perf, make_grad_scaler(perf))
        held.append(y)
    variant.resident_bytes = _bytes(held)


def _bytes(tensors: list[torch.Tensor]) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


# -- peak memory -----------------------------------------------------------------------------------------
def peak_step_memory(variant: Variant, device: torch.device) -> tuple[int, str]:
    """Peak bytes of live tensors during one step of ``variant``, and how that was measured.

    CUDA: ``torch.cuda.max_memory_allocated`` over the step. CPU: the allocation and free events that
    ``torch.profiler`` records for every tensor (compiled code's buffers included), summed in time order;
    the peak of that running sum is added to what lives between steps (parameters, buffers, inputs).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        variant.step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device), "torch.cuda.max_memory_allocated over one warm step"
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        variant.step()
    cpu = torch.autograd.DeviceType.CPU
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and e.device_type() == cpu)
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return variant.resident_bytes + peak, ("torch.profiler memory events over one warm step (peak of live tensor "
                                           "bytes) plus parameters, buffers and inputs")


# -- the benchmark ---------------------------------------------------------------------------------------
def build_variants(cfg: BenchConfig) -> list[Variant]:
    """The fast variant first, then the baselines in the order asked, sharing weights and data."""
    from densenet.models import create_model, model_info

    device = torch.device(cfg.device)
    info = model_info(cfg.model)
    kwargs: dict[str, Any] = {"in_channels": cfg.input_size[0], "num_classes": cfg.num_classes or info.num_classes}
    torch.manual_seed(0)
    kwargs.update(cfg.model_kwargs)
    fast_model = create_model(cfg.model, **kwargs).to(device)
    if cfg.memory_efficient:
        fast_model.set_grad_checkpointing(True)
    reference = copy.deepcopy(fast_model)
    perf = resolve(cfg.perf, device)
    variants = [Variant("fast", prepare_model(fast_model, perf), perf)]
    variants += [_baseline(name, copy.deepcopy(reference), perf) for name in cfg.baseline]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(cfg.batch_size, *cfg.input_size, generator=gen).to(device)
    y = torch.randint(0, kwargs["num_classes"], (cfg.batch_size,), generator=gen).to(device)
    for v in variants:
        _make_step(v, cfg.mode, x, y)
    return variants


def _baseline(name: str, reference: nn.Module, perf: ResolvedPerf) -> Variant:
    """Baseline ``name`` built from ``reference`` (a copy of the fast model before it was prepared)."""
    if name == "naive":
        fp32 = ResolvedPerf(perf.device, "fp32", channels_last=False, compile=False,
                            reasons=("naive: fp32 eager NCHW",))
        return Variant("naive", naive_model(reference), fp32)
    if name == "peer":
        peer = ResolvedPerf(perf.device, perf.precision, perf.channels_last, perf.compile, perf.compile_mode,
                            reasons=("peer: the textbook model with the fast path's precision, memory format and "
                                     "torch.compile",))
        return Variant("peer", peer_model(reference, peer), peer)
    reference.set_grad_checkpointing(False)
    return Variant("plain", prepare_model(reference, perf), perf)


def run_bench(cfg: BenchConfig, log: Log | None = None) -> dict[str, Any]:
    """Run the benchmark and return its figures.

    Args:
        cfg: What to measure.
        log: Where progress lines go (default: nowhere).

    Returns:
        ``images_per_s``, ``median_step_s``, ``median_cpu_s``, ``peak_memory_mb`` of the fast variant and the
        settings; with baselines, ``baselines``: name -> its ``images_per_s``, ``median_step_s``,
        ``median_cpu_s``, ``warmup_s``, ``peak_memory_mb``, ``speedup`` (fast over baseline images/s),
        ``cpu_time_speedup`` (baseline over fast CPU time per step), ``memory_ratio`` (fast over baseline
        peak), ``precision``, ``channels_last``, ``compiled``; the first baseline's figures also at the top
        level, prefixed ``baseline_`` (``baseline`` names it), as single-baseline documents had them.
    """
    device = torch.device(cfg.device)
    variants = build_variants(cfg)
    fast = variants[0]
    if log:
        log(f"{cfg.mode} {cfg.model}, batch {cfg.batch_size}, input {'x'.join(map(str, cfg.input_size))}, "
            f"{torch.get_num_threads()} threads: " + "; ".join(fast.perf.reasons))
    timings = time_interleaved({v.name: v.step for v in variants}, cfg.steps, cfg.warmup, device, log,
                               per_call=cfg.batch_size)
    result = _figures(cfg, timings[fast.name])
    result.update(model=cfg.model, mode=cfg.mode, batch_size=cfg.batch_size, input_size=list(cfg.input_size),
                  device=str(device), threads=torch.get_num_threads(), precision=fast.perf.precision,
                  channels_last=fast.perf.channels_last, compiled=is_compiled(fast.model),
                  memory_efficient=cfg.memory_efficient, warmup_s=round(timings[fast.name].warmup_s, 3),
                  decisions=list(fast.perf.reasons))
    peaks = {}
    if cfg.measure_memory:
        for v in variants:
            peak, result["memory_method"] = peak_step_memory(v, device)
            peaks[v.name] = round(peak / 2**20, 1)
        result["peak_memory_mb"] = peaks[fast.name]
    result["baselines"] = {v.name: _versus(cfg, result, timings[v.name], peaks.get(v.name), v)
                           for v in variants[1:]}
    if len(variants) > 1:
        first = variants[1].name
        result["baseline"] = first
        result.update({("" if key in ("speedup", "cpu_time_speedup", "memory_ratio") else "baseline_") + key: value
                       for key, value in result["baselines"][first].items()
                       if key not in ("precision", "channels_last", "compiled")})
    return result


def _versus(cfg: BenchConfig, fast: dict[str, Any], timing: Timing, peak_mb: float | None,
            variant: Variant) -> dict[str, Any]:
    """One baseline's figures and its ratios to the fast variant's (``fast``: the figures so far)."""
    figures = _figures(cfg, timing)
    del figures["steps"]
    figures.update(warmup_s=round(timing.warmup_s, 3),
                   speedup=round(fast["images_per_s"] / figures["images_per_s"], 3),
                   cpu_time_speedup=round(figures["median_cpu_s"] / fast["median_cpu_s"], 3),
                   precision=variant.perf.precision, channels_last=variant.perf.channels_last,
                   compiled=variant.perf.compile)
    if peak_mb is not None:
        figures.update(peak_memory_mb=peak_mb, memory_ratio=round(fast["peak_memory_mb"] / peak_mb, 3))
    return figures


def _figures(cfg: BenchConfig, timing: Timing) -> dict[str, Any]:
    step = timing.median_s
    return {"images_per_s": round(cfg.batch_size / step, 2), "median_step_s": round(step, 4),
            "median_cpu_s": round(timing.median_cpu_s, 4), "steps": cfg.steps}

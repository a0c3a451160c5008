"""Throughput and peak memory of training or inference steps: the fast path against a baseline, in one process.

A training step is forward, cross-entropy, backward and an SGD step on random data; an inference step
is one forward pass in eval mode under ``torch.inference_mode``. The fast model and the baseline take
turns step by step (the order alternates each round), so noise from other processes on the machine
hits both, and the medians are compared.

Baselines:

- ``"naive"``: the textbook implementation of the same architecture with the same weights: every dense
  block re-concatenates ``X = torch.cat((X, Y), dim=1)`` after each layer, fp32, eager, contiguous (NCHW).
- ``"plain"``: the fast settings without ``memory_efficient``; compares the memory-efficient mode.
"""

from __future__ import annotations

import copy
import statistics
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from densenet.engine.performance import (
    PerfOptions,
    ResolvedPerf,
    autocast_context,
    is_compiled,
    make_grad_scaler,
    prepare_model,
    resolve,
)
from densenet.errors import ConfigError
from densenet.models.layers import DenseBlock, DenseLayer

MODES = ("train", "infer")
BASELINES = ("naive", "plain")
Log = Callable[[str], None]


@dataclass
class BenchConfig:
    """One benchmark: which model, which step, which input, and how to run it."""

    mode: str  # "train" (forward + loss + backward + SGD step) or "infer" (eval-mode forward)
    model: str  # a registered model name
    batch_size: int
    input_size: tuple[int, int, int]  # (C, H, W) of one image
    steps: int = 10  # timed steps per variant
    warmup: int = 2  # untimed steps per variant first (compilation happens here)
    baseline: str | None = None  # "naive", "plain" or None
    memory_efficient: bool = False  # build the fast model with memory_efficient=True
    perf: PerfOptions = field(default_factory=PerfOptions)  # precision, channels_last, compile of the fast model
    device: str = "cpu"  # "cpu", "cuda" or "cuda:N"
    num_classes: int | None = None  # classifier outputs (default: the model's own)
    measure_memory: bool = True  # one extra step per variant to measure peak memory
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # builder arguments overriding the model's config

    def __post_init__(self) -> None:
        self.input_size = tuple(self.input_size)  # type: ignore[assignment]
        checks = [
            (self.mode in MODES, f"mode must be one of {', '.join(MODES)}, got {self.mode!r}"),
            (self.baseline is None or self.baseline in BASELINES,
             f"baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}"),
            (self.batch_size >= 1, f"batch size must be a positive integer, got {self.batch_size}"),
            (self.steps >= 1, f"steps must be a positive integer, got {self.steps}"),
            (self.warmup >= 0, f"warmup must be >= 0, got {self.warmup}"),
            (len(self.input_size) == 3 and min(self.input_size) >= 1,
             f"input size must be three positive integers C,H,W, got {self.input_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


# -- the naive baseline ----------------------------------------------------------------------------------
def textbook_layer_forward(layer: DenseLayer, x: torch.Tensor) -> torch.Tensor:
    """The textbook dense layer on the concatenated input ``x``: BN-ReLU-Conv (-BN-ReLU-Conv), then dropout."""
    y = layer.conv1(F.relu(layer.norm1(x)))  # (B, k, H, W), or (B, bn_size*k, H, W) with a bottleneck
    if layer.bottleneck:
        y = layer.conv2(F.relu(layer.norm2(y)))  # (B, k, H, W)
    return F.dropout(y, p=layer.drop_rate, training=layer.training) if layer.drop_rate > 0 else y


def textbook_block_forward(block: DenseBlock, x: torch.Tensor) -> torch.Tensor:
    """d2l's ``DenseBlock.forward``: after each layer, ``X = torch.cat((X, Y), dim=1)``."""
    for layer in block.values():
        y = textbook_layer_forward(layer, x)
        x = torch.cat((x, y), dim=1)  # (B, C0 + i*k, H, W)
    return x


def naive_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (same weights) whose dense blocks run :func:`textbook_block_forward`, in fp32 NCHW."""
    naive = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format)
    for module in naive.modules():
        if isinstance(module, DenseBlock):
            module.forward = types.MethodType(textbook_block_forward, module)  # type: ignore[method-assign]
    return naive


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
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)


def _make_step(variant: Variant, mode: str, x: torch.Tensor, y: torch.Tensor) -> None:
    model, perf = variant.model, variant.perf
    if perf.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    variant.x = x
    if mode == "infer":
        model.eval()

        def infer() -> None:
            with torch.inference_mode(), autocast_context(perf):
                model(x)

        variant.step = infer
        variant.resident_bytes = _bytes(list(model.parameters()) + list(model.buffers()) + [x])
        return
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = make_grad_scaler(perf)

    def train() -> None:
        with autocast_context(perf):
            loss = F.cross_entropy(model(x).float(), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    variant.step = train
    variant.resident_bytes = _bytes(list(model.parameters()) + list(model.buffers()) + [x, y])


def _bytes(tensors: list[torch.Tensor]) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


def _timed(variant: Variant, device: torch.device) -> None:
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    variant.step()
    _sync(device)
    variant.times.append(time.perf_counter() - wall)
    variant.cpu_times.append(time.process_time() - cpu)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    """The fast variant first, then the baseline (if any), sharing weights and data."""
    from densenet.models import create_model, model_info

    device = torch.device(cfg.device)
    info = model_info(cfg.model)
    kwargs: dict[str, Any] = {"in_channels": cfg.input_size[0], "num_classes": cfg.num_classes or info.num_classes}
    torch.manual_seed(0)
    kwargs.update(cfg.model_kwargs)
    fast_model = create_model(cfg.model, **kwargs, **({"memory_efficient": True} if cfg.memory_efficient else {}))
    fast_model.to(device)
    reference = copy.deepcopy(fast_model)
    fast = Variant("fast", prepare_model(fast_model, resolve(cfg.perf, device)), resolve(cfg.perf, device))
    variants = [fast]
    if cfg.baseline == "naive":
        base = naive_model(reference)
        if cfg.memory_efficient:
            _set_memory_efficient(base, False)
        fp32 = ResolvedPerf(device, "fp32", channels_last=False, compile=False, reasons=("naive: fp32 eager NCHW",))
        variants.append(Variant("naive", base, fp32))
    elif cfg.baseline == "plain":
        _set_memory_efficient(reference, False)
        variants.append(Variant("plain", prepare_model(reference, fast.perf), fast.perf))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(cfg.batch_size, *cfg.input_size, generator=gen).to(device)
    y = torch.randint(0, kwargs["num_classes"], (cfg.batch_size,), generator=gen).to(device)
    for v in variants:
        _make_step(v, cfg.mode, x, y)
    return variants


def _set_memory_efficient(model: nn.Module, on: bool) -> None:
    for m in model.modules():
        if isinstance(m, DenseLayer):
            m.memory_efficient = on


def run_bench(cfg: BenchConfig, log: Log | None = None) -> dict[str, Any]:
    """Run the benchmark and return its figures.

    Args:
        cfg: What to measure.
        log: Where progress lines go (default: nowhere).

    Returns:
        ``images_per_s``, ``median_step_s``, ``peak_memory_mb`` of the fast variant, and with a baseline
        ``baseline_images_per_s``, ``baseline_median_step_s``, ``baseline_peak_memory_mb``, ``speedup``
        (fast over baseline images/s) and ``memory_ratio`` (fast over baseline peak); plus the settings.
    """
    log = log or (lambda _m: None)
    device = torch.device(cfg.device)
    variants = build_variants(cfg)
    fast = variants[0]
    log(f"{cfg.mode} {cfg.model}, batch {cfg.batch_size}, input {'x'.join(map(str, cfg.input_size))}, "
        f"{torch.get_num_threads()} threads: " + "; ".join(fast.perf.reasons))
    first_step_s = {}
    for v in variants:
        t = time.perf_counter()
        for _ in range(cfg.warmup):
            v.step()
        _sync(device)
        first_step_s[v.name] = time.perf_counter() - t
        log(f"  warm-up {v.name}: {cfg.warmup} steps in {first_step_s[v.name]:.1f} s")
    for i in range(cfg.steps):
        for v in variants if i % 2 == 0 else variants[::-1]:
            _timed(v, device)
        log(f"  step {i + 1}/{cfg.steps}: " + ", ".join(f"{v.name} {cfg.batch_size / v.times[-1]:.1f} img/s"
                                                         for v in variants))
    result = _figures(cfg, fast, "")
    result.update(model=cfg.model, mode=cfg.mode, batch_size=cfg.batch_size, input_size=list(cfg.input_size),
                  device=str(device), threads=torch.get_num_threads(), precision=fast.perf.precision,
                  channels_last=fast.perf.channels_last, compiled=is_compiled(fast.model),
                  memory_efficient=cfg.memory_efficient, warmup_s=round(first_step_s["fast"], 3),
                  decisions=list(fast.perf.reasons))
    if cfg.measure_memory:
        for v in variants:
            peak, method = peak_step_memory(v, device)
            result["peak_memory_mb" if v is fast else "baseline_peak_memory_mb"] = round(peak / 2**20, 1)
        result["memory_method"] = method
    if len(variants) > 1:
        base = variants[1]
        result["baseline"] = base.name
        result.update(_figures(cfg, base, "baseline_"))
        result["speedup"] = round(result["images_per_s"] / result["baseline_images_per_s"], 3)
        result["cpu_time_speedup"] = round(result["baseline_median_cpu_s"] / result["median_cpu_s"], 3)
        if cfg.measure_memory:
            result["memory_ratio"] = round(result["peak_memory_mb"] / result["baseline_peak_memory_mb"], 3)
    return result


def _figures(cfg: BenchConfig, v: Variant, prefix: str) -> dict[str, Any]:
    step = statistics.median(v.times)
    return {f"{prefix}images_per_s": round(cfg.batch_size / step, 2), f"{prefix}median_step_s": round(step, 4),
            f"{prefix}median_cpu_s": round(statistics.median(v.cpu_times), 4), "steps": cfg.steps}

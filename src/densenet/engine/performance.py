"""The fast path: mixed precision, channels-last memory format and ``torch.compile``, decided per device.

The trainer calls, in this order::

    perf = resolve(PerfOptions(precision="auto"), device)   # what is on, and why
    scaler = make_grad_scaler(perf)                           # None unless fp16
    net = prepare_model(model.to(device), perf)               # same module: memory format + compiled forward
    with autocast_context(perf):
        loss = F.cross_entropy(net(x).float(), y)

Everything left on ``None``/``"auto"`` is switched on where it was measured to help (see BENCHMARKS.md):
bf16 autocast on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX) and on CUDA GPUs that support it
(fp16 with gradient scaling on older GPUs), channels-last on CPU and CUDA, and ``torch.compile`` where a
compiler toolchain is present (:mod:`densenet.engine.compiled`). If compilation fails, the model warns once
and runs eagerly.
The CPU thread count is left alone: on a shared machine, set it per process (``torch.set_num_threads``);
two OpenMP threads per process on two busy cores made the fast path 25x slower (BENCHMARKS.md, Threads).
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import sys
from dataclasses import dataclass, field

import torch
from torch import nn

from densenet.engine import hardware
from densenet.engine.compiled import CompiledForward, compile_in_place, is_compiled
from densenet.engine.config import PerfOptions

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class ResolvedPerf:
    """The decisions :func:`resolve` made for one device.

    Attributes:
        device: Where the model runs.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (the autocast dtype; weights stay fp32).
        channels_last: Whether the model (and so its activations) uses the NHWC memory format.
        compile: Whether :func:`prepare_model` compiles the forward pass.
        compile_mode: ``torch.compile``'s mode, ``None`` for its default.
        reasons: One short line per decision, for logs.
    """

    device: torch.device
    precision: str
    channels_last: bool
    compile: bool
    compile_mode: str | None = None
    reasons: tuple[str, ...] = field(default=(), compare=False)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or ``None`` for plain fp32."""
        return _DTYPES.get(self.precision)

    @property
    def grad_scaling(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
        return self.precision == "fp16"


def resolve(options: PerfOptions, device: torch.device | str) -> ResolvedPerf:
    """Decide precision, memory format and compilation for ``device``.

    Explicit choices are kept (an explicit ``"bf16"`` on hardware without native bf16 runs, slowly, and
    says so in ``reasons``); ``"auto"``/``None`` pick what is fastest on this kind of device.

    Args:
        options: What was asked for.
        device: The device the model will run on.

    Returns:
        The decisions, with a reason for each.
    """
    device = torch.device(device)
    precision, why_precision = _resolve_precision(options.precision, device)
    if options.channels_last is None:
        channels_last = device.type in ("cpu", "cuda")
        why_cl = f"channels_last {'on' if channels_last else 'off'}: default for {device.type}"
    else:
        channels_last = options.channels_last
        why_cl = f"channels_last {'on' if channels_last else 'off'}: asked"
    if options.compile is None:
        problem = compile_unavailable(device)
        compiled = problem is None
        why_compile = "compile on: default" if compiled else f"compile off: {problem}"
    else:
        compiled, why_compile = options.compile, f"compile {'on' if options.compile else 'off'}: asked"
    mode = None if options.compile_mode == "default" else options.compile_mode
    return ResolvedPerf(device, precision, channels_last, compiled, mode, (why_precision, why_cl, why_compile))


def _resolve_precision(asked: str, device: torch.device) -> tuple[str, str]:
    if asked == "fp32":
        return "fp32", "fp32: asked"
    if device.type == "cuda":
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if asked == "auto":
            return ("bf16", "bf16 autocast: the GPU supports bf16") if bf16 else \
                ("fp16", "fp16 autocast with gradient scaling: the GPU has no bf16")
        return asked, f"{asked} autocast: asked" + ("" if asked == "fp16" or bf16 else " (the GPU emulates bf16)")
    if device.type == "cpu":
        native = cpu_supports_bf16()
        if asked == "auto":
            return ("bf16", "bf16 autocast: the CPU has native bf16 (AVX512-BF16/AMX)") if native else \
                ("fp32", "fp32: the CPU has no native bf16 arithmetic")
        slow = asked == "fp16" or not native
        return asked, f"{asked} autocast: asked" + (" (emulated on this CPU: expect it to be slow)" if slow else "")
    if asked == "auto":
        return "fp32", f"fp32: no autocast default for {device.type}"
    return asked, f"{asked} autocast: asked"


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), so that bf16 autocast pays.

    oneDNN also runs bf16 on plain AVX-512 by emulation, which is slower than fp32; so the
    instruction-set flags decide, not ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` alone.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    return hardware.has_avx512_bf16() or hardware.has_amx()  # unknown flags (no /proc/cpuinfo): stay fp32


def compile_unavailable(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, or ``None`` if it can.

    Inductor needs a C++ compiler for CPU code and Triton for CUDA code; Dynamo does not run on every
    Python version or platform.
    """
    if sys.platform == "win32":
        return "torch.compile is not supported on Windows here"
    try:
        if not torch._dynamo.is_dynamo_supported():
            return f"torch.compile does not support Python {sys.version_info.major}.{sys.version_info.minor}"
    except Exception as exc:  # a broken install: report it, run eagerly
        return f"torch.compile is unusable ({type(exc).__name__})"
    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return "no C++ compiler (g++/clang++) for Inductor"
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "Triton is not installed"
    if device.type not in ("cpu", "cuda"):
        return f"not used on {device.type}"
    return None


def autocast_context(resolved: ResolvedPerf) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for the resolved precision, or a no-op context for fp32."""
    dtype = resolved.autocast_dtype
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(resolved.device.type, dtype=dtype)


def make_grad_scaler(resolved: ResolvedPerf) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 training, ``None`` for fp32 and bf16 (which need none)."""
    return torch.amp.GradScaler(resolved.device.type) if resolved.grad_scaling else None


def prepare_model(model: nn.Module, resolved: ResolvedPerf) -> nn.Module:
    """Put ``model`` in the resolved memory format and compile it, in place.

    The returned module is ``model`` itself: its ``state_dict`` keys, hooks and attributes are unchanged
    (no ``_orig_mod.`` prefix), it can be wrapped in ``DistributedDataParallel``, and ``copy.deepcopy`` or
    pickling gives an uncompiled copy. Move the model to its device first. How it is compiled (whole, or
    per dense layer for memory-efficient models; ATen's max-pool on the CPU) is
    :func:`densenet.engine.compiled.compile_in_place`'s business.

    Args:
        model: The model, already on ``resolved.device``.
        resolved: The decisions from :func:`resolve`.

    Returns:
        ``model``.
    """
    if resolved.channels_last:
        model.to(memory_format=torch.channels_last)
    if resolved.compile:
        compile_in_place(model, resolved.device, resolved.compile_mode)
    return model


__all__ = ["CompiledForward", "PerfOptions", "ResolvedPerf", "autocast_context",
           "compile_unavailable", "cpu_supports_bf16", "is_compiled", "make_grad_scaler", "prepare_model", "resolve"]

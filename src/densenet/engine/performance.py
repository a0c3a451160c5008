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
compiler toolchain is present. If compilation fails, the model warns once and runs eagerly.
The CPU thread count is left alone: on a shared machine, set it per process (``torch.set_num_threads``);
two OpenMP threads per process on two busy cores made the fast path 25x slower (BENCHMARKS.md, Threads).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from densenet.engine.config import PRECISIONS, PerfOptions  # noqa: F401  (PRECISIONS: re-exported)
from densenet.models.layers import DenseLayer

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


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), so that bf16 autocast pays.

    oneDNN also runs bf16 on plain AVX-512 by emulation, which is slower than fp32; so the
    instruction-set flags decide, not ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` alone.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})  # unknown flags (no /proc/cpuinfo): stay fp32


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
    pickling gives an uncompiled copy. Move the model to its device first. When compiling for the CPU,
    ``nn.MaxPool2d`` layers run ATen's kernels through an opaque custom op (same results; Inductor's own
    max-pool was 10x slower here).

    Memory-efficient models are not compiled whole: traced into the model's graph, Inductor's recomputation
    kept 3.5x more alive in backward than eager checkpointing (BENCHMARKS.md). Their dense layers share one
    compiled :meth:`DenseLayer.transform` (BN-ReLU-Conv; one graph per layer width, as parameter shapes are
    static) and checkpoint eagerly around it; the stem and transitions run eagerly.

    Args:
        model: The model, already on ``resolved.device``.
        resolved: The decisions from :func:`resolve`.

    Returns:
        ``model``.
    """
    if resolved.channels_last:
        model.to(memory_format=torch.channels_last)
    if resolved.compile and not isinstance(model.__dict__.get("_compiled_call_impl"), CompiledForward):
        if resolved.device.type == "cpu":
            for module in model.modules():
                if type(module) is nn.MaxPool2d and not module.return_indices:
                    module.forward = functools.partial(_opaque_max_pool2d, module)  # type: ignore[method-assign]
        efficient = [m for m in model.modules() if isinstance(m, DenseLayer) and m.memory_efficient]
        if efficient:
            # Per width: a training and an evaluation graph, each static, then one with a dynamic batch size
            # once a last, smaller batch arrives.
            transform = CompiledForward(DenseLayer.transform, resolved.compile_mode, max_graphs=4 * len(efficient) + 8)
            for layer in efficient:
                layer.compiled_transform = transform
        else:
            # What nn.Module.compile() does, with a fallback: __call__ runs _compiled_call_impl when it is set,
            # and Module.__getstate__ drops it, so copies and pickles are plain eager modules.
            model._compiled_call_impl = CompiledForward(model._call_impl, resolved.compile_mode)
    return model


def is_compiled(model: nn.Module) -> bool:
    """Whether :func:`prepare_model` compiled ``model`` (or its dense layers) and compilation has not failed."""
    compiled = [model.__dict__.get("_compiled_call_impl")]
    compiled += [m.compiled_transform for m in model.modules() if isinstance(m, DenseLayer)]
    return any(isinstance(c, CompiledForward) and not c.failed for c in compiled)


class CompiledForward:
    """A forward function run through ``torch.compile``, falling back to eager if compilation fails.

    Compilation happens at the first call (and again when shapes or modes change). When the compiled
    call raises, the eager forward runs the same inputs: if that works, the failure was the compiler's,
    so it warns once and stays eager from then on; if eager raises too, that error is the caller's.

    Args:
        eager: The eager call (a module's bound ``_call_impl``).
        mode: ``torch.compile``'s mode, ``None`` for its default.
        max_graphs: How many graphs Dynamo may compile for ``eager`` (its recompile limit, 8 by default):
            one function shared by modules of different shapes needs one per shape.
    """

    def __init__(self, eager: Callable[..., Any], mode: str | None = None, max_graphs: int | None = None) -> None:
        self.eager = eager
        self.failed = False
        self.max_graphs = max_graphs
        try:
            self.compiled: Callable[..., Any] = torch.compile(eager, mode=mode)
        except Exception as exc:  # e.g. an unsupported Python version
            self._give_up(exc)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed:
            return self.eager(*args, **kwargs)
        try:
            if self.max_graphs is not None:
                with torch._dynamo.config.patch(recompile_limit=max(self.max_graphs, 8)):
                    return self.compiled(*args, **kwargs)
            return self.compiled(*args, **kwargs)
        except Exception as exc:
            out = self.eager(*args, **kwargs)  # raises the caller's error if it was not the compiler's
            self._give_up(exc)
            return out

    def _give_up(self, exc: BaseException) -> None:
        self.failed = True
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        warnings.warn(f"torch.compile failed ({type(exc).__name__}: {first}); running eagerly instead. "
                      "Pass --no-compile (compile=False) to skip compiling.", RuntimeWarning, stacklevel=3)


# Inductor's CPU code for max-pooling (forward with offsets, backward as a scatter-add) took 35 ms and
# 90-125 ms per DenseNet stem at batch 64 on this project's CPU, against 4-10 ms for ATen's kernels.
# prepare_model therefore routes nn.MaxPool2d through these two opaque custom ops when compiling for the
# CPU: Inductor calls ATen's kernels for them and fuses everything around them as usual.
def _pair(v: int | tuple[int, ...]) -> list[int]:
    return [v, v] if isinstance(v, int) else list(v)


@torch.library.custom_op("densenet::max_pool2d", mutates_args=())
def _max_pool2d(x: Tensor, kernel_size: list[int], stride: list[int], padding: list[int], dilation: list[int],
                ceil_mode: bool) -> tuple[Tensor, Tensor]:
    return torch.ops.aten.max_pool2d_with_indices(x, kernel_size, stride, padding, dilation, ceil_mode)


@_max_pool2d.register_fake
def _max_pool2d_fake(x, kernel_size, stride, padding, dilation, ceil_mode):
    return torch.ops.aten.max_pool2d_with_indices(x, kernel_size, stride, padding, dilation, ceil_mode)


@torch.library.custom_op("densenet::max_pool2d_backward", mutates_args=())
def _max_pool2d_backward(grad: Tensor, x: Tensor, indices: Tensor, kernel_size: list[int], stride: list[int],
                         padding: list[int], dilation: list[int], ceil_mode: bool) -> Tensor:
    return torch.ops.aten.max_pool2d_with_indices_backward(grad, x, kernel_size, stride, padding, dilation,
                                                           ceil_mode, indices)


@_max_pool2d_backward.register_fake
def _max_pool2d_backward_fake(grad, x, indices, kernel_size, stride, padding, dilation, ceil_mode):
    return torch.ops.aten.max_pool2d_with_indices_backward(grad, x, kernel_size, stride, padding, dilation,
                                                           ceil_mode, indices)


def _max_pool2d_setup(ctx: Any, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    ctx.save_for_backward(inputs[0], output[1])
    ctx.pool_args = inputs[1:]


def _max_pool2d_grad(ctx: Any, grad: Tensor, _grad_indices: Tensor | None) -> tuple:
    x, indices = ctx.saved_tensors
    return (_max_pool2d_backward(grad, x, indices, *ctx.pool_args),) + (None,) * len(ctx.pool_args)


_max_pool2d.register_autograd(_max_pool2d_grad, setup_context=_max_pool2d_setup)


def _opaque_max_pool2d(module: nn.MaxPool2d, x: Tensor) -> Tensor:
    """``module(x)`` through the opaque custom op (same result as ``nn.MaxPool2d.forward``)."""
    stride = module.stride if module.stride is not None else module.kernel_size
    return _max_pool2d(x, _pair(module.kernel_size), _pair(stride), _pair(module.padding), _pair(module.dilation),
                       module.ceil_mode)[0]

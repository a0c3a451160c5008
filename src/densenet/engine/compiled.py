"""How the engine compiles a model in place: ``torch.compile`` with a fallback, kept outside the model.

The models know nothing of compilation. :func:`compile_in_place` installs compiled calls through
``nn.Module``'s own in-place slot, the one :meth:`torch.nn.Module.compile` uses (``_compiled_call_impl``:
``Module.__call__`` runs it when set, and ``Module.__getstate__`` drops it), so the model keeps its
``state_dict`` keys, stays DDP-wrappable, and ``copy.deepcopy`` or pickling gives a plain eager copy.

- A plain model is compiled whole.
- A memory-efficient DenseNet is not: traced into the model's graph, Inductor's recomputation kept several
  times more alive in backward than eager checkpointing (measured before the records of issue #18; see
  BENCHMARKS.md, "How the fast path was chosen"). Its memory-efficient dense
  layers are called with ``transform=`` one shared compiled :meth:`DenseLayer.transform` (BN-ReLU-Conv;
  one graph per layer width, as parameter shapes are static), and checkpoint eagerly around it.
- On the CPU, ``nn.MaxPool2d`` runs ATen's kernels (see :mod:`densenet.engine.maxpool`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from densenet.engine.maxpool import use_aten_max_pool
from densenet.models.layers import DenseLayer


class CompiledForward:
    """A function run through ``torch.compile``, falling back to eager if compilation fails.

    Compilation happens at the first call, and again for each new input shape or mode (static shapes: a short
    last batch gets a graph of its own, so full batches always run the same kernels). When the compiled
    call raises, the eager function runs the same inputs: if that works, the failure was the compiler's,
    so it warns once and stays eager from then on; if eager raises too, that error is the caller's.

    Args:
        eager: The eager function (a module's bound ``_call_impl``, or ``DenseLayer.transform``).
        mode: ``torch.compile``'s mode, ``None`` for its default.
        max_graphs: How many graphs Dynamo may compile for ``eager`` (its recompile limit, 8 by default):
            one function shared by modules of different shapes needs one per shape.
    """

    def __init__(self, eager: Callable[..., Any], mode: str | None = None, max_graphs: int | None = None) -> None:
        self.eager = eager
        self.failed = False
        self.max_graphs = max_graphs
        try:
            # Static shapes, one graph per input shape: with Dynamo's default (automatic dynamic shapes), the
            # short last batch of an epoch recompiles the graph with a symbolic batch size, and every later full
            # batch runs those kernels, whose reductions split differently: a run resumed in a fresh process
            # (static kernels again) then drifted from the uninterrupted run (all 126 tensors, up to 14%).
            self.compiled: Callable[..., Any] = torch.compile(eager, mode=mode, dynamic=False)
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


class WithTransform:
    """A dense layer's call with ``transform=`` the engine's compiled :meth:`DenseLayer.transform`.

    Args:
        call: The layer's eager call (its bound ``_call_impl``).
        transform: The shared compiled transform.
    """

    def __init__(self, call: Callable[..., torch.Tensor], transform: CompiledForward) -> None:
        self.call = call
        self.transform = transform

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        kwargs.setdefault("transform", self.transform)
        return self.call(*args, **kwargs)


def compile_in_place(model: nn.Module, device: torch.device, mode: str | None = None) -> None:
    """Compile ``model`` as the module docstring describes; calling it again does nothing.

    Args:
        model: The model, on ``device`` and in its memory format.
        device: Where it runs (the max-pool substitution is for the CPU).
        mode: ``torch.compile``'s mode, ``None`` for its default.
    """
    if compiled_calls(model):
        return
    if device.type == "cpu":
        use_aten_max_pool(model)
    efficient = [m for m in model.modules() if isinstance(m, DenseLayer) and m.memory_efficient]
    if efficient:
        # Per width: a training and an evaluation graph, each static, then one with a dynamic batch size
        # once a last, smaller batch arrives.
        transform = CompiledForward(DenseLayer.transform, mode, max_graphs=4 * len(efficient) + 8)
        for layer in efficient:
            layer._compiled_call_impl = WithTransform(layer._call_impl, transform)
    else:
        model._compiled_call_impl = CompiledForward(model._call_impl, mode)


def compiled_calls(model: nn.Module) -> list[CompiledForward]:
    """The compiled functions :func:`compile_in_place` installed in ``model`` (none on a copy)."""
    found = []
    for m in model.modules():
        call = m.__dict__.get("_compiled_call_impl")
        if isinstance(call, WithTransform):
            call = call.transform
        if isinstance(call, CompiledForward) and call not in found:
            found.append(call)
    return found


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` (or its dense layers) runs compiled code, i.e. it was compiled and that has not failed."""
    return any(not c.failed for c in compiled_calls(model))

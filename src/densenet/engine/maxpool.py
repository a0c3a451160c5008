"""The one place where the engine swaps a layer's implementation: ``nn.MaxPool2d`` under CPU Inductor.

Inductor's CPU code for max-pooling (forward with offsets, backward as a scatter-add) took 35 ms and
90-125 ms per DenseNet stem at batch 64 on this project's CPU, against 4-10 ms for ATen's kernels
(BENCHMARKS.md, "How the fast path was chosen"). :func:`use_aten_max_pool`, which
:func:`~densenet.engine.compiled.compile_in_place` calls when compiling for the CPU, therefore routes
``nn.MaxPool2d`` through two opaque custom ops: Inductor calls ATen's kernels for them and fuses
everything around them as usual. Results are identical to ``nn.MaxPool2d``.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn


def use_aten_max_pool(model: nn.Module) -> None:
    """Make every plain ``nn.MaxPool2d`` in ``model`` run :func:`opaque_max_pool2d` (same outputs and gradients).

    The substitution is an instance attribute (``forward``), which copies and pickles keep: harmless, as
    the custom op also runs eagerly.
    """
    for module in model.modules():
        if type(module) is nn.MaxPool2d and not module.return_indices:
            module.forward = functools.partial(opaque_max_pool2d, module)  # type: ignore[method-assign]


def opaque_max_pool2d(module: nn.MaxPool2d, x: Tensor) -> Tensor:
    """``module(x)`` through the opaque custom op (same result as ``nn.MaxPool2d.forward``)."""
    stride = module.stride if module.stride is not None else module.kernel_size
    return max_pool2d(x, _pair(module.kernel_size), _pair(stride), _pair(module.padding), _pair(module.dilation),
                      module.ceil_mode)[0]


def _pair(v: int | tuple[int, ...]) -> list[int]:
    return [v, v] if isinstance(v, int) else list(v)


@torch.library.custom_op("densenet::max_pool2d", mutates_args=())
def max_pool2d(x: Tensor, kernel_size: list[int], stride: list[int], padding: list[int], dilation: list[int],
               ceil_mode: bool) -> tuple[Tensor, Tensor]:
    """ATen's ``max_pool2d_with_indices``, opaque to Inductor."""
    return torch.ops.aten.max_pool2d_with_indices(x, kernel_size, stride, padding, dilation, ceil_mode)


@max_pool2d.register_fake
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


max_pool2d.register_autograd(_max_pool2d_grad, setup_context=_max_pool2d_setup)

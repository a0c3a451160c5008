"""Folding inference BatchNorm into the convolution that feeds it.

In eval mode a BatchNorm is a per-channel affine map, ``y = a * x + b`` with
``a = gamma / sqrt(running_var + eps)`` and ``b = beta - a * running_mean``. When its input is the
output of a convolution that nothing else reads, the two collapse into one convolution with
weights ``a * W`` and bias ``a * bias + b``, one operator less at inference.

DenseNet is pre-activation (BN-ReLU-Conv): most BatchNorms read a concatenation, not a
convolution, and cannot fold forward. What folds is the ImageNet stem (``conv0 -> norm0``)
and each bottleneck's ``conv1 -> norm2``. ResNets (Conv-BN-ReLU) fold completely.

Which pairs fold is decided from the data flow, not from module names: the model is traced
with :mod:`torch.fx` and a pair qualifies only when the BatchNorm's sole input is the
convolution's output and the convolution's output has no other reader.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from densenet.errors import DenseNetError


@dataclass(frozen=True)
class FoldPair:
    """One convolution and the BatchNorm it feeds, by qualified module name."""

    conv: str
    norm: str


def find_foldable_pairs(model: nn.Module) -> list[FoldPair]:
    """List the (Conv2d, BatchNorm2d) pairs of ``model`` that can be folded, in graph order.

    Args:
        model: Any module that :func:`torch.fx.symbolic_trace` can trace.

    Returns:
        Pairs where the BatchNorm reads only the convolution's output, nothing else reads that
        output, each module is called once, and the BatchNorm has running statistics.

    Raises:
        DenseNetError: if the model cannot be traced (data-dependent control flow).
    """
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # fx raises many types (TraceError, TypeError...) for untraceable code
        raise DenseNetError(f"cannot fold BatchNorm in {type(model).__name__}: torch.fx could not trace it "
                            f"({type(exc).__name__}: {exc}); export without --fold-bn") from None
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        norm = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(norm, nn.BatchNorm2d) or norm.running_mean is None or norm.running_var is None:
            continue
        if len(node.args) != 1 or node.kwargs or not isinstance(node.args[0], fx.Node):
            continue
        source = node.args[0]
        conv = modules.get(source.target) if source.op == "call_module" else None
        if not isinstance(conv, nn.Conv2d) or len(source.users) != 1:
            continue
        if calls[source.target] == 1 and calls[node.target] == 1 and conv.out_channels == norm.num_features:
            pairs.append(FoldPair(source.target, node.target))
    return pairs


def fuse_conv_bn(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """Return a new convolution computing ``norm(conv(x))`` with ``norm``'s running statistics.

    Args:
        conv: The convolution (any stride, padding, groups, dilation; with or without bias).
        norm: A BatchNorm2d over ``conv.out_channels`` with running statistics.

    Returns:
        A ``Conv2d`` with a bias, on ``conv``'s device and dtype, without gradients.
    """
    with torch.no_grad():
        weight = conv.weight.double()
        gamma = norm.weight.double() if norm.weight is not None else torch.ones_like(norm.running_var.double())
        beta = norm.bias.double() if norm.bias is not None else torch.zeros_like(gamma)
        scale = gamma / torch.sqrt(norm.running_var.double() + norm.eps)  # (C_out,)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(gamma)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                          device=conv.weight.device, dtype=conv.weight.dtype)
        fused.weight.copy_(weight * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_((bias - norm.running_mean.double()) * scale + beta)
    fused.requires_grad_(False)
    return fused


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every foldable BatchNorm merged into its convolution.

    The copy keeps the model's class and methods; each folded convolution is replaced by a
    fused one with a bias and its BatchNorm by ``nn.Identity``. The input model is not changed.
    The copy is for inference only: training it would no longer normalize by batch statistics.

    Args:
        model: The model to fold (its running statistics are used as they are).

    Returns:
        The folded copy, in eval mode, with ``folded_pairs`` (a list of :class:`FoldPair`) set on it.
    """
    folded = copy.deepcopy(model).eval()
    pairs = find_foldable_pairs(folded)
    for pair in pairs:
        conv, norm = folded.get_submodule(pair.conv), folded.get_submodule(pair.norm)
        _replace(folded, pair.conv, fuse_conv_bn(conv, norm))
        _replace(folded, pair.norm, nn.Identity())
    folded.folded_pairs = pairs
    return folded


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


__all__ = ["FoldPair", "find_foldable_pairs", "fold_batchnorm", "fuse_conv_bn"]

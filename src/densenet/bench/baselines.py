"""The naive baseline of ``densenet bench``: the textbook's dense block, with a model's weights.

d2l's DenseNet (Dive into Deep Learning, ch. 8.7) writes a dense block as a list of ``conv_block``
(BatchNorm, ReLU, convolution) and re-concatenates everything after each one::

    for blk in self.net:
        Y = blk(X)
        X = torch.cat((X, Y), dim=1)

:func:`naive_model` copies a DenseNet and replaces each dense block with :class:`TextbookDenseBlock`,
built from the same BatchNorm and convolution modules, run in fp32, eagerly and NCHW. It computes
the same function as the model (bottleneck and dropout included) and keeps its ``state_dict`` keys.

:func:`peer_model` is what a practitioner gets from that code with PyTorch's standard switches:
channels-last, bf16 autocast (the training step's, from the same decisions) and ``torch.compile``.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from densenet.engine.performance import ResolvedPerf
from densenet.models.layers import DenseBlock, DenseLayer


def conv_block(layer: DenseLayer) -> nn.Sequential:
    """The textbook's ``conv_block`` (BN, ReLU, Conv) with ``layer``'s modules; a bottleneck layer has two."""
    parts: OrderedDict[str, nn.Module] = OrderedDict(norm1=layer.norm1, relu1=nn.ReLU(), conv1=layer.conv1)
    if layer.bottleneck:
        parts.update(norm2=layer.norm2, relu2=nn.ReLU(), conv2=layer.conv2)
    if layer.drop_rate > 0:
        parts["dropout"] = nn.Dropout(layer.drop_rate)
    return nn.Sequential(parts)


class TextbookDenseBlock(nn.ModuleDict):
    """d2l's ``DenseBlock``: after each conv block, ``X = torch.cat((X, Y), dim=1)``.

    Args:
        block: The dense block whose layers (and weights) it takes over.
    """

    def __init__(self, block: DenseBlock) -> None:
        super().__init__(OrderedDict((name, conv_block(layer)) for name, layer in block.items()))

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803 (the textbook's names)
        for blk in self.values():
            Y = blk(X)  # noqa: N806
            X = torch.cat((X, Y), dim=1)  # (B, C0 + i*k, H, W)  # noqa: N806
        return X


def naive_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (same weights) whose dense blocks are :class:`TextbookDenseBlock`, fp32, NCHW.

    Args:
        model: A DenseNet (any module holding :class:`~densenet.models.layers.DenseBlock` children).

    Returns:
        The copy; ``model`` is left as it is.
    """
    naive = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format)
    for parent in list(naive.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, DenseBlock):
                setattr(parent, name, TextbookDenseBlock(child))
    return naive


def peer_model(model: nn.Module, perf: ResolvedPerf) -> nn.Module:
    """:func:`naive_model` with the three lines a practitioner types, as ``perf`` decides them.

    ``model.to(memory_format=torch.channels_last)``, ``torch.compile(model)`` and (in the step, from
    ``perf``) ``torch.autocast(device, dtype=torch.bfloat16)``; none of the engine's own substitutions
    (such as its max-pool op).

    Args:
        model: A DenseNet; it is left as it is.
        perf: The fast path's precision, memory format and compilation (from
            :func:`~densenet.engine.performance.resolve`).

    Returns:
        The textbook copy, in ``perf``'s memory format, compiled when ``perf.compile`` (``torch.compile``'s
        module wrapper, whose ``state_dict`` keys have an ``_orig_mod.`` prefix).
    """
    peer = naive_model(model).to(perf.device)
    if perf.channels_last:
        peer = peer.to(memory_format=torch.channels_last)
    if perf.compile:
        peer = torch.compile(peer, mode=perf.compile_mode)
    return peer

"""The one implementation of DenseNet's parts: dense layer, dense block, transition.

Every DenseNet in the zoo (the textbook's, torchvision's, the paper's CIFAR nets) is built
from these three modules; variants differ only in their arguments. Module names follow
torchvision's checkpoint format (``denselayer1.norm1``, ``transition1.conv``...).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class DenseLayer(nn.Module):
    """One layer of a dense block: takes all earlier feature maps, returns ``growth_rate`` new ones.

    Without a bottleneck (the textbook's ``conv_block``): BN-ReLU-Conv3x3.
    With one (DenseNet-B): BN-ReLU-Conv1x1 to ``bn_size * growth_rate`` channels, then BN-ReLU-Conv3x3.

    Args:
        in_channels: Channels of all earlier feature maps together.
        growth_rate: Channels this layer adds (k).
        bn_size: Bottleneck width factor; ``None`` for no 1x1 bottleneck.
        drop_rate: Dropout probability after the last convolution.
        bias: Whether convolutions have a bias (the textbook's do, torchvision's don't).
        memory_efficient: In training, store only the layer's inputs and recompute the layer in backward.
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        bn_size: int | None = None,
        drop_rate: float = 0.0,
        bias: bool = False,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = growth_rate
        self.bottleneck = bn_size is not None
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        if self.bottleneck:
            inner = bn_size * growth_rate
            self.conv1 = nn.Conv2d(in_channels, inner, kernel_size=1, bias=bias)
            self.norm2 = nn.BatchNorm2d(inner)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(inner, growth_rate, kernel_size=3, padding=1, bias=bias)
        else:
            self.conv1 = nn.Conv2d(in_channels, growth_rate, kernel_size=3, padding=1, bias=bias)
        # A compiled DenseLayer.transform for the memory-efficient recomputation, set by
        # densenet.engine.prepare_model; copies and pickles drop it (see __getstate__).
        self.compiled_transform: Callable[[DenseLayer, torch.Tensor], torch.Tensor] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["compiled_transform"] = None  # compiled code does not copy or pickle; copies run eagerly
        return state

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """BN-ReLU-Conv (-BN-ReLU-Conv) of the concatenated input ``x`` (B, C0 + i*k, H, W) -> (B, k, H, W)."""
        x = self.conv1(self.relu1(self.norm1(x)))  # (B, bn_size*k, H, W), or (B, k, H, W) without bottleneck
        if self.bottleneck:
            x = self.conv2(self.relu2(self.norm2(x)))  # (B, k, H, W)
        return x

    def _body(self, *features: torch.Tensor) -> torch.Tensor:
        """Concat, then :meth:`transform`: everything but dropout, the part memory_efficient recomputes."""
        x = torch.cat(features, 1) if len(features) > 1 else features[0]  # (B, C0 + i*k, H, W)
        if self.compiled_transform is not None and not torch.compiler.is_compiling():
            return self.compiled_transform(self, x)
        return self.transform(x)

    def forward(self, features: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        if isinstance(features, torch.Tensor):
            features = [features]
        recompute = (self.memory_efficient and self.training and torch.is_grad_enabled()
                     and any(f.requires_grad for f in features))
        if not recompute:
            out = self._body(*features)
        elif torch.compiler.is_compiling():
            # Compiled by the caller: the partitioner recomputes the checkpointed region in backward and never
            # replays BatchNorm's running-statistics update, so plain checkpointing is exact there (and the
            # eager helper's Python-side bookkeeping would break the graph at every layer).
            out = checkpoint(self._body, *features, use_reentrant=False)
        else:  # eager; prepare_model's compiled transform, if set, runs inside the checkpoint (see _body)
            out = _recompute_in_backward(self, features)
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out  # (B, k, H, W)


def _recompute_in_backward(layer: DenseLayer, features: list[torch.Tensor]) -> torch.Tensor:
    """Run ``layer._body`` under activation checkpointing: autograd keeps only the layer's inputs.

    The inputs are the block's earlier feature maps, which the block keeps anyway, so a layer
    costs no activation memory beyond its own k output channels: memory grows linearly with
    depth instead of quadratically. Backward recomputes the concatenation, BatchNorms, ReLUs
    and convolutions.

    Naive checkpointing would update BatchNorm's running statistics twice per step. The
    recomputation normalizes with the same batch statistics (so the output is identical) and
    then puts the running statistics back as the original forward left them: one update per step.
    """
    calls = 0

    def body(*feats: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            return layer._body(*feats)
        norms = [m for m in layer.modules() if isinstance(m, nn.BatchNorm2d) and m.track_running_stats]
        saved = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)] for m in norms]
        try:
            return layer._body(*feats)
        finally:
            for m, (mean, var, count) in zip(norms, saved):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)

    # The body draws no random numbers (dropout runs outside it), so there is no RNG state to replay.
    # No early stop: it ends the recomputation by raising through the body, which a compiled transform's
    # fallback to eager would take for a compiler failure.
    return checkpoint(body, *features, use_reentrant=False, preserve_rng_state=False, early_stop=False)


class DenseBlock(nn.ModuleDict):
    """``num_convs`` dense layers; each sees the concatenation of the input and all earlier outputs.

    ``DenseBlock(2, 3, 10)`` maps (4, 3, 8, 8) to (4, 23, 8, 8).

    Args:
        num_convs: Number of dense layers.
        in_channels: Channels of the block's input.
        growth_rate: Channels each layer adds (k).
        bn_size: Bottleneck width factor, ``None`` for plain BN-ReLU-Conv3x3 layers.
        drop_rate: Dropout after each layer.
        bias: Convolution biases. Defaults to ``True`` like the textbook's ``conv_block``.
        memory_efficient: See :class:`DenseLayer`.
    """

    def __init__(
        self,
        num_convs: int,
        in_channels: int,
        growth_rate: int,
        bn_size: int | None = None,
        drop_rate: float = 0.0,
        bias: bool = True,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"a dense block needs at least one layer, got num_convs={num_convs}")
        if growth_rate < 1:
            raise ValueError(f"growth_rate must be a positive integer, got {growth_rate}")
        for i in range(num_convs):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate, bias, memory_efficient)
            self.add_module(f"denselayer{i + 1}", layer)
        self.in_channels = in_channels
        self.growth_rate = growth_rate
        self.out_channels = in_channels + num_convs * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)  # (B, C0 + num_convs*k, H, W)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1-AvgPool2: changes the channel count and halves the resolution.

    ``Transition(23, 10)`` maps (4, 23, 8, 8) to (4, 10, 4, 4).

    Args:
        in_channels: Input channels.
        out_channels: Output channels (DenseNet-C uses ``floor(theta * in_channels)``).
        bias: Convolution bias. Defaults to ``True`` like the textbook's ``transition_block``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"Transition needs positive channel counts, got {in_channels} -> {out_channels}")
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(in_channels),
                relu=nn.ReLU(inplace=True),
                conv=nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=bias),
                pool=nn.AvgPool2d(kernel_size=2, stride=2),
            )
        )
        self.in_channels = in_channels
        self.out_channels = out_channels

"""The one implementation of DenseNet's parts: dense layer, dense block, transition.

Every DenseNet in the zoo (the textbook's, torchvision's, the paper's CIFAR nets) is built
from these three modules; variants differ only in their arguments. Module names follow
torchvision's checkpoint format (``denselayer1.norm1``, ``transition1.conv``...).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from densenet.models.recompute import checkpoint_once, wants_checkpoint


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
        memory_efficient: In training, store only the layer's inputs and recompute the layer in backward
            (:func:`~densenet.models.recompute.checkpoint_once`: BatchNorm statistics are updated once).
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

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """BN-ReLU-Conv (-BN-ReLU-Conv) of the concatenated input ``x`` (B, C0 + i*k, H, W) -> (B, k, H, W)."""
        x = self.conv1(self.relu1(self.norm1(x)))  # (B, bn_size*k, H, W), or (B, k, H, W) without bottleneck
        if self.bottleneck:
            x = self.conv2(self.relu2(self.norm2(x)))  # (B, k, H, W)
        return x

    def forward(self, features: list[torch.Tensor] | torch.Tensor,
                transform: Callable[[DenseLayer, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """The layer's ``k`` new channels from all earlier feature maps.

        Args:
            features: The block's input and the earlier layers' outputs (or one tensor).
            transform: Computes :meth:`transform` as ``transform(layer, x)``; default ``DenseLayer.transform``.
                Another implementation of the same function (e.g. a compiled one) runs inside the
                memory-efficient recomputation too.
        """
        if isinstance(features, torch.Tensor):
            features = [features]
        transform = transform or DenseLayer.transform

        def body(*feats: torch.Tensor) -> torch.Tensor:  # everything but dropout: what memory_efficient recomputes
            x = torch.cat(feats, 1) if len(feats) > 1 else feats[0]  # (B, C0 + i*k, H, W)
            return transform(self, x)

        if self.memory_efficient and wants_checkpoint(self, features):
            # The inputs are the block's earlier feature maps, which the block keeps anyway, so a layer costs
            # no activation memory beyond its own k output channels: memory grows linearly with depth instead
            # of quadratically. Dropout runs outside the recomputed region, which so draws no random numbers.
            out = checkpoint_once(body, self, *features)
        else:
            out = body(*features)
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out  # (B, k, H, W)


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

    def __init__(self, num_convs: int, in_channels: int, growth_rate: int, bn_size: int | None = None,
                 drop_rate: float = 0.0, bias: bool = True, memory_efficient: bool = False) -> None:
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

"""The DenseNet network: a stem, dense blocks joined by transitions, and a classifier head.

One class covers every family; builders in :mod:`densenet.models.zoo` only carry numbers.
The module names are torchvision's checkpoint format: ``features.conv0``,
``features.denseblock1.denselayer1.norm1``, ``features.transition1.conv``, ``features.norm5``,
``classifier``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from densenet.models.common import INITS, ImageClassifier, init_weights, is_positive_int, is_real
from densenet.models.layers import DenseBlock, DenseLayer, Transition

STEMS = ("imagenet", "cifar")


class DenseNet(ImageClassifier):
    """A DenseNet classifier.

    Args:
        growth_rate: Channels each dense layer adds (k): one int, or one int per block
            (a growth schedule, e.g. ``(8, 16, 32, 64)`` doubles after each downsampling).
        block_config: Number of layers in each dense block.
        num_init_features: Channels the stem produces.
        bn_size: Bottleneck width factor of DenseNet-B (1x1 conv to ``bn_size * k``); ``None`` for none.
        compression: Transition compression theta in (0, 1]; a transition outputs ``floor(theta * C)``.
        drop_rate: Dropout after each dense layer.
        num_classes: Classifier outputs.
        in_channels: Input image channels.
        stem: ``"imagenet"`` (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) or ``"cifar"`` (one 3x3 conv).
        conv_bias: Whether convolutions have biases (the textbook's network does).
        memory_efficient: In training, keep only each dense layer's inputs and recompute the layer in backward
            (activation memory linear instead of quadratic in depth; same outputs, gradients and BN statistics).
        init: ``"torchvision"`` (Kaiming-normal convs, zero biases), ``"pytorch"`` (module defaults) or
            ``"xavier"`` (the textbook's); see :data:`~densenet.models.common.INITS`.
    """

    def __init__(
        self,
        growth_rate: int | Sequence[int] = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int | None = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        in_channels: int = 3,
        stem: str = "imagenet",
        conv_bias: bool = False,
        memory_efficient: bool = False,
        init: str = "torchvision",
    ) -> None:
        super().__init__()
        growth = _validate(growth_rate, block_config, num_init_features, bn_size, compression, drop_rate,
                           num_classes, in_channels, stem, init)
        self.num_classes = num_classes
        self.features = nn.Sequential(_stem(stem, in_channels, num_init_features, conv_bias))
        channels = num_init_features
        for i, (num_layers, k) in enumerate(zip(block_config, growth)):
            block = DenseBlock(num_layers, channels, k, bn_size, drop_rate, conv_bias, memory_efficient)
            self.features.add_module(f"denseblock{i + 1}", block)
            channels = block.out_channels
            if i != len(block_config) - 1:
                out = int(math.floor(compression * channels))
                self.features.add_module(f"transition{i + 1}", Transition(channels, out, bias=conv_bias))
                channels = out
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.num_features = channels
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self, init, _torchvision_init)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, dense blocks and transitions, and the final BatchNorm: (B, C, H, W) -> (B, F, h, w)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """ReLU, global average pool and classifier; ``pre_logits`` stops before the classifier."""
        x = torch.flatten(F.adaptive_avg_pool2d(F.relu(x), 1), 1)  # (B, F)
        return x if pre_logits else self.classifier(x)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each dense layer in backward instead of storing its activations (``memory_efficient``).

        Training then keeps activation memory linear in depth; outputs, gradients and BatchNorm statistics
        are unchanged. timm's name for the same switch.
        """
        for m in self.modules():
            if isinstance(m, DenseLayer):
                m.memory_efficient = enable

    def stages(self) -> list[tuple[str, nn.Module]]:
        """Top-level stages in forward order, as the textbook's shape-printing loop shows them."""
        names = [n for n, _ in self.features.named_children()]
        stem_end = names.index("denseblock1")
        stem = nn.Sequential(OrderedDict((n, self.features.get_submodule(n)) for n in names[:stem_end]))
        out: list[tuple[str, nn.Module]] = [("stem", stem)]
        out += [(n, self.features.get_submodule(n)) for n in names[stem_end:]]
        out += [("relu", nn.ReLU()), ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                ("classifier", self.classifier)]
        return out


def _validate(growth_rate, block_config, num_init_features, bn_size, compression, drop_rate,
              num_classes, in_channels, stem, init) -> tuple[int, ...]:
    """Check every constructor argument; return the growth rate per block.

    Raises:
        ValueError: naming the argument, the value given and what is expected.
    """
    if isinstance(block_config, str) or not isinstance(block_config, Sequence):
        raise ValueError(f"block_config must be a sequence of layer counts such as (6, 12, 24, 16), "
                         f"got {block_config!r}")
    block_config = tuple(block_config)
    if not block_config:
        raise ValueError("block_config must list at least one dense block, e.g. (6, 12, 24, 16)")
    if not all(is_positive_int(n) for n in block_config):
        raise ValueError(f"every dense block needs a positive integer number of layers, "
                         f"got block_config={block_config}")
    if isinstance(growth_rate, int):
        growth = (growth_rate,) * len(block_config)
    elif isinstance(growth_rate, Sequence) and not isinstance(growth_rate, str):
        growth = tuple(growth_rate)
        if len(growth) != len(block_config):
            raise ValueError(f"growth schedule {growth} has {len(growth)} entries but block_config {block_config} "
                             f"has {len(block_config)} blocks; give one growth rate per block, or a single int")
    else:
        raise ValueError(f"growth_rate must be an int or one int per block, got {growth_rate!r}")
    if not all(is_positive_int(k) for k in growth):
        raise ValueError(f"growth_rate must be a positive integer (channels each layer adds), got {growth_rate!r}")
    checks = [
        (is_positive_int(num_init_features),
         f"num_init_features (stem channels) must be a positive integer, got {num_init_features!r}"),
        (bn_size is None or is_positive_int(bn_size),
         f"bn_size must be a positive integer (bottleneck width = bn_size * k) or None for no bottleneck, "
         f"got {bn_size!r}"),
        (is_real(compression) and 0.0 < compression <= 1.0,
         f"compression (theta) must lie in (0, 1]: 1 keeps all channels, 0.5 halves them; got {compression!r}"),
        (is_real(drop_rate) and 0.0 <= drop_rate < 1.0, f"drop_rate must lie in [0, 1), got {drop_rate!r}"),
        (is_positive_int(num_classes), f"num_classes must be a positive integer, got {num_classes!r}"),
        (is_positive_int(in_channels), f"in_channels must be a positive integer (1 for grayscale, 3 for RGB), "
                               f"got {in_channels!r}"),
        (stem in STEMS, f"stem must be one of {STEMS}, got {stem!r}"),
        (init in INITS, f"init must be one of {INITS}, got {init!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    return growth


def _stem(kind: str, in_channels: int, out_channels: int, bias: bool) -> OrderedDict[str, nn.Module]:
    if kind == "cifar":
        return OrderedDict(conv0=nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias))
    return OrderedDict(
        conv0=nn.Conv2d(in_channels, out_channels, kernel_size=7, stride=2, padding=3, bias=bias),
        norm0=nn.BatchNorm2d(out_channels),
        relu0=nn.ReLU(inplace=True),
        pool0=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )


def _torchvision_init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)

"""ResNet baselines: the textbook's ResNet-18, torchvision's ResNet-18/34/50 and the CIFAR ResNets.

One :class:`ResNet` class covers all of them; the registered builders only carry numbers.
Module names follow torchvision's checkpoint format (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ``fc``), so torchvision ResNet weights load unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from densenet.models.common import INITS, ImageClassifier, init_weights, is_positive_int
from densenet.models.recompute import checkpoint_once, wants_checkpoint
from densenet.models.registry import register_config

BLOCKS = ("basic", "bottleneck")
STEMS = ("imagenet", "cifar")
# How a residual block matches its shortcut to a changed shape (stride 2 or more channels):
#   "projection": 1x1 conv (no bias) + BatchNorm (torchvision; He et al.'s option B)
#   "conv":       1x1 conv with bias, no BatchNorm (the textbook's Residual(use_1x1conv=True))
#   "pad":        subsample and zero-pad the new channels, no parameters (He et al.'s option A, CIFAR)
SHORTCUTS = ("projection", "conv", "pad")


class PadShortcut(nn.Module):
    """Option A identity shortcut: take every ``stride``-th pixel, append zero channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (B, C_out, H / s, W / s)


def _shortcut(kind: str, in_channels: int, out_channels: int, stride: int, bias: bool) -> nn.Module | None:
    if stride == 1 and in_channels == out_channels:
        return None
    if kind == "pad":
        return PadShortcut(in_channels, out_channels, stride)
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=bias or kind == "conv")
    return nn.Sequential(conv) if kind == "conv" else nn.Sequential(conv, nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN pairs and a shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    Args:
        in_channels: Input channels.
        channels: Output channels.
        stride: Stride of the first convolution (2 halves the resolution).
        shortcut: One of :data:`SHORTCUTS`, used when the shape changes.
        bias: Whether the convolutions have biases (the textbook's do).
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, shortcut: str = "projection",
                 bias: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=stride, padding=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = _shortcut(shortcut, in_channels, channels, stride, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (with the stride, as in torchvision's "ResNet v1.5"), 1x1 expand by 4, plus a shortcut.

    Args:
        in_channels: Input channels.
        channels: Width of the 3x3 convolution; the block outputs ``4 * channels``.
        stride: Stride of the 3x3 convolution.
        shortcut: One of :data:`SHORTCUTS`, used when the shape changes.
        bias: Whether the convolutions have biases.
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, shortcut: str = "projection",
                 bias: bool = False) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=stride, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, kernel_size=1, bias=bias)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(shortcut, in_channels, out_channels, stride, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(ImageClassifier):
    """A ResNet classifier: stem, stages of residual blocks, global average pool, linear classifier.

    Args:
        block: ``"basic"`` (two 3x3 convs) or ``"bottleneck"`` (1x1-3x3-1x1, 4x expansion).
        layers: Number of blocks in each stage; every stage after the first halves the resolution.
        widths: Channels of each stage (the 3x3 width for bottleneck blocks); the stem outputs ``widths[0]``.
        stem: ``"imagenet"`` (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) or ``"cifar"`` (3x3 conv, BN, ReLU).
        shortcut: How blocks that change shape match the shortcut, one of :data:`SHORTCUTS`.
        bias: Whether convolutions have biases (the textbook's network does).
        num_classes: Classifier outputs.
        in_channels: Input image channels.
        init: ``"torchvision"`` (Kaiming-normal fan-out convs, unit BN), ``"pytorch"`` (module defaults) or
            ``"xavier"`` (the textbook's); see :data:`~densenet.models.common.INITS`.
    """

    head_name = "fc"

    def __init__(
        self,
        block: str = "basic",
        layers: Sequence[int] = (2, 2, 2, 2),
        widths: Sequence[int] = (64, 128, 256, 512),
        stem: str = "imagenet",
        shortcut: str = "projection",
        bias: bool = False,
        num_classes: int = 1000,
        in_channels: int = 3,
        init: str = "torchvision",
    ) -> None:
        super().__init__()
        _validate(block, layers, widths, stem, shortcut, num_classes, in_channels, init)
        block_cls = BasicBlock if block == "basic" else Bottleneck
        self.num_classes = num_classes
        self.grad_checkpointing = False  # see set_grad_checkpointing
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=7, stride=2, padding=3, bias=bias)
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        channels = widths[0]
        self.stage_names: list[str] = []
        for i, (num_blocks, width) in enumerate(zip(layers, widths)):
            blocks = []
            for j in range(num_blocks):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block_cls(channels, width, stride, shortcut, bias))
                channels = width * block_cls.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.stage_names.append(f"layer{i + 1}")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = channels
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self, init, _torchvision_init)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and residual stages: (B, C, H, W) -> (B, F, h, w)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            stage = self.get_submodule(name)
            if self.grad_checkpointing and wants_checkpoint(stage, [x]):
                for block in stage:  # keep each block's input only, as timm's checkpoint_seq does
                    x = checkpoint_once(block, block, x)
            else:
                x = stage(x)
        return x

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """In training, keep only each residual block's input and recompute the block in backward.

        Outputs, gradients and BatchNorm statistics are unchanged; activation memory drops to about one
        tensor per block. timm's name for the same switch.
        """
        self.grad_checkpointing = enable

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool and classifier; ``pre_logits`` stops before the classifier."""
        x = torch.flatten(self.avgpool(x), 1)  # (B, F)
        return x if pre_logits else self.fc(x)

    def stages(self) -> list[tuple[str, nn.Module]]:
        """Top-level stages in forward order, as the textbook's shape-printing loop shows them."""
        stem = nn.Sequential(OrderedDict(conv1=self.conv1, bn1=self.bn1, relu=self.relu, maxpool=self.maxpool))
        out: list[tuple[str, nn.Module]] = [("stem", stem)]
        out += [(name, self.get_submodule(name)) for name in self.stage_names]
        return out + [("pool", self.avgpool), ("flatten", nn.Flatten()), ("fc", self.fc)]


def _validate(block, layers, widths, stem, shortcut, num_classes, in_channels, init) -> None:
    """Check every constructor argument, with a message saying what is expected."""
    if not isinstance(layers, Sequence) or not layers or not all(is_positive_int(n) for n in layers):
        raise ValueError(f"layers must list a positive number of blocks per stage, e.g. (2, 2, 2, 2); got {layers!r}")
    if not isinstance(widths, Sequence) or not all(is_positive_int(w) for w in widths):
        raise ValueError(f"widths must list positive channel counts, e.g. (64, 128, 256, 512); got {widths!r}")
    if len(widths) != len(layers):
        raise ValueError(f"widths {tuple(widths)} has {len(widths)} entries for {len(layers)} stages; give one each")
    checks = [
        (block in BLOCKS, f"block must be one of {BLOCKS}, got {block!r}"),
        (stem in STEMS, f"stem must be one of {STEMS}, got {stem!r}"),
        (shortcut in SHORTCUTS, f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}"),
        (is_positive_int(num_classes), f"num_classes must be a positive integer, got {num_classes!r}"),
        (is_positive_int(in_channels), f"in_channels must be a positive integer, got {in_channels!r}"),
        (init in INITS, f"init must be one of {INITS}, got {init!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def _torchvision_init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _resnet(name: str, config: dict, *, params: int, input_size: tuple[int, int, int], num_classes: int,
            source: str) -> None:
    register_config(name, ResNet, config, input_size=input_size, num_classes=num_classes, params=params,
                    source=source, family="resnet")


_TORCHVISION = "torchvision / He et al. 2016, Deep Residual Learning (Table 1)"
_CIFAR = "He et al. 2016, Sec. 4.2 (CIFAR-10), option A zero-padding shortcuts"
_D2L = "Dive into Deep Learning, ch. 7.6"

_resnet("d2l_resnet18", dict(block="basic", layers=(2, 2, 2, 2), shortcut="conv", bias=True, init="pytorch"),
        params=11_178_378, input_size=(1, 96, 96), num_classes=10, source=_D2L)
_resnet("resnet18", dict(block="basic", layers=(2, 2, 2, 2)), params=11_689_512, input_size=(3, 224, 224),
        num_classes=1000, source=_TORCHVISION)
_resnet("resnet34", dict(block="basic", layers=(3, 4, 6, 3)), params=21_797_672, input_size=(3, 224, 224),
        num_classes=1000, source=_TORCHVISION)
_resnet("resnet50", dict(block="bottleneck", layers=(3, 4, 6, 3)), params=25_557_032, input_size=(3, 224, 224),
        num_classes=1000, source=_TORCHVISION)


def _cifar_resnet(depth: int, params: int) -> None:
    """CIFAR ResNet-(6n+2): a 3x3 stem and three stages of n basic blocks with 16, 32, 64 channels."""
    n = (depth - 2) // 6
    config = dict(block="basic", layers=(n, n, n), widths=(16, 32, 64), stem="cifar", shortcut="pad")
    _resnet(f"resnet{depth}", config, params=params, input_size=(3, 32, 32), num_classes=10, source=_CIFAR)


_cifar_resnet(20, params=269_722)
_cifar_resnet(56, params=853_018)
_cifar_resnet(110, params=1_727_962)

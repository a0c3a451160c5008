"""The ResNet baselines: the textbook's ResNet-18, torchvision's ResNets, the CIFAR ResNets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from densenet.models import ResNet, create_model, model_info
from densenet.models.resnet import BasicBlock, Bottleneck, PadShortcut
from densenet.models.shapes import stage_shapes
from tests.models.zoo_helpers import meta_model


def test_d2l_resnet18_matches_the_textbook() -> None:
    model = create_model("d2l_resnet18").eval()
    assert sum(p.numel() for p in model.parameters()) == 11_178_378  # d2l's figure at 1 channel, 10 classes
    assert model.conv1.bias is not None and model.layer1[0].downsample is None
    shortcut = model.layer2[0].downsample  # the textbook's Residual(use_1x1conv=True): a biased 1x1 conv, no BN
    assert [type(m) for m in shortcut] == [nn.Conv2d] and shortcut[0].bias is not None
    shapes = [tuple(row["output_shape"]) for row in stage_shapes(model, (1, 96, 96))]
    assert shapes == [(1, 64, 24, 24), (1, 64, 24, 24), (1, 128, 12, 12), (1, 256, 6, 6), (1, 512, 3, 3),
                      (1, 512, 1, 1), (1, 512), (1, 10)]


@pytest.mark.parametrize(("name", "params"), [("resnet18", 11_689_512), ("resnet34", 21_797_672),
                                              ("resnet50", 25_557_032)])
def test_torchvision_resnets(name: str, params: int) -> None:
    model = meta_model(name)
    assert sum(p.numel() for p in model.parameters()) == params
    assert not any(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_resnet50_strides_in_the_3x3_conv() -> None:
    block = meta_model("resnet50").layer2[0]
    assert isinstance(block, Bottleneck)
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2) and block.conv3.out_channels == 512


@pytest.mark.parametrize(("name", "millions"), [("resnet20", 0.27), ("resnet56", 0.85), ("resnet110", 1.7)])
def test_cifar_resnets_match_he_et_al(name: str, millions: float) -> None:
    model = meta_model(name)
    depth = int(name.removeprefix("resnet"))
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(blocks) == (depth - 2) // 2 and len(convs) == depth - 1  # 6n+2 layers: 6n+1 convs and the fc
    params = sum(p.numel() for p in model.parameters())
    assert params == model_info(name).params
    assert round(params / 1e6, 2 if millions < 1 else 1) == millions
    assert all(isinstance(b.downsample, (PadShortcut, type(None))) for b in blocks)  # option A: parameter-free


def test_option_a_shortcut_subsamples_and_zero_pads() -> None:
    x = torch.randn(2, 16, 8, 8)
    y = PadShortcut(16, 32, stride=2)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()


def test_cifar_resnet_forward_shapes() -> None:
    model = create_model("resnet20").eval()
    with torch.no_grad():
        assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 64, 8, 8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(block="dense"), "block must be one of"),
        (dict(layers=()), "layers must list"),
        (dict(layers=(2, 0, 2, 2)), "layers must list"),
        (dict(widths=(64, 128)), "has 2 entries for 4 stages"),
        (dict(widths=(64, 0, 256, 512)), "widths must list positive"),
        (dict(stem="tiny"), "stem must be one of"),
        (dict(shortcut="none"), "shortcut must be one of"),
        (dict(num_classes=0), "num_classes must be a positive integer"),
        (dict(in_channels=0), "in_channels must be a positive integer"),
        (dict(init="he"), "init must be one of"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ResNet(**kwargs)

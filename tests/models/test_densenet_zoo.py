"""The DenseNet family: the textbook's network, torchvision's and the paper's nets, growth schedules, checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from densenet.models import DenseNet, create_model, model_info
from densenet.models.layers import DenseLayer, Transition
from densenet.models.shapes import stage_shapes
from tests.models.zoo_helpers import meta_model

# ---------------------------------------------------------------- the textbook's network (the seed)


def conv_block(input_channels: int, num_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(input_channels), nn.ReLU(),
                         nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1))


class TextbookDenseBlock(nn.Module):
    def __init__(self, num_convs: int, input_channels: int, num_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(*[conv_block(num_channels * i + input_channels, num_channels)
                                   for i in range(num_convs)])

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803 - the textbook's name
        for blk in self.net:
            X = torch.cat((X, blk(X)), dim=1)
        return X


def transition_block(input_channels: int, num_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(input_channels), nn.ReLU(),
                         nn.Conv2d(input_channels, num_channels, kernel_size=1), nn.AvgPool2d(kernel_size=2, stride=2))


def textbook_densenet() -> nn.Sequential:
    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    num_channels, growth_rate = 64, 32
    num_convs_in_dense_blocks = [4, 4, 4, 4]
    blks = []
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        blks.append(TextbookDenseBlock(num_convs, num_channels, growth_rate))
        num_channels += num_convs * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:
            blks.append(transition_block(num_channels, num_channels // 2))
            num_channels = num_channels // 2
    return nn.Sequential(b1, *blks, nn.BatchNorm2d(num_channels), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)),
                         nn.Flatten(), nn.Linear(num_channels, 10))


def test_d2l_densenet_parameters_match_the_textbook_network() -> None:
    ours = [tuple(p.shape) for p in create_model("d2l_densenet").parameters()]
    textbook = [tuple(p.shape) for p in textbook_densenet().parameters()]
    assert ours == textbook
    assert sum(math.prod(s) for s in ours) == 758_226


def test_d2l_densenet_computes_the_textbook_function() -> None:
    torch.manual_seed(0)
    textbook, ours = textbook_densenet(), create_model("d2l_densenet")
    with torch.no_grad():
        for dst, src in zip(ours.state_dict().values(), textbook.state_dict().values(), strict=True):
            dst.copy_(src)
    x = torch.randn(2, 1, 64, 64)
    torch.testing.assert_close(ours(x), textbook(x))  # train mode: batch statistics
    torch.testing.assert_close(ours.eval()(x), textbook.eval()(x))  # eval mode: the running statistics


def test_d2l_densenet_stage_shapes() -> None:
    model = create_model("d2l_densenet").eval()
    shapes = [tuple(row["output_shape"]) for row in stage_shapes(model, (1, 96, 96))]
    assert shapes == [(1, 64, 24, 24), (1, 192, 24, 24), (1, 96, 12, 12), (1, 224, 12, 12), (1, 112, 6, 6),
                      (1, 240, 6, 6), (1, 120, 3, 3), (1, 248, 3, 3), (1, 248, 3, 3), (1, 248, 3, 3),
                      (1, 248, 1, 1), (1, 248), (1, 10)]


# ---------------------------------------------------------------- ImageNet: torchvision's published figures

TORCHVISION_PARAMS = {"densenet121": 7_978_856, "densenet161": 28_681_000, "densenet169": 14_149_480,
                      "densenet201": 20_013_928}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_imagenet_densenets_have_torchvision_parameter_counts(name: str) -> None:
    model = meta_model(name)
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[name] == model_info(name).params
    assert not any(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_densenet264_is_the_papers() -> None:
    model = meta_model("densenet264")
    blocks = [m for m in model.features if m.__class__.__name__ == "DenseBlock"]
    assert [len(b) for b in blocks] == [6, 12, 64, 48]
    assert {b.growth_rate for b in blocks} == {32}
    assert sum(p.numel() for p in model.parameters()) == 33_337_704


# ---------------------------------------------------------------- CIFAR: the paper's Table 2

# name: (depth L, growth k, BC, parameters the paper reports in millions)
PAPER_CIFAR = {
    "densenet40_k12": (40, 12, False, 1.0),
    "densenet100_k12": (100, 12, False, 7.0),
    "densenet100_k24": (100, 24, False, 27.2),
    "densenet_bc100_k12": (100, 12, True, 0.8),
    "densenet_bc250_k24": (250, 24, True, 15.3),
    "densenet_bc190_k40": (190, 40, True, 25.6),
}


@pytest.mark.parametrize("name", sorted(PAPER_CIFAR))
def test_cifar_densenets_match_the_paper(name: str) -> None:
    depth, k, bc, paper_millions = PAPER_CIFAR[name]
    model = meta_model(name)
    params = sum(p.numel() for p in model.parameters())
    assert params == model_info(name).params
    assert round(params / 1e6, 1) == paper_millions
    # Structure: 3x3 stem, three blocks of (L-4)/3 plain or (L-4)/6 bottleneck layers, no conv biases.
    assert model.features.conv0.kernel_size == (3, 3) and model.features.conv0.stride == (1, 1)
    assert model.features.conv0.out_channels == (2 * k if bc else 16)
    layers = [m for m in model.modules() if isinstance(m, DenseLayer)]
    assert len(layers) == (depth - 4) // (6 if bc else 3) * 3
    assert all(layer.bottleneck == bc for layer in layers)
    assert not any(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    for t in [m for m in model.modules() if isinstance(m, Transition)]:
        assert t.out_channels == math.floor((0.5 if bc else 1.0) * t.in_channels)
    assert model_info(name).input_size == (3, 32, 32) and model.num_classes == 10


def test_bc100_on_fashion_mnist_is_the_benchmarks_768k_densenet() -> None:
    params = sum(p.numel() for p in meta_model("densenet_bc100_k12", in_channels=1).parameters())
    assert params == 768_730
    assert 768_000 <= params < 769_000


# ---------------------------------------------------------------- growth schedules


def _growth_per_block(model: DenseNet) -> list[int]:
    return [m.growth_rate for m in model.features if m.__class__.__name__ == "DenseBlock"]


def test_doubling_growth_schedules() -> None:
    assert _growth_per_block(meta_model("d2l_densenet_doubling")) == [8, 16, 32, 64]
    assert _growth_per_block(meta_model("densenet_g8_16_32_64")) == [8, 16, 32, 64]
    model = create_model("d2l_densenet_doubling").eval()
    # 64 -> +4*8 -> 96 -> 48 -> +4*16 -> 112 -> 56 -> +4*32 -> 184 -> 92 -> +4*64 -> 348
    assert model.num_features == 348
    assert model.forward_features(torch.randn(1, 1, 96, 96)).shape == (1, 348, 3, 3)


def test_growth_schedule_on_a_custom_densenet() -> None:
    model = DenseNet(growth_rate=(4, 8), block_config=(2, 3), num_init_features=8, stem="cifar", num_classes=3)
    assert _growth_per_block(model) == [4, 8]
    assert model.num_features == (8 + 2 * 4) // 2 + 3 * 8
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 3)


# ---------------------------------------------------------------- argument validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(growth_rate=0), "growth_rate must be a positive integer"),
        (dict(growth_rate=-3), "growth_rate must be a positive integer"),
        (dict(growth_rate=True), "growth_rate must be a positive integer"),
        (dict(growth_rate=(8, 16, 0, 64)), "growth_rate must be a positive integer"),
        (dict(growth_rate=(8, 16, 32)), r"growth schedule \(8, 16, 32\) has 3 entries .* 4 blocks"),
        (dict(growth_rate="32"), "growth_rate must be an int or one int per block"),
        (dict(compression=0), r"compression \(theta\) must lie in \(0, 1\]"),
        (dict(compression=1.5), r"compression \(theta\) must lie in \(0, 1\]"),
        (dict(compression=-0.5), r"compression \(theta\) must lie in \(0, 1\]"),
        (dict(block_config=()), "at least one dense block"),
        (dict(block_config=(6, 0, 24, 16)), "positive integer number of layers"),
        (dict(block_config=6), "block_config must be a sequence"),
        (dict(num_init_features=0), "num_init_features"),
        (dict(bn_size=0), "bn_size must be a positive integer"),
        (dict(drop_rate=1.0), r"drop_rate must lie in \[0, 1\)"),
        (dict(drop_rate=-0.1), r"drop_rate must lie in \[0, 1\)"),
        (dict(num_classes=0), "num_classes must be a positive integer"),
        (dict(in_channels=0), "in_channels must be a positive integer"),
        (dict(stem="resnet"), "stem must be one of"),
        (dict(init="he"), "init must be one of"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DenseNet(**kwargs)


def test_registry_builders_validate_overrides() -> None:
    with pytest.raises(ValueError, match="compression"):
        create_model("densenet121", compression=0)
    with pytest.raises(ValueError, match="growth schedule"):
        create_model("d2l_densenet", growth_rate=(8, 16))


def test_memory_efficient_reaches_every_dense_layer() -> None:
    model = meta_model("densenet_bc100_k12", memory_efficient=True)
    assert all(m.memory_efficient for m in model.modules() if isinstance(m, DenseLayer))


def test_torchvision_initialization() -> None:
    torch.manual_seed(0)
    model = create_model("densenet_bc100_k12")
    assert torch.equal(model.classifier.bias, torch.zeros(10))
    bn = model.features.denseblock1.denselayer1.norm1
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
    w = model.features.denseblock3.denselayer16.conv1.weight  # Kaiming normal: std sqrt(2 / fan_in)
    assert w.std().item() == pytest.approx(math.sqrt(2 / w[0].numel()), rel=0.05)

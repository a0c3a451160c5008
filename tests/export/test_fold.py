"""BatchNorm folding: the fused convolution computes conv-then-BN, and folded models give the same outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import densenet
from densenet.errors import DenseNetError
from densenet.export import find_foldable_pairs, fold_batchnorm, fuse_conv_bn
from tests.export.helpers import family_models, randomize_batchnorm, small_input


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("stride", "groups", "dilation"), [(1, 1, 1), (2, 4, 1), (1, 2, 2)])
def test_fused_conv_equals_conv_then_batchnorm(bias: bool, stride: int, groups: int, dilation: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, 3, stride=stride, padding=1, groups=groups, dilation=dilation, bias=bias).double()
    norm = randomize_batchnorm(nn.BatchNorm2d(12).double())
    x = torch.randn(2, 8, 9, 9, dtype=torch.float64)
    fused = fuse_conv_bn(conv, norm)
    assert fused.bias is not None and not fused.weight.requires_grad
    torch.testing.assert_close(fused(x), norm(conv(x)), rtol=1e-12, atol=1e-12)


# Foldable pairs: DenseNets are pre-activation, so only convolutions feeding a BN directly fold.
#   d2l_densenet:       the stem's conv0 -> norm0 (its dense layers have no bottleneck)
#   densenet121:        the stem plus each bottleneck's conv1 -> norm2 (6 + 12 + 24 + 16 layers)
#   densenet_bc100_k12: each bottleneck (3 x 16 layers); the CIFAR stem has no BatchNorm
#   resnet18:           every BatchNorm (Conv-BN everywhere, including the projection shortcuts)
EXPECTED_PAIRS = {"d2l_densenet": 1, "densenet121": 1 + 58, "densenet_bc100_k12": 48, "resnet18": 20}


@pytest.mark.parametrize("name", family_models())
def test_folded_model_matches_original(name: str) -> None:
    torch.manual_seed(0)
    model = randomize_batchnorm(densenet.create_model(name))
    norms_before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded = fold_batchnorm(model)
    assert len(folded.folded_pairs) == EXPECTED_PAIRS[name]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == norms_before - EXPECTED_PAIRS[name]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == norms_before, "original was modified"
    assert type(folded) is type(model) and not folded.training
    x = torch.randn(2, *small_input(name), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model(x), folded(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert not torch.equal(got, expected) or EXPECTED_PAIRS[name] == 0


def test_densenet_pairs_are_the_stem_and_bottlenecks() -> None:
    pairs = find_foldable_pairs(densenet.create_model("densenet121").eval())
    assert (pairs[0].conv, pairs[0].norm) == ("features.conv0", "features.norm0")
    assert all(p.conv.endswith(".conv1") and p.norm.endswith(".norm2") for p in pairs[1:])


class _SharedOutput(nn.Module):
    """conv's output feeds the BatchNorm and a skip: folding would change the skip."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.bn = nn.BatchNorm2d(3)
        self.norm_after_cat = nn.BatchNorm2d(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.norm_after_cat(torch.cat([self.bn(y) + y, x], 1))


def test_pairs_whose_conv_output_has_other_readers_do_not_fold() -> None:
    model = randomize_batchnorm(_SharedOutput())
    assert find_foldable_pairs(model) == []
    folded = fold_batchnorm(model)
    x = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(folded(x), model(x))


class _Untraceable(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.sum() > 0 else -x  # control flow on a tensor's value


def test_untraceable_model_is_a_clear_error() -> None:
    with pytest.raises(DenseNetError, match="without --fold-bn"):
        fold_batchnorm(_Untraceable())

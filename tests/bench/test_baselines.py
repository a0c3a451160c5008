"""The naive baseline: the textbook's dense block with the model's weights computes the model's function."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from densenet.bench.baselines import TextbookDenseBlock, naive_model
from densenet.models import DenseBlock, DenseNet, create_model


def _grads(fn, block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    block.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), [x.grad] + [p.grad for p in block.parameters()]


@pytest.mark.parametrize("bn_size", [None, 4])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_dense_block_matches_the_textbook_computation(bn_size: int | None, memory_format: torch.memory_format) -> None:
    torch.manual_seed(0)
    block = DenseBlock(4, 6, 5, bn_size=bn_size).double()
    x = torch.randn(3, 6, 7, 7, dtype=torch.float64)
    textbook = {k: v.clone() for k, v in block.state_dict().items()}
    out_ref, grads_ref = _grads(TextbookDenseBlock(block), block, x)
    block.load_state_dict(textbook)  # the same running statistics before the second forward
    block.to(memory_format=memory_format)
    out, grads = _grads(block, block, x.contiguous(memory_format=memory_format))
    assert out.shape == (3, 6 + 4 * 5, 7, 7)
    torch.testing.assert_close(out, out_ref, rtol=1e-12, atol=1e-12)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


def test_naive_model_computes_the_same_function_in_fp32_nchw() -> None:
    torch.manual_seed(0)
    model = DenseNet(growth_rate=4, block_config=(2, 3), num_init_features=8, num_classes=5, stem="cifar").eval()
    model.to(memory_format=torch.channels_last)
    naive = naive_model(model)
    x = torch.randn(2, 3, 16, 16)
    assert next(naive.parameters()).is_contiguous()
    assert isinstance(naive.features.denseblock1, TextbookDenseBlock)
    assert type(model.features.denseblock1) is DenseBlock  # the model itself is left alone
    torch.testing.assert_close(naive(x), model(x), rtol=1e-5, atol=1e-6)
    assert naive.state_dict().keys() == model.state_dict().keys()


def test_naive_densenet121_with_bottlenecks_trains_like_the_model() -> None:
    # torchvision's layout: ImageNet stem (max-pool), 1x1 bottlenecks, transitions; outputs and gradients agree.
    torch.manual_seed(0)
    model = create_model("densenet121", num_classes=7)
    naive = naive_model(model)
    x = torch.randn(2, 3, 32, 32)
    out_naive, grads_naive = _grads(naive.train(), naive, x)
    out, grads = _grads(model.train(), model, x)
    torch.testing.assert_close(out_naive, out, rtol=1e-5, atol=1e-5)
    for g_naive, g in zip(grads_naive, grads):
        torch.testing.assert_close(g_naive, g, rtol=1e-4, atol=1e-5)
    for (name, b), b_naive in zip(model.named_buffers(), naive.buffers()):
        torch.testing.assert_close(b_naive, b, msg=name)  # BatchNorm statistics updated alike


def test_textbook_block_reads_like_the_textbook_and_keeps_dropout() -> None:
    block = DenseBlock(3, 4, 5, bn_size=2, drop_rate=0.5)
    textbook = TextbookDenseBlock(block)
    assert list(textbook) == ["denselayer1", "denselayer2", "denselayer3"]
    assert list(textbook.denselayer1._modules) == ["norm1", "relu1", "conv1", "norm2", "relu2", "conv2", "dropout"]
    assert textbook.denselayer2.conv1 is block.denselayer2.conv1  # the same weights, not copies
    x = torch.randn(2, 4, 6, 6)
    block.eval(), textbook.eval()
    torch.testing.assert_close(textbook(x), block(x))
    assert textbook(x).shape == (2, 4 + 3 * 5, 6, 6)

"""DenseLayer, DenseBlock and Transition: the seed's shapes, argument checks, memory-efficient mode."""

from __future__ import annotations

import pytest
import torch

from densenet.models import DenseBlock, DenseLayer, Transition


def test_dense_block_seed_shape() -> None:
    block = DenseBlock(2, 3, 10)
    assert block.out_channels == 23
    assert block(torch.randn(4, 3, 8, 8)).shape == (4, 23, 8, 8)


def test_transition_seed_shape() -> None:
    # The note's comment says [3, 10, 8, 8]; the textbook's code gives (4, 10, 4, 4).
    assert Transition(23, 10)(torch.randn(4, 23, 8, 8)).shape == (4, 10, 4, 4)


def test_dense_block_keeps_its_input_as_the_first_channels() -> None:
    block = DenseBlock(3, 5, 4).eval()
    x = torch.randn(2, 5, 6, 6)
    out = block(x)
    assert out.shape == (2, 5 + 3 * 4, 6, 6)
    assert torch.equal(out[:, :5], x)


def test_bottleneck_layer_widths() -> None:
    layer = DenseLayer(in_channels=20, growth_rate=6, bn_size=4)
    assert layer.conv1.kernel_size == (1, 1) and layer.conv1.out_channels == 24
    assert layer.conv2.kernel_size == (3, 3) and layer.conv2.out_channels == 6
    assert layer([torch.randn(2, 12, 5, 5), torch.randn(2, 8, 5, 5)]).shape == (2, 6, 5, 5)


@pytest.mark.parametrize("args", [(0, 3, 10), (2, 3, 0), (2, 3, -4)])
def test_dense_block_rejects_bad_arguments(args: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="num_convs|growth_rate"):
        DenseBlock(*args)


def test_transition_rejects_zero_channels() -> None:
    with pytest.raises(ValueError, match="positive channel counts"):
        Transition(23, 0)


def _train_step(block: DenseBlock, x: torch.Tensor, seed: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(seed)  # same dropout masks in both runs
    x = x.clone().requires_grad_(True)
    out = block(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), [x.grad] + [p.grad for p in block.parameters()]


@pytest.mark.parametrize("bn_size", [None, 4])
@pytest.mark.parametrize("drop_rate", [0.0, 0.3])
def test_memory_efficient_block_matches_plain(bn_size: int | None, drop_rate: float) -> None:
    torch.manual_seed(0)
    plain = DenseBlock(4, 6, 5, bn_size=bn_size, drop_rate=drop_rate)
    efficient = DenseBlock(4, 6, 5, bn_size=bn_size, drop_rate=drop_rate, memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(3, 6, 7, 7)
    out_p, grads_p = _train_step(plain, x, seed=1)
    out_e, grads_e = _train_step(efficient, x, seed=1)
    torch.testing.assert_close(out_e, out_p, rtol=1e-6, atol=1e-6)
    for gp, ge in zip(grads_p, grads_e):
        torch.testing.assert_close(ge, gp, rtol=1e-5, atol=1e-6)
    # BatchNorm statistics are updated once per step, not again during the recomputation.
    for (name, bp), be in zip(plain.named_buffers(), efficient.buffers()):
        torch.testing.assert_close(be, bp, rtol=1e-6, atol=1e-7, msg=name)
    assert all(int(b) == 1 for n, b in efficient.named_buffers() if n.endswith("num_batches_tracked"))


def _saved_activation_bytes(block: DenseBlock, x: torch.Tensor) -> int:
    """Bytes autograd keeps for backward (distinct storages), measured with saved-tensor hooks."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(x)
    return sum(storages.values())


def test_memory_efficient_block_keeps_far_fewer_activations() -> None:
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    plain = DenseBlock(12, 16, 8, bn_size=4, bias=False)
    efficient = DenseBlock(12, 16, 8, bn_size=4, bias=False, memory_efficient=True)
    plain_bytes, efficient_bytes = _saved_activation_bytes(plain, x), _saved_activation_bytes(efficient, x)
    assert efficient_bytes < plain_bytes / 5, (plain_bytes, efficient_bytes)


def test_memory_efficient_is_plain_in_eval_and_without_grad() -> None:
    torch.manual_seed(0)
    block = DenseBlock(3, 4, 4, bn_size=2, memory_efficient=True)
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        trained = block(x)  # training mode without autograd: no checkpoint, running stats updated once
    assert int(block.denselayer1.norm1.num_batches_tracked) == 1
    block.eval()
    assert trained.shape == block(x).shape == (2, 16, 5, 5)


@pytest.mark.parametrize("memory_efficient, calls_per_step", [(False, 1), (True, 2)])
def test_another_transform_runs_in_forward_and_in_the_recomputation(memory_efficient: bool,
                                                                    calls_per_step: int) -> None:
    # The seam the engine uses for its compiled transform: the layer calls transform(layer, x) wherever it
    # would run its own BN-ReLU-Conv, including inside the memory-efficient recomputation in backward.
    torch.manual_seed(0)
    layer = DenseLayer(12, 4, bn_size=2, memory_efficient=memory_efficient)
    reference = DenseLayer(12, 4, bn_size=2)
    reference.load_state_dict(layer.state_dict())
    calls: list[tuple[int, ...]] = []

    def transform(owner: DenseLayer, x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return DenseLayer.transform(owner, x)

    features = [torch.randn(2, 8, 5, 5, requires_grad=True), torch.randn(2, 4, 5, 5, requires_grad=True)]
    layer(features, transform=transform).sum().backward()
    grads = [f.grad.clone() for f in features]
    for f in features:
        f.grad = None
    reference(features).sum().backward()
    assert calls == [(2, 12, 5, 5)] * calls_per_step  # one call on the concatenation, again when recomputed
    for g, f in zip(grads, features):
        torch.testing.assert_close(g, f.grad, rtol=1e-6, atol=1e-7)
    assert not {"compiled_transform", "transform"} & set(vars(layer))  # the layer holds no engine state

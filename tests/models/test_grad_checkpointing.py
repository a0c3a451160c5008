"""set_grad_checkpointing on every registered model: same gradients and BN statistics, fewer saved activations."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from densenet.models import create_model, list_models
from tests.models.zoo_helpers import params_marking_big, small_input_size


def _step(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One training-mode forward and backward; the output and every parameter's gradient."""
    model.train()
    out = model(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), {name: p.grad for name, p in model.named_parameters()}


def _saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps for backward after a training-mode forward (distinct storages)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(storages.values())


@pytest.mark.parametrize("name", params_marking_big(list_models()))
def test_grad_checkpointing_changes_memory_not_maths(name: str) -> None:
    torch.manual_seed(0)
    plain = create_model(name)
    checkpointed = copy.deepcopy(plain)
    checkpointed.set_grad_checkpointing()
    x = torch.randn(2, *small_input_size(name))
    out_plain, grads_plain = _step(plain, x)
    out_ckpt, grads_ckpt = _step(checkpointed, x)
    torch.testing.assert_close(out_ckpt, out_plain, rtol=1e-6, atol=1e-6)
    for pname, grad in grads_ckpt.items():
        torch.testing.assert_close(grad, grads_plain[pname], rtol=1e-5, atol=1e-6, msg=pname)
    buffers = dict(plain.named_buffers())
    for bname, b in checkpointed.named_buffers():  # one running-statistics update, not a second in backward
        torch.testing.assert_close(b, buffers[bname], rtol=1e-6, atol=1e-7, msg=bname)
        if bname.endswith("num_batches_tracked"):
            assert int(b) == 1, bname


@pytest.mark.parametrize("name", ["resnet20", "d2l_resnet18", "densenet40_k12", "d2l_densenet"])
def test_grad_checkpointing_keeps_fewer_activations_and_switches_off(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.randn(2, *small_input_size(name))
    plain_bytes = _saved_bytes(model, x)
    model.set_grad_checkpointing(True)
    checkpointed_bytes = _saved_bytes(model, x)
    assert checkpointed_bytes < plain_bytes / 2, (checkpointed_bytes, plain_bytes)
    model.set_grad_checkpointing(False)
    assert _saved_bytes(model, x) == plain_bytes
    model.set_grad_checkpointing(True)
    model.eval()  # nothing is kept in eval mode, so nothing is recomputed
    with torch.no_grad():
        assert model(x).shape == (2, model.num_classes)

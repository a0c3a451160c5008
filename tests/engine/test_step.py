"""The training step shared by the trainer and the benchmark."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from densenet.engine.performance import PerfOptions, make_grad_scaler, resolve
from densenet.engine.step import infer_step, train_step
from densenet.models import create_model

FP32 = resolve(PerfOptions(precision="fp32", compile=False, channels_last=False), "cpu")


def _model_and_batch():
    torch.manual_seed(0)
    model = create_model("densenet40_k12", block_config=(2, 2, 2)).train()
    return model, torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])


def test_train_step_is_the_textbook_step_and_frees_the_gradients() -> None:
    model, x, y = _model_and_batch()
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        loss, logits = train_step(model, optimizer, x, y, FP32,
                                  loss_fn=lambda out, t: F.cross_entropy(out, t, label_smoothing=0.1))
        ref_optimizer.zero_grad()
        ref_logits = reference(x)
        ref_loss = F.cross_entropy(ref_logits, y, label_smoothing=0.1)
        ref_loss.backward()
        ref_optimizer.step()
        torch.testing.assert_close(loss, ref_loss)
        torch.testing.assert_close(logits, ref_logits)
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)
        assert p.grad is None  # nothing held between steps
    assert make_grad_scaler(FP32) is None


def test_before_backward_can_stop_the_step_before_it_changes_the_weights() -> None:
    model, x, y = _model_and_batch()
    before = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def stop(loss: torch.Tensor) -> None:
        raise FloatingPointError(f"loss {loss.item():.3f}")

    with pytest.raises(FloatingPointError, match="loss"):
        train_step(model, optimizer, x, y, FP32, before_backward=stop)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) and p.grad is None, name


def test_infer_step_runs_without_autograd() -> None:
    model, x, _ = _model_and_batch()
    model.eval()
    out = infer_step(model, x, FP32)
    assert out.shape == (4, 10) and not out.requires_grad and torch.is_inference(out)
    torch.testing.assert_close(out, model(x))

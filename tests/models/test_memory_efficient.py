"""memory_efficient=True changes memory, not maths: same outputs, gradients and BN statistics after a step."""

from __future__ import annotations

import pytest
import torch

from densenet.models import create_model, list_models, model_info
from tests.models.zoo_helpers import params_marking_big, small_input_size

DENSENETS = [n for n in list_models() if model_info(n).family == "densenet"]


def _one_training_step(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    out = model(x)
    torch.nn.functional.cross_entropy(out, target).backward()
    optimizer.step()
    return out.detach()


@pytest.mark.parametrize("name", params_marking_big(DENSENETS))
def test_memory_efficient_training_step_matches_plain(name: str) -> None:
    torch.manual_seed(0)
    plain = create_model(name)
    efficient = create_model(name, memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, *small_input_size(name))
    target = torch.tensor([0, 1])
    out_plain = _one_training_step(plain, x, target)
    out_efficient = _one_training_step(efficient, x, target)

    torch.testing.assert_close(out_efficient, out_plain, rtol=1e-5, atol=1e-6)
    grads = dict(plain.named_parameters())
    for pname, p in efficient.named_parameters():
        torch.testing.assert_close(p.grad, grads[pname].grad, rtol=1e-4, atol=1e-6, msg=pname)
        torch.testing.assert_close(p, grads[pname], rtol=1e-5, atol=1e-6)  # the step itself
    buffers = dict(plain.named_buffers())
    for bname, b in efficient.named_buffers():
        # running_mean, running_var and num_batches_tracked: one update, not a second one in backward
        torch.testing.assert_close(b, buffers[bname], rtol=1e-5, atol=1e-7, msg=bname)
        if bname.endswith("num_batches_tracked"):
            assert int(b) == 1


def test_memory_efficient_with_dropout_matches_plain() -> None:
    torch.manual_seed(0)
    plain = create_model("densenet40_k12", drop_rate=0.2)
    efficient = create_model("densenet40_k12", drop_rate=0.2, memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    x, target = torch.randn(2, 3, 8, 8), torch.tensor([3, 4])
    torch.manual_seed(1)
    out_plain = _one_training_step(plain, x, target)
    torch.manual_seed(1)
    out_efficient = _one_training_step(efficient, x, target)
    torch.testing.assert_close(out_efficient, out_plain, rtol=1e-5, atol=1e-6)
    for p, q in zip(efficient.parameters(), plain.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_memory_efficient_eval_matches_plain() -> None:
    torch.manual_seed(0)
    plain = create_model("d2l_densenet").eval()
    efficient = create_model("d2l_densenet", memory_efficient=True).eval()
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(efficient(x), plain(x))

"""--accum-steps: N micro-batches make the gradient of one batch N times larger (BatchNorm in train mode aside),
grouped as timm groups them; and --optimizer adamw with --betas over the shared parameter groups."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from densenet.engine.config import TrainConfig
from densenet.engine.performance import PerfOptions, resolve
from densenet.engine.setup import build_optimizer
from densenet.engine.step import Accumulation, train_step
from densenet.errors import ConfigError
from densenet.models import create_model

PERF = resolve(PerfOptions(precision="fp32", compile=False, channels_last=False), "cpu")


def step_by_micro_batches(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int) -> None:
    """One SGD step (lr 1, so the update is minus the gradient) over ``x`` split into ``n`` micro-batches."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    for i, (xb, yb) in enumerate(zip(x.chunk(n), y.chunk(n))):
        train_step(model, optimizer, xb, yb, PERF, accumulate=n, step=i == n - 1)
    assert all(p.grad is None for p in model.parameters())  # freed after the step


def updates(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
    copy_ = copy.deepcopy(model)
    before = {k: v.clone() for k, v in copy_.state_dict().items()}
    step_by_micro_batches(copy_, x, y, n)
    return {k: v - before[k] for k, v in copy_.state_dict().items() if v.is_floating_point()}


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(32, 1, 32, 32, generator=g), torch.randint(0, 10, (32,), generator=g)


def test_four_micro_batches_give_the_gradient_of_one_batch_four_times_larger(batch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))  # no BatchNorm
    one, four = updates(model, *batch, 1), updates(model, *batch, 4)
    assert max((one[k] - four[k]).abs().max().item() for k in one) < 1e-6
    assert min(one[k].abs().max().item() for k in one) > 1e-3  # a real update


def test_with_batchnorm_only_eval_mode_is_exact_and_train_mode_differs_by_its_batch_statistics(batch):
    torch.manual_seed(0)
    model = create_model("d2l_densenet", in_channels=1, num_classes=10)
    model.eval()  # BatchNorm normalizes with its running statistics: every example is independent of the others
    one, four = updates(model, *batch, 1), updates(model, *batch, 4)
    assert max((one[k] - four[k]).abs().max().item() for k in one) < 1e-5
    model.train()  # statistics per micro-batch of 8 instead of the batch of 32: a different gradient
    one, four = updates(model, *batch, 1), updates(model, *batch, 4)
    weight = "features.conv0.weight"
    assert (one[weight] - four[weight]).abs().max().item() > 1e-3 * one[weight].abs().max().item()


def test_micro_batches_group_into_steps_as_timm_groups_them():
    plan = Accumulation(steps=3, batches=10)
    assert [b for b in range(10) if plan.ends_step(b)] == [2, 5, 8, 9]
    assert [plan.group_size(b) for b in range(10)] == [3] * 9 + [1]
    assert plan.optimizer_steps == 4
    assert Accumulation(1, 5).optimizer_steps == 5 and all(Accumulation(1, 5).ends_step(b) for b in range(5))


def test_adamw_takes_betas_and_decoupled_decay_over_the_shared_parameter_groups():
    model = create_model("d2l_densenet", in_channels=1, num_classes=10)
    cfg = TrainConfig().replace({"optim.optimizer": "adamw", "optim.betas": [0.85, 0.995], "optim.lr": 1e-3,
                                 "optim.weight_decay": 0.05, "optim.decay_bn_bias": False})
    opt = build_optimizer(cfg, model)
    assert type(opt) is torch.optim.AdamW
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    assert all(g["betas"] == (0.85, 0.995) and g["lr"] == 1e-3 for g in opt.param_groups)
    for name, p in model.named_parameters():  # BatchNorm weights and every bias: no decay
        assert (id(p) in decay) == (p.ndim > 1), name
    assert type(build_optimizer(TrainConfig(), model)) is torch.optim.SGD


@pytest.mark.parametrize("overrides, message", [
    ({"optim.optimizer": "adamw", "optim.momentum": 0.9}, "--momentum and --nesterov are SGD's"),
    ({"optim.betas": [0.9]}, "betas must be two numbers in [0, 1)"),
    ({"optim.betas": [0.9, 1.0]}, "betas must be two numbers in [0, 1)"),
    ({"optim.ema": 1.0}, "must lie strictly between 0 and 1"),
    ({"optim.ema": 0.0}, "must lie strictly between 0 and 1"),
    ({"run.accum_steps": 0}, "run.accum_steps must be a positive number"),
    ({"run.keep_checkpoints": -1}, "keep_checkpoints must be >= 0"),
])
def test_bad_recipe_values_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        TrainConfig().replace(overrides)

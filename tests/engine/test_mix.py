"""Mixup and CutMix: the mixed batch, its targets and its loss against a hand computation, timm's draws, the
Beta sampler, and the configuration's checks."""

from __future__ import annotations

import math

import pytest
import torch

from densenet.engine.config import TrainConfig
from densenet.engine.mix import Mixer, MixParams, make_mixer, mix, mix_seed, sample_beta
from densenet.engine.task import make_task
from densenet.errors import ConfigError

C = 4  # classes


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(3 * 1 * 4 * 4, dtype=torch.float32).view(3, 1, 4, 4) / 10  # (B=3, C=1, 4, 4)
    return x, torch.tensor([0, 2, 3])


def loss_by_hand(logits: torch.Tensor, y: torch.Tensor, lam: float, eps: float) -> float:
    """timm's way: smooth both one-hots ((1 - eps) on the class, eps / C everywhere), mix them, and average the
    soft-target cross-entropy -sum_c t_c log softmax(z)_c over the pictures."""
    total, b, y = 0.0, len(y), y.tolist()
    for i in range(b):
        z = logits[i].tolist()
        log_norm = math.log(sum(math.exp(v) for v in z))
        for c in range(C):
            a_target = (1 - eps) * (c == y[i]) + eps / C
            b_target = (1 - eps) * (c == y[b - 1 - i]) + eps / C
            total -= (lam * a_target + (1 - lam) * b_target) * (z[c] - log_norm)
    return total / b


def run_loss(eps: float):
    """The loss a run trains with (make_task's), for mixed targets."""
    config = TrainConfig().replace({"optim.label_smoothing": eps, "data.mixup": 0.4})
    return make_task(config, torch.tensor([0, 1, 2, 3]), C, torch.device("cpu"), lambda _m: None).loss


def test_a_mixup_batch_its_targets_and_loss_equal_a_hand_computation():
    mixer = Mixer(mixup=0.4, cutmix=0.0, prob=1.0, switch_prob=0.5, num_classes=C, seed=7)
    params = Mixer(0.4, 0.0, 1.0, 0.5, C, 7).draw(4, 4)  # the same generator, drawn by a twin
    assert params.box is None and 0 < params.lam < 1
    x, y = batch()
    mixed, targets = mixer(x, y)
    lam = params.lam
    for i in range(3):  # picture i with picture 2 - i, pixel by pixel
        for r in range(4):
            for c in range(4):
                assert mixed[i, 0, r, c].item() == pytest.approx(lam * x[i, 0, r, c].item()
                                                                 + (1 - lam) * x[2 - i, 0, r, c].item(), abs=1e-6)
    assert targets.tolist()[1] == pytest.approx([0, 0, 1, 0])  # the middle picture mixes with itself
    assert targets.tolist()[0] == pytest.approx([lam, 0, 0, 1 - lam])
    logits = torch.tensor([[1.0, -0.5, 0.3, 2.0], [0.2, 0.1, -1.0, 0.0], [-0.3, 0.8, 0.5, 1.5]])
    for eps in (0.0, 0.1):
        assert run_loss(eps)(logits, targets).item() == pytest.approx(loss_by_hand(logits, y, lam, eps), rel=1e-5)


def test_a_cutmix_batch_pastes_the_box_and_corrects_lam_by_its_area():
    mixer = Mixer(mixup=0.0, cutmix=1.0, prob=1.0, switch_prob=0.5, num_classes=C, seed=3)
    params = Mixer(0.0, 1.0, 1.0, 0.5, C, 3).draw(4, 4)
    top, bottom, left, right = params.box
    area = (bottom - top) * (right - left)
    assert 0 < area < 16 and params.lam == 1 - area / 16
    x, y = batch()
    mixed, targets = mixer(x, y)
    for i in range(3):
        for r in range(4):
            for c in range(4):
                inside = top <= r < bottom and left <= c < right
                assert mixed[i, 0, r, c] == x[2 - i if inside else i, 0, r, c]
    logits = torch.randn(3, C, generator=torch.Generator().manual_seed(0))
    assert run_loss(0.1)(logits, targets).item() == pytest.approx(loss_by_hand(logits, y, params.lam, 0.1), rel=1e-5)


def test_mix_keeps_the_memory_format_and_leaves_its_input_alone():
    x = torch.rand(4, 3, 8, 8).to(memory_format=torch.channels_last)
    before = x.clone()
    for params in (MixParams(0.3), MixParams(0.75, (2, 6, 0, 4))):
        out, _ = mix(x, torch.arange(4), params, C)
        assert out.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, before)
    out, targets = mix(x, torch.arange(4), MixParams(1.0), C)
    assert out is x and torch.equal(targets, torch.eye(4)[:, :C])


def draws(mixer: Mixer, n: int = 200) -> list[MixParams]:
    return [mixer.draw(32, 32) for _ in range(n)]


def test_the_draws_follow_mix_prob_and_switch_prob():
    assert all(p.lam == 1 for p in draws(Mixer(1.0, 1.0, 0.0, 0.5, C, 0)))  # mix_prob 0: never mixed
    assert all(p.box is not None for p in draws(Mixer(1.0, 1.0, 1.0, 1.0, C, 0)))  # switch_prob 1: always CutMix
    assert all(p.box is None and p.lam < 1 for p in draws(Mixer(1.0, 1.0, 1.0, 0.0, C, 0)))  # 0: always Mixup
    assert all(p.box is not None for p in draws(Mixer(0.0, 1.0, 1.0, 0.0, C, 0)))  # CutMix alone
    some = draws(Mixer(1.0, 1.0, 0.5, 0.5, C, 0), 400)
    unmixed, cut = sum(p.lam == 1 for p in some), sum(p.box is not None for p in some)
    assert 160 < unmixed < 240 and 60 < cut < 140  # about half, and half of the rest
    same_seed = [[p.lam for p in draws(Mixer(0.2, 0, 1, 0.5, C, 5), 5)] for _ in range(2)]
    assert same_seed[0] == same_seed[1]
    assert mix_seed(0) != mix_seed(1)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_beta_draws_have_the_mean_and_variance_of_beta_alpha_alpha(alpha):
    g = torch.Generator().manual_seed(0)
    values = torch.tensor([sample_beta(alpha, g) for _ in range(4000)], dtype=torch.float64)
    assert ((values >= 0) & (values <= 1)).all()
    assert values.mean().item() == pytest.approx(0.5, abs=0.02)
    assert values.var().item() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.1)


def test_mixing_is_single_label_only_and_its_values_are_checked():
    with pytest.raises(ConfigError, match="--mixup takes a Beta distribution's alpha >= 0"):
        TrainConfig().replace({"data.mixup": -0.1})
    with pytest.raises(ConfigError, match="--cutmix takes a Beta distribution's alpha >= 0"):
        TrainConfig().replace({"data.cutmix": float("nan")})
    with pytest.raises(ConfigError, match="--mix-switch-prob is a probability in \\[0, 1\\], got 1.5"):
        TrainConfig().replace({"data.mix_switch_prob": 1.5})
    with pytest.raises(ConfigError, match="need one class per picture"):
        TrainConfig().replace({"data.mixup": 0.2, "data.multi_label": True})
    config = TrainConfig().replace({"data.cutmix": 1.0})
    multi = make_task(config, torch.tensor([[1.0, 0.0], [1.0, 1.0]]), 2, torch.device("cpu"), lambda _m: None)
    with pytest.raises(ConfigError, match="this label file gives pictures several labels each"):
        make_mixer(config, multi, 2, lambda _m: None)
    single = make_task(config, torch.tensor([0, 1]), 2, torch.device("cpu"), lambda _m: None)
    said: list[str] = []
    assert make_mixer(config, single, 2, said.append) is not None and not single.train_accuracy
    assert said == ["mixing: CutMix alpha 1.0 on 100% of the batches; the train loss is the soft-target "
                    "cross-entropy, and no train accuracy is reported (a mixed picture has no single true class)"]
    assert make_mixer(TrainConfig().replace({"data.mixup": 1.0, "data.mix_prob": 0.0}), single, 2, said.append) is None

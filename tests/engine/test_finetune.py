"""Fine-tuning's parts: which stages --freeze-until freezes, and the optimizer's parameter groups."""

from __future__ import annotations

import pytest
from torch import nn

from densenet.engine.config import TrainConfig
from densenet.engine.finetune import HEAD, TUNE, FineTuning, frozen_tensors, parameter_groups, stage_modules
from densenet.engine.setup import build_optimizer
from densenet.errors import ConfigError
from densenet.models import create_model


def config(**overrides) -> TrainConfig:
    return TrainConfig().replace(overrides)


@pytest.fixture(scope="module")
def net() -> nn.Module:
    return create_model("d2l_densenet", in_channels=1, num_classes=10)


@pytest.mark.parametrize(("until", "last"), [
    ("stem", "features.pool0"), ("denseblock1", "features.denseblock1"), ("denseblock2", "features.denseblock2"),
    ("denseblock4", "features.denseblock4"), ("features", "features.norm5")])
def test_freeze_until_takes_every_stage_up_to_and_including_the_one_named(net, until, last):
    names = [n for n, _ in stage_modules(net, until)]
    assert names[0] == "features.conv0" and names[-1] == last
    if until == "denseblock2":  # the transition into a block belongs to it; the one after it does not
        assert names[-2:] == ["features.transition1", "features.denseblock2"]
    assert ("features.norm5" in names) == (until == "features")


def test_freeze_until_names_the_stages_a_network_has():
    cifar = create_model("densenet_bc100_k12", num_classes=10)  # three dense blocks
    with pytest.raises(ConfigError, match="has 3 dense blocks; choose stem, denseblock1, denseblock2, denseblock3 or"):
        stage_modules(cifar, "denseblock4")
    with pytest.raises(ConfigError, match="ResNet has none. Drop --freeze-until, or use --head-epochs"):
        stage_modules(create_model("resnet18", num_classes=10), "stem")
    with pytest.raises(ConfigError, match="freeze_until must be one of stem, denseblock1"):
        config(**{"model.freeze_until": "layer3"})


def test_the_default_optimizer_has_one_group_in_parameter_order_as_every_earlier_run(net):
    (group,) = parameter_groups(net, config())
    assert [id(p) for p in group["params"]] == [id(p) for p in net.parameters()]


def test_groups_put_the_head_at_lr_the_backbone_at_the_scaled_lr_and_no_decay_on_bn_and_biases(net):
    cfg = config(**{"optim.lr": 0.2, "optim.backbone_lr_scale": 0.1, "optim.weight_decay": 1e-4,
                    "optim.decay_bn_bias": False})
    groups = parameter_groups(net, cfg)
    assert [g["name"] for g in groups] == ["head", "head (no decay)", "backbone", "backbone (no decay)"]
    assert [g["lr"] for g in groups] == pytest.approx([0.2, 0.2, 0.02, 0.02])
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0, 1e-4, 0.0]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    assert groups[0]["params"] == [net.classifier.weight] and groups[1]["params"] == [net.classifier.bias]
    no_decay = {id(p) for p in groups[3]["params"]}
    for name, p in net.features.named_parameters():  # every BatchNorm weight and every bias, and nothing else
        assert (id(p) in no_decay) == (p.ndim == 1), name
    optimizer = build_optimizer(cfg, net)
    assert optimizer.param_groups[0]["lr"] == 0.2 and optimizer.param_groups[2]["lr"] == pytest.approx(0.02)


def test_head_epochs_train_only_the_classifier_then_the_stages_after_freeze_until():
    model = create_model("d2l_densenet", in_channels=1, num_classes=10)
    tuning = FineTuning(model, config(**{"model.freeze_until": "denseblock2", "optim.head_epochs": 2}))
    assert (tuning.phase_of(1), tuning.phase_of(2), tuning.phase_of(3)) == (HEAD, HEAD, TUNE)
    assert tuning.enter(1) and not tuning.enter(2)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"classifier.weight", "classifier.bias"}
    tuning.train_mode(model)
    norms = [m for m in model.features.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(not m.training for m in norms) and model.classifier.training
    assert tuning.enter(3)
    frozen = {k for k, _ in frozen_tensors(model, "denseblock2")}
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trains and not trains & frozen and trains | frozen >= {n for n, _ in model.named_parameters()}
    tuning.train_mode(model)
    assert not model.features.denseblock2.denselayer1.norm1.training and not model.features.norm0.training
    assert model.features.denseblock3.denselayer1.norm1.training and model.features.norm5.training
    assert "features.denseblock2.denselayer4.norm1.running_mean" in frozen


def test_without_fine_tuning_options_nothing_is_frozen(net):
    tuning = FineTuning(net, config())
    assert not tuning.active
    assert tuning.enter(1) and tuning.phase == TUNE and not tuning.enter(5)
    assert all(p.requires_grad for p in net.parameters())
    tuning.train_mode(net)
    assert all(m.training for m in net.modules())

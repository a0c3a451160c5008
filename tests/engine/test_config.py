import json

import pytest

from densenet.engine.config import TrainConfig, list_presets, load_preset
from densenet.errors import ConfigError


def test_every_shipped_preset_loads_and_validates():
    names = list_presets()
    assert "d2l-fashion-mnist" in names
    for name in names:
        config = load_preset(name)
        assert config.preset == name
        assert TrainConfig.from_dict(config.to_dict()) == config


def test_seed_preset_is_the_textbook_recipe():
    c = load_preset("d2l-fashion-mnist")
    assert (c.model.name, c.model.init) == ("d2l_densenet", "xavier")
    assert (c.data.dataset, c.data.resize, c.data.normalize) == ("fashion-mnist", 96, False)
    assert (c.run.batch_size, c.run.epochs) == (256, 10)
    assert (c.optim.lr, c.optim.momentum, c.optim.weight_decay, c.optim.schedule) == (0.1, 0.0, 0.0, "constant")
    # hflip unset means off for the built-in datasets
    assert (c.data.random_crop_padding, bool(c.data.hflip), c.data.random_erasing) == (0, False, 0.0)


def test_recommended_preset_is_a_better_recipe_for_the_same_network():
    c = load_preset("densenet-fashion-mnist")
    assert (c.model.name, c.data.dataset, c.run.epochs, c.run.batch_size) == ("d2l_densenet", "fashion-mnist", 10, 256)
    assert (c.data.resize, c.data.normalize, c.data.hflip) == (64, True, True)
    assert (c.optim.momentum, c.optim.nesterov, c.optim.weight_decay) == (0.9, True, 0.0005)
    assert (c.optim.schedule, c.optim.warmup_epochs, c.optim.label_smoothing) == ("cosine", 1, 0.1)


def test_long_preset_is_the_recommended_recipe_plus_what_the_search_kept():
    long, rec = load_preset("densenet-fashion-mnist-long"), load_preset("densenet-fashion-mnist")
    assert (long.model.name, long.data.resize, long.run.epochs) == ("d2l_densenet", 64, 45)
    assert (long.data.random_crop_padding, long.data.random_erasing) == (4, 0.25)
    assert (long.data.augment, long.data.mixup, long.optim.ema, long.data.val_split) == (None, 0.0, None, None)
    changed = {f"{s}.{k}" for s in ("model", "data", "optim", "run")
               for k, v in vars(getattr(long, s)).items() if v != getattr(getattr(rec, s), k)}
    assert changed == {"data.random_crop_padding", "data.random_erasing", "run.epochs"}


def lr_at(config, epochs):
    from densenet.engine.setup import lr_factor

    return [config.optim.lr * lr_factor(config, e) for e in epochs]


@pytest.mark.parametrize(("name", "dataset", "augmented"), [
    ("densenet-cifar10", "cifar-10", True), ("densenet-cifar100", "cifar-100", True),
    ("densenet-cifar10-noaug", "cifar-10", False), ("densenet-cifar100-noaug", "cifar-100", False),
])
def test_cifar_presets_are_the_papers_recipe(name, dataset, augmented):
    c = load_preset(name)
    assert (c.model.name, c.data.dataset) == ("densenet_bc100_k12", dataset)
    assert (c.data.resize, c.data.normalize) == (None, True)
    assert (c.optim.momentum, c.optim.nesterov, c.optim.weight_decay) == (0.9, True, 1e-4)
    assert (c.run.batch_size, c.run.epochs, c.optim.schedule) == (64, 300, "step")
    # lr 0.1, divided by 10 at 50% and 75% of the 300 epochs
    assert lr_at(c, [0, 149, 150, 224, 225, 299]) == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    if augmented:  # crop with 4-pixel padding and flips, no dropout
        assert (c.data.random_crop_padding, c.data.hflip, c.model.kwargs.get("drop_rate", 0.0)) == (4, True, 0.0)
    else:  # no augmentation: dropout 0.2 instead
        assert (c.data.random_crop_padding, bool(c.data.hflip), c.model.kwargs["drop_rate"]) == (0, False, 0.2)


def test_imagenet_preset_is_the_papers_recipe():
    c = load_preset("densenet121-imagenet")
    assert (c.model.name, c.data.dataset, c.data.resize) == ("densenet121", "image-folder", 224)
    assert (c.run.batch_size, c.run.epochs, c.optim.momentum, c.optim.weight_decay) == (256, 90, 0.9, 1e-4)
    assert lr_at(c, [0, 29, 30, 59, 60, 89]) == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_warmup_ramps_into_the_schedule():
    c = load_preset("densenet-fashion-mnist")  # one warm-up epoch into a cosine over the other nine
    assert c.optim.warmup_epochs == 1
    assert lr_at(c, [0.0, 0.5, 1.0, 5.5, 10.0]) == pytest.approx([0.05, 0.075, 0.1, 0.05, 0.0], abs=1e-12)


@pytest.mark.parametrize("per", ["epoch", "step"])
def test_cosine_schedule_updates_per_epoch_or_per_step(per):
    import torch

    from densenet.engine.setup import build_scheduler

    config = load_preset("d2l-fashion-mnist").replace({"optim.schedule": "cosine", "optim.schedule_per": per,
                                                       "run.epochs": 2})
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = build_scheduler(config, opt, steps_per_epoch=4)
    lrs = []
    for _epoch in range(2):
        for _step in range(4):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if per == "step":
                sched.step()
        if per == "epoch":
            sched.step()
    if per == "epoch":
        assert lrs == pytest.approx([0.1] * 4 + [0.05] * 4)
    else:  # half a cosine over 8 steps
        import math

        assert lrs == pytest.approx([0.05 * (1 + math.cos(math.pi * s / 8)) for s in range(8)])


@pytest.mark.parametrize("override", [
    {"run.batch_size": 0}, {"run.batch_size": -3}, {"run.epochs": 0}, {"optim.lr": 0.0}, {"optim.lr": -0.1},
    {"optim.lr": float("nan")}, {"optim.schedule": "linear"}, {"run.precision": "int8"}, {"data.train_subset": 0},
    {"optim.nesterov": True}, {"optim.schedule_per": "batch"},
])
def test_invalid_values_are_config_errors(override):
    with pytest.raises(ConfigError):
        load_preset("d2l-fashion-mnist").replace(override)


def test_unknown_fields_and_presets_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="unknown configuration field"):
        load_preset("d2l-fashion-mnist").replace({"run.epoch": 3})
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*d2l-fashion-mnist"):
        load_preset("nope")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"run": {"epochz": 1}}))
    with pytest.raises(ConfigError, match="epochz"):
        load_preset(str(bad))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_preset(str(broken))


def test_preset_file_round_trip(tmp_path):
    c = load_preset("d2l-fashion-mnist").replace({"run.epochs": 2, "optim.schedule": "cosine"})
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(c.to_dict()))
    loaded = load_preset(str(path))
    assert loaded.run.epochs == 2 and loaded.optim.schedule == "cosine" and loaded.preset == "mine"


def test_finetune_preset_is_the_issues_recipe():
    c = load_preset("densenet121-finetune")
    assert (c.model.name, c.data.dataset, c.data.resize, c.data.normalize) == ("densenet121", "image-folder", 224, True)
    assert (c.data.rrc_scale, c.data.hflip, c.data.crop_pct, round(224 / c.data.crop_pct)) == (0.35, True, 0.875, 256)
    assert (c.optim.momentum, c.optim.nesterov, c.optim.label_smoothing) == (0.9, True, 0.1)
    assert (c.optim.backbone_lr_scale, c.optim.decay_bn_bias, c.run.epochs, c.run.batch_size) == (0.1, False, 15, 32)
    # lr 0.01 after one warm-up epoch, then cosine to zero over the other 14
    assert lr_at(c, [0, 1, 8, 15]) == pytest.approx([0.005, 0.01, 0.005, 0.0], abs=1e-12)

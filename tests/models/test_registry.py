"""The model registry: names, metadata as data, duplicate names, unknown names and arguments."""

from __future__ import annotations

import pytest
import torch

import densenet
from densenet.errors import ConfigError
from densenet.models import registry
from densenet.models.registry import create_model, list_models, model_info, register_model

INTERFACE_NAMES = ["d2l_densenet", "d2l_resnet18", "densenet121", "densenet161", "densenet169", "densenet201",
                   "densenet264", "densenet40_k12", "densenet100_k12", "densenet100_k24", "densenet_bc100_k12",
                   "densenet_bc250_k24", "densenet_bc190_k40", "resnet18", "resnet34", "resnet50", "resnet20",
                   "resnet56", "resnet110"]


def test_interface_names_are_registered() -> None:
    assert set(INTERFACE_NAMES) <= set(densenet.list_models())
    assert densenet.list_models() == sorted(densenet.list_models())


def test_list_models_pattern() -> None:
    assert list_models("densenet_bc*") == ["densenet_bc100_k12", "densenet_bc190_k40", "densenet_bc250_k24"]
    assert list_models("resnet?0") == ["resnet20", "resnet50"]
    assert list_models("nothing*") == []


@pytest.mark.parametrize("name", list_models())
def test_entries_carry_their_metadata(name: str) -> None:
    info = model_info(name)
    assert info.name == name and info.source and info.family in ("densenet", "resnet")
    assert len(info.input_size) == 3 and info.num_classes >= 1 and info.defaults


def test_registering_a_name_twice_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    meta = dict(input_size=(3, 32, 32), num_classes=10, params=None, source="test", family="densenet")
    with pytest.raises(ValueError, match="'d2l_densenet' is registered twice"):
        register_model("d2l_densenet", **meta)(lambda **kw: None)
    register_model("a_test_model", **meta)(lambda **kw: None)
    with pytest.raises(ValueError, match="registered twice"):
        register_model("a_test_model", **meta)(lambda **kw: None)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ConfigError, match="unknown model 'densenet12'.*Did you mean.*densenet121"):
        create_model("densenet12")


def test_unknown_argument_is_named() -> None:
    with pytest.raises(ConfigError, match="'resnet18' does not take argument.*memory_efficient"):
        create_model("resnet18", memory_efficient=True)


def test_defaults_record_the_architecture() -> None:
    assert model_info("densenet121").defaults == dict(growth_rate=32, block_config=(6, 12, 24, 16),
                                                      num_init_features=64, bn_size=4, compression=0.5,
                                                      stem="imagenet")
    assert model_info("resnet56").defaults["layers"] == (9, 9, 9)


@pytest.mark.parametrize("name", densenet.list_models())
def test_every_model_takes_every_init_the_config_offers(name):
    from typing import get_args

    from densenet.engine.config import Init
    from densenet.models.common import INITS

    assert set(get_args(Init)) == {*INITS, "builder"}  # one vocabulary: the models' own, plus "their default"
    for init in INITS:
        with torch.device("meta"):
            densenet.create_model(name, init=init)


def test_xavier_is_the_textbooks_init_after_the_module_defaults():
    from densenet.models.common import xavier_init

    torch.manual_seed(3)
    textbook = densenet.create_model("d2l_densenet", init="pytorch")
    xavier_init(textbook)  # d2l's train_ch6: net.apply(init_weights) on a freshly built net
    torch.manual_seed(3)
    built = densenet.create_model("d2l_densenet", init="xavier")
    a, b = textbook.state_dict(), built.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    conv = built.features.conv0.weight
    bound = (6 / (conv.shape[1] * 49 + conv.shape[0] * 49)) ** 0.5
    assert conv.abs().max() <= bound and conv.abs().max() > 0.9 * bound

"""torchvision compatibility: state_dict keys as stored data, and loading current and legacy checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from densenet.models import convert_legacy_keys, create_model, load_torchvision_state_dict
from tests.models.zoo_helpers import meta_model

DATA = Path(__file__).parent / "data"
TORCHVISION_NAMES = ["densenet121", "densenet161", "densenet169", "densenet201", "resnet18", "resnet34", "resnet50"]


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_state_dict_keys_are_torchvisions(name: str) -> None:
    expected = json.loads((DATA / f"{name}_keys.json").read_text())
    assert list(meta_model(name).state_dict()) == expected["keys"]
    assert expected["num_keys"] == len(expected["keys"])


def _to_legacy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename keys the way torchvision's first DenseNet checkpoints had them; drop num_batches_tracked."""
    legacy = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        for module in ("norm", "relu", "conv"):
            for index in ("1", "2"):
                key = key.replace(f".{module}{index}.", f".{module}.{index}.") if ".denselayer" in key else key
        legacy[key] = value
    return legacy


@pytest.mark.parametrize("name", ["densenet121", "densenet_bc100_k12"])
def test_loading_a_legacy_checkpoint_gives_identical_outputs(name: str) -> None:
    torch.manual_seed(0)
    source = create_model(name)
    with torch.no_grad():  # make the BN statistics non-trivial so that loading them matters
        source.train()(torch.randn(4, 3, 32, 32))
    legacy = _to_legacy(source.state_dict())
    assert "features.denseblock1.denselayer1.norm.1.running_mean" in legacy
    assert "features.denseblock1.denselayer1.conv.2.weight" in legacy

    torch.manual_seed(1)
    target = create_model(name)
    load_torchvision_state_dict(target, legacy)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target.eval()(x), source.eval()(x), rtol=0, atol=0)


def test_loading_a_current_checkpoint() -> None:
    torch.manual_seed(0)
    source, target = create_model("resnet18"), create_model("resnet18")
    load_torchvision_state_dict(target, source.state_dict())
    for (k, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), k


def test_convert_legacy_keys() -> None:
    t = torch.zeros(1)
    converted = convert_legacy_keys({
        "features.denseblock2.denselayer10.norm.2.running_var": t,
        "features.denseblock1.denselayer1.conv.1.weight": t,
        "features.transition1.norm.weight": t,  # not a dense layer: unchanged
        "features.norm5.bias": t,
    })
    assert list(converted) == ["features.denseblock2.denselayer10.norm2.running_var",
                               "features.denseblock1.denselayer1.conv1.weight",
                               "features.transition1.norm.weight", "features.norm5.bias"]


def test_a_checkpoint_for_another_model_is_refused_clearly() -> None:
    model = meta_model("densenet121")
    refused = r"missing keys \(606\): features.conv0.weight.*unexpected keys \(122\): conv1.weight"
    with pytest.raises(ValueError, match=refused):
        load_torchvision_state_dict(model, meta_model("resnet18").state_dict())
    with pytest.raises(ValueError, match=r"classifier.weight: checkpoint \(10, 1024\) vs model \(1000, 1024\)"):
        load_torchvision_state_dict(model, meta_model("densenet121", num_classes=10).state_dict())

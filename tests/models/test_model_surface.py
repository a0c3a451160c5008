"""Every registered model: pinned parameter count, forward shapes and the common model surface."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from densenet.models import create_model, list_models, model_info
from tests.models.zoo_helpers import meta_model, small_input_size

ALL = list_models()


@pytest.mark.parametrize("name", ALL)
def test_parameter_count_matches_registry(name: str) -> None:
    info = model_info(name)
    assert info.params is not None, f"{name} has no pinned parameter count"
    assert sum(p.numel() for p in meta_model(name).parameters()) == info.params


@pytest.mark.parametrize("name", ALL)
def test_arguments_reach_the_model(name: str) -> None:
    model = meta_model(name, in_channels=2, num_classes=7)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    last_linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert first_conv.in_channels == 2 and last_linear.out_features == 7 and model.num_classes == 7


@pytest.mark.parametrize("name", ALL)
def test_model_surface(name: str) -> None:
    torch.manual_seed(0)
    info = model_info(name)
    model = create_model(name).eval()
    x = torch.randn(2, *small_input_size(name))
    with torch.no_grad():
        logits = model(x)
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        staged = x
        for _, stage in model.stages():
            staged = stage(staged)
        assert logits.shape == (2, info.num_classes)
        assert features.dim() == 4 and features.shape[:2] == (2, model.num_features)
        assert pooled.shape == (2, model.num_features)
        torch.testing.assert_close(model.forward_head(features), logits)
        torch.testing.assert_close(staged, logits)  # stages() composes to the full forward
        model.reset_classifier(3)
        assert model(x).shape == (2, 3) and model.num_classes == 3
        torch.testing.assert_close(model.forward_head(features, pre_logits=True), pooled)  # trunk untouched
    with pytest.raises(ValueError, match="num_classes"):
        model.reset_classifier(0)

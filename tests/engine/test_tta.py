"""Flip test-time augmentation: the mean of the two passes' probabilities, and a no-op on a mirror-symmetric model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from densenet.engine.evaluate import evaluate
from densenet.engine.tta import check_tta, probabilities
from densenet.errors import ConfigError

X = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(2))
LABELS = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
MULTI = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]] * 2, dtype=torch.float32)


def head(num_classes: int = 3) -> nn.Module:
    """Sees every position (no pooling), so a picture and its mirror image get different logits."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, num_classes))


class Symmetric(nn.Module):
    """f(x) + f(mirror x): the same logits, bit for bit, for a picture and its mirror image (a + b == b + a)."""

    def __init__(self) -> None:
        super().__init__()
        self.f = head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x) + self.f(x.flip(-1))


@pytest.mark.parametrize("multilabel", [False, True])
def test_flip_averages_the_probabilities_of_the_two_passes(multilabel: bool) -> None:
    model = head().eval()
    with torch.no_grad():
        plain, mirrored = model(X), model(X.flip(-1))
        act = torch.sigmoid if multilabel else (lambda z: torch.softmax(z, 1))
        expected = (act(plain) + act(mirrored)) / 2
        got = probabilities(model, X, multilabel=multilabel, tta="flip")
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(act(plain), expected, atol=1e-3)  # the mirror image really changed the answer


def test_the_loss_with_flip_is_that_of_the_averaged_probabilities() -> None:
    model = head()
    with torch.no_grad():
        p = (torch.softmax(model(X), 1) + torch.softmax(model(X.flip(-1)), 1)) / 2
        q = (torch.sigmoid(model(X)) + torch.sigmoid(model(X.flip(-1)))) / 2
    single = evaluate(model, [(X, LABELS)], 3, tta="flip")
    assert math.isclose(single["loss"], -p[torch.arange(8), LABELS].log().mean().item(), rel_tol=1e-5)
    multi = evaluate(model, [(X, MULTI)], 3, multilabel=True, tta="flip")
    bce = -(MULTI * q.log() + (1 - MULTI) * (1 - q).log()).mean().item()
    assert math.isclose(multi["loss"], bce, rel_tol=1e-5)


@pytest.mark.parametrize("multilabel", [False, True])
def test_a_mirror_symmetric_model_gives_the_same_results_with_and_without_flip(multilabel: bool) -> None:
    model, y = Symmetric(), MULTI if multilabel else LABELS
    batches = [(X[:5], y[:5]), (X[5:], y[5:])]
    plain = evaluate(model, batches, 3, multilabel=multilabel)
    flipped = evaluate(model, batches, 3, multilabel=multilabel, tta="flip")
    assert flipped.keys() == plain.keys()
    for key, value in plain.items():  # lists (the confusion matrix, undefined classes) and None exactly
        exact = isinstance(value, list) or value is None
        assert flipped[key] == (value if exact else pytest.approx(value, rel=1e-5)), key


def test_an_unknown_augmentation_is_refused_with_the_choices() -> None:
    check_tta(None)
    with pytest.raises(ConfigError, match="--tta must be one of flip"):
        check_tta("rotate")

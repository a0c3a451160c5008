"""The run's task: the loss (class weights, positive weights), what a batch counts, and the headline metric."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from densenet.engine import evaluate as evaluate_module
from densenet.engine.config import TrainConfig
from densenet.engine.task import make_task, positive_weights


def task(targets: torch.Tensor, **overrides):
    lines: list[str] = []
    return make_task(TrainConfig().replace(overrides), targets, 3, torch.device("cpu"), lines.append), lines


def test_positive_weights_are_negatives_over_positives():
    targets = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=torch.float32)
    assert positive_weights(targets).tolist() == pytest.approx([1 / 3, 3.0, 1.0])  # no positive: weight 1


def test_multi_label_loss_is_bce_with_logits_and_pos_weight_auto_weighs_positives():
    targets = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=torch.float32)
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    plain, _ = task(targets)
    assert plain.multilabel and plain.headline == "test_mean_auroc"
    assert plain.loss(logits, targets) == pytest.approx(F.binary_cross_entropy_with_logits(logits, targets).item())
    weighted, lines = task(targets, **{"optim.pos_weight": "auto"})
    # by hand: -mean(w * y * log(sigmoid(z)) + (1 - y) * log(1 - sigmoid(z))) with w = (1/3, 3, 3)
    w = torch.tensor([1 / 3, 3.0, 3.0])
    p = torch.sigmoid(logits)
    expected = -(w * targets * p.log() + (1 - targets) * (1 - p).log()).mean()
    assert weighted.loss(logits, targets) == pytest.approx(expected.item(), rel=1e-5)
    assert lines == ["loss: BCE with logits, positives weighed by negatives/positives per class: 0.33, 3.00, 3.00"]
    assert weighted.correct(logits, targets).item() == 0  # no train accuracy for multi-label runs


def test_class_weights_auto_weighs_cross_entropy_by_inverse_frequency():
    targets = torch.tensor([0, 0, 0, 0, 1, 2])
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    weighted, lines = task(targets, **{"optim.class_weights": "auto"})
    weight = torch.tensor([6 / 12, 6 / 3, 6 / 3])
    assert weighted.loss(logits, targets) == pytest.approx(F.cross_entropy(logits, targets, weight=weight).item())
    assert lines == ["loss: cross-entropy weighed by inverse class frequency: 0.50, 2.00, 2.00"]
    assert not weighted.multilabel and weighted.headline == "test_acc"
    assert weighted.correct(logits, targets).item() == (logits.argmax(1) == targets).sum().item()


def test_label_smoothing_still_applies_to_single_label_runs():
    targets = torch.tensor([0, 1, 2])
    logits = torch.randn(3, 3, generator=torch.Generator().manual_seed(2))
    smoothed, _ = task(targets, **{"optim.label_smoothing": 0.1})
    assert smoothed.loss(logits, targets) == pytest.approx(F.cross_entropy(logits, targets, label_smoothing=0.1).item())


def test_top5_accuracy_is_a_test_column_where_there_are_at_least_5_classes():
    task = make_task(TrainConfig(), torch.tensor([0, 1, 2]), 10, torch.device("cpu"), lambda _m: None)
    probs = torch.tensor([[0.5, 0.2, 0.1, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01, 0.0]] * 2)  # top-5: classes 0-4
    metrics = evaluate_module.summarize(evaluate_module.Outputs(probs, torch.tensor([4, 5]), 0.5),
                                        [str(i) for i in range(10)])
    assert task.test_columns(metrics) == {"test_acc": 0.0, "test_loss": 0.5, "test_top5_acc": 0.5}
    three = evaluate_module.summarize(evaluate_module.Outputs(torch.eye(3)[:2], torch.tensor([0, 2]), 0.1),
                                      ["a", "b", "c"])
    assert task.test_columns(three) == {"test_acc": 0.5, "test_loss": 0.1}

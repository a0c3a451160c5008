"""Metrics against numbers worked out by hand on tiny tensors: AUROC as the Mann-Whitney fraction of correctly
ordered (positive, negative) pairs, AP as the mean precision at each positive, F1, top-5 and the calibration error."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from densenet.engine.metrics import headline, multilabel_metrics, roc_curves, single_label_metrics

CLASSES = ["perfect", "reversed", "mixed", "none", "all"]
# Six pictures, three positives then three negatives for the first three classes.
SCORES = torch.tensor([
    [0.9, 0.1, 0.9, 0.5, 0.5],
    [0.8, 0.2, 0.6, 0.4, 0.4],
    [0.7, 0.3, 0.3, 0.3, 0.6],
    [0.3, 0.7, 0.7, 0.2, 0.7],
    [0.2, 0.8, 0.4, 0.6, 0.2],
    [0.1, 0.9, 0.1, 0.7, 0.1],
])
TARGETS = torch.tensor([[1, 1, 1, 0, 1]] * 3 + [[0, 0, 0, 0, 1]] * 3, dtype=torch.float32)


@pytest.fixture(scope="module")
def multi() -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # undefined classes are skipped, not computed with torchmetrics' warning
        return multilabel_metrics(SCORES, TARGETS, CLASSES)


def test_auroc_is_the_fraction_of_correctly_ordered_pairs(multi):
    # mixed: positives 0.9, 0.6, 0.3 against negatives 0.7, 0.4, 0.1: 3 + 2 + 1 of 9 pairs in order.
    assert multi["auroc"] == pytest.approx({"perfect": 1.0, "reversed": 0.0, "mixed": 6 / 9, "none": None,
                                            "all": None})
    assert multi["mean_auroc"] == pytest.approx((1 + 0 + 6 / 9) / 3)
    assert multi["undefined"] == ["none", "all"]


def test_average_precision_is_the_mean_precision_at_each_positive(multi):
    # mixed, ranked: P N P N P N: precisions 1/1, 2/3, 3/5; reversed: N N N P P P: 1/4, 2/5, 3/6.
    mixed, reversed_ = (1 + 2 / 3 + 3 / 5) / 3, (1 / 4 + 2 / 5 + 3 / 6) / 3
    assert multi["average_precision"] == pytest.approx({"perfect": 1.0, "reversed": reversed_, "mixed": mixed,
                                                        "none": None, "all": None})
    assert multi["map"] == pytest.approx((1 + reversed_ + mixed) / 3)


def test_f1_at_one_half_and_at_each_classs_best_threshold(multi):
    # At 0.5: perfect 1; reversed 0 (its three predicted positives are negatives); mixed TP 2, FP 1, FN 1: 2/3.
    assert multi["f1_at_0.5"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    # Best: perfect 1 at 0.7; reversed 2/3 (all positive, precision 1/2) at 0.1; mixed 3/4 (TP 3, FP 2) at 0.3.
    assert multi["thresholds"] == pytest.approx({"perfect": 0.7, "reversed": 0.1, "mixed": 0.3, "none": None,
                                                 "all": None})
    assert multi["f1_best"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert headline(multi, multilabel=True) == multi["mean_auroc"]


def test_a_set_where_no_class_is_defined_gives_none_and_strict_json():
    result = multilabel_metrics(SCORES[:, 3:], TARGETS[:, 3:], ["none", "all"])
    assert result["mean_auroc"] is result["map"] is result["f1_best"] is result["f1_at_0.5"] is None
    assert headline(result, multilabel=True) == 0.0
    json.dumps(result, allow_nan=False)  # raises on NaN or infinity


# Four pictures, six classes: top-1 right, 2nd, last (a top-5 miss), top-1 right.
PROBS = torch.tensor([
    [0.55, 0.09, 0.09, 0.09, 0.09, 0.09],
    [0.45, 0.30, 0.10, 0.05, 0.05, 0.05],
    [0.35, 0.25, 0.00, 0.20, 0.12, 0.08],
    [0.05, 0.05, 0.05, 0.75, 0.05, 0.05],
])
LABELS = torch.tensor([0, 1, 2, 3])


def test_single_label_accuracy_top5_macro_f1_and_calibration():
    result = single_label_metrics(PROBS, LABELS, list("abcdef"))
    assert result["accuracy"] == 0.5 and result["top5_accuracy"] == 0.75
    # Classes seen (0-3): F1 of a is 1/2 (TP 1, FP 2), b and c 0, d 1; e and f never occur and do not count.
    assert result["macro_f1"] == pytest.approx(1.5 / 4)
    # One confidence per bin: |0.55 - 1| + |0.45 - 0| + |0.35 - 0| + |0.75 - 1|, over 4 pictures.
    assert result["ece"] == pytest.approx((0.45 + 0.45 + 0.35 + 0.25) / 4)
    assert result["confusion_matrix"][:4] == [[1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0],
                                              [0, 0, 0, 1, 0, 0]]
    assert headline(result, multilabel=False) == 0.5
    json.dumps(result, allow_nan=False)


def test_top5_is_none_below_five_classes_and_an_empty_set_is_json_safe():
    probs = torch.softmax(torch.randn(5, 3, generator=torch.Generator().manual_seed(0)), 1)
    assert single_label_metrics(probs, torch.tensor([0, 1, 2, 0, 1]), list("abc"))["top5_accuracy"] is None
    empty = single_label_metrics(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64), list("abc"))
    assert empty["accuracy"] == 0.0 and empty["confusion_matrix"] == [[0] * 3] * 3
    json.dumps(empty, allow_nan=False)


def test_roc_curves_of_the_defined_classes_enclose_their_auroc(multi):
    curves = roc_curves(SCORES, TARGETS, CLASSES, multilabel=True)
    assert list(curves) == ["perfect", "reversed", "mixed"]
    for name, (fpr, tpr) in curves.items():
        assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0
        area = torch.trapezoid(torch.tensor(tpr), torch.tensor(fpr)).item()
        assert math.isclose(area, multi["auroc"][name], abs_tol=1e-6)


def test_roc_curves_of_a_single_label_run_only_for_two_classes():
    probs = torch.tensor([[0.1, 0.9], [0.4, 0.6], [0.7, 0.3], [0.8, 0.2]])
    curves = roc_curves(probs, torch.tensor([1, 0, 1, 0]), ["cat", "dog"], multilabel=False)
    (fpr, tpr), = curves.values()
    # The dogs (label 1) score 0.9 and 0.3 on class dog, the cats 0.6 and 0.2: 3 of 4 pairs in order.
    assert list(curves) == ["dog"] and torch.trapezoid(torch.tensor(tpr), torch.tensor(fpr)).item() == 0.75
    assert roc_curves(probs, torch.tensor([1, 1, 1, 1]), ["cat", "dog"], multilabel=False) == {}
    assert roc_curves(torch.full((2, 3), 1 / 3), torch.tensor([0, 2]), list("abc"), multilabel=False) == {}

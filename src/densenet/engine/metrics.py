"""The numbers a test set gives: from the whole set's probabilities and targets to JSON-safe metrics.

Single-label runs (softmax) get accuracy, top-5 accuracy, macro F1, the expected calibration error and
the confusion matrix; multi-label runs (one sigmoid per class) get per-class AUROC and average precision,
their means, and F1 at 0.5 and at each class's best threshold.

Why torchmetrics' functional API: AUROC, average precision, precision-recall curves, calibration error
and top-k accuracy each have tie and edge-case conventions (tied scores, the curve's end points, the
binning of confidences) that are easy to get subtly wrong by hand; torchmetrics implements them on
tensors (on any device, no NumPy round trip), with scikit-learn's definitions of AUROC and average
precision. It is light: it needs only ``numpy``, ``packaging``, ``torch`` and ``lightning-utilities`` (a
small helper package of the Lightning project; it pulls neither ``lightning`` nor ``torchvision``). Only the stateless
functional API is used: the distributed gathering is ours (:func:`densenet.engine.distributed.gather_rows`),
so every rank computes the same numbers from the same tensors.

Undefined values are ``None``, never NaN, so that every result can be written as strict JSON: a class
without both positive and negative examples in the evaluated set has no AUROC (nor, for consistency,
an average precision or best threshold), and the means and macro F1 scores are over the classes that
have one (listed by name in ``undefined`` otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    binary_roc,
    multiclass_accuracy,
    multiclass_calibration_error,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multilabel_auroc,
    multilabel_average_precision,
    multilabel_f1_score,
    multilabel_precision_recall_curve,
)

HEADLINE_SINGLE = "accuracy"  # the metric that picks the best epoch of a single-label run
HEADLINE_MULTI = "mean_auroc"  # and of a multi-label run
ECE_BINS = 15  # equal-width confidence bins of the expected calibration error (Guo et al., 2017)
TOP_K = 5


def single_label_metrics(probs: Tensor, targets: Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics of softmax probabilities against one class per example.

    Args:
        probs: ``(N, C)`` probabilities, each row summing to 1.
        targets: ``(N,)`` int64 class indices.
        classes: The ``C`` class names.

    Returns:
        ``{"accuracy", "top5_accuracy", "macro_f1", "ece", "confusion_matrix"}``. ``top5_accuracy`` is
        ``None`` with fewer than 5 classes; ``macro_f1`` averages the classes that occur as a target or a
        prediction; ``ece`` is the L1 expected calibration error over 15 bins of the top-1 confidence;
        the matrix is rows = true class, columns = predicted class (the argmax). With no examples,
        accuracy is 0.0 and the other numbers are ``None``.
    """
    n, c = len(targets), len(classes)
    if n == 0:
        return {"accuracy": 0.0, "top5_accuracy": None, "macro_f1": None, "ece": None,
                "confusion_matrix": [[0] * c for _ in range(c)]}
    probs = probs.float()
    confusion = multiclass_confusion_matrix(probs, targets, c)  # (C, C), rows: true class
    return {
        "accuracy": confusion.diagonal().sum().item() / n,
        "top5_accuracy": (multiclass_accuracy(probs, targets, c, top_k=TOP_K, average="micro").item()
                          if c >= TOP_K else None),
        "macro_f1": multiclass_f1_score(probs, targets, c, average="macro").item(),
        "ece": multiclass_calibration_error(probs, targets, c, n_bins=ECE_BINS, norm="l1").item(),
        "confusion_matrix": confusion.long().tolist(),
    }


def defined_classes(targets: Tensor) -> Tensor:
    """``(C,)`` bool: the classes of ``(N, C)`` 0/1 targets with at least one positive and one negative."""
    positives = (targets > 0.5).sum(0)
    return (positives > 0) & (positives < len(targets))


def multilabel_metrics(probs: Tensor, targets: Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics of independent per-class (sigmoid) probabilities against 0/1 targets.

    Args:
        probs: ``(N, C)`` probabilities, each in [0, 1].
        targets: ``(N, C)`` float 0/1 targets.
        classes: The ``C`` class names.

    Returns:
        ``{"auroc", "mean_auroc", "average_precision", "map", "f1_at_0.5", "f1_best", "thresholds",
        "undefined"}``. ``auroc``, ``average_precision`` and ``thresholds`` map each class name to a float,
        or to ``None`` for a class without both positives and negatives here (those are listed in
        ``undefined``). ``mean_auroc``, ``map``, ``f1_at_0.5`` and ``f1_best`` are means over the defined
        classes (``None`` if there is none): ``f1_best`` is each class's F1 at its own best threshold, and
        ``thresholds[class]`` is that threshold (predict positive when the probability is >= it).
    """
    names = list(classes)
    defined = defined_classes(targets)
    index = defined.nonzero().flatten().tolist()
    auroc: dict[str, float | None] = dict.fromkeys(names)
    ap: dict[str, float | None] = dict.fromkeys(names)
    thresholds: dict[str, float | None] = dict.fromkeys(names)
    f1_half: list[float] = []
    f1_best: list[float] = []
    if index:
        p, t = probs[:, index].float(), (targets[:, index] > 0.5).long()  # (N, K) over the K defined classes
        k = len(index)
        for i, a, b in zip(index, multilabel_auroc(p, t, k, average="none").tolist(),
                           multilabel_average_precision(p, t, k, average="none").tolist()):
            auroc[names[i]], ap[names[i]] = a, b
        f1_half = multilabel_f1_score(p, t, k, threshold=0.5, average="none").tolist()
        for i, (best, threshold) in zip(index, _best_f1(p, t)):
            thresholds[names[i]] = threshold
            f1_best.append(best)
    return {
        "auroc": auroc,
        "mean_auroc": _mean([auroc[names[i]] for i in index]),
        "average_precision": ap,
        "map": _mean([ap[names[i]] for i in index]),
        "f1_at_0.5": _mean(f1_half),
        "f1_best": _mean(f1_best),
        "thresholds": thresholds,
        "undefined": [name for name, ok in zip(names, defined.tolist()) if not ok],
    }


def _best_f1(probs: Tensor, targets: Tensor) -> list[tuple[float, float]]:
    """Each column's highest F1 over all thresholds, and the (lowest) threshold reaching it."""
    precision, recall, thresholds = multilabel_precision_recall_curve(probs, targets, probs.shape[1])
    out = []
    for p, r, t in zip(precision, recall, thresholds):
        p, r = p[:-1], r[:-1]  # the curve's last point (precision 1, recall 0) has no threshold
        f1 = torch.where(p + r > 0, 2 * p * r / (p + r).clamp_min(1e-12), torch.zeros_like(p))
        best = int(f1.argmax())
        out.append((f1[best].item(), t[best].item()))
    return out


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def headline(result: dict[str, Any], multilabel: bool) -> float:
    """The one number that ranks epochs and runs: accuracy, or mean AUROC for multi-label runs.

    A mean AUROC that is undefined (no class has both positives and negatives in the test set) counts
    as 0.0, as the accuracy of an empty test set does, so that the result stays a comparable float.
    """
    value = result[HEADLINE_MULTI if multilabel else HEADLINE_SINGLE]
    return 0.0 if value is None else float(value)


def roc_curves(probs: Tensor, targets: Tensor, classes: Sequence[str],
               multilabel: bool) -> dict[str, tuple[list[float], list[float]]]:
    """ROC curve points, ``{class: (false positive rates, true positive rates)}``, for plotting.

    Multi-label: every class with both positives and negatives. Single-label: only a two-class run has
    one curve, for its positive class (index 1, scored by its probability); other single-label runs
    give ``{}``, as does a binary set that lacks one of the classes.

    Args:
        probs: ``(N, C)`` probabilities.
        targets: ``(N, C)`` float 0/1 targets (multi-label) or ``(N,)`` int64 class indices.
        classes: The ``C`` class names.
        multilabel: Which of the two the targets are.

    Returns:
        ``{class name: (fpr, tpr)}``, two lists of floats from (0, 0) to (1, 1); the area under them is the
        class's AUROC.
    """
    if multilabel:
        scores, truth, names = probs.float(), (targets > 0.5).long(), list(classes)  # (N, C)
    elif len(classes) == 2:
        scores, truth, names = probs[:, 1:].float(), (targets == 1).long().unsqueeze(1), [classes[1]]  # (N, 1)
    else:
        return {}
    curves = {}
    for i in defined_classes(truth).nonzero().flatten().tolist():
        fpr, tpr, _ = binary_roc(scores[:, i], truth[:, i])
        curves[names[i]] = (fpr.tolist(), tpr.tolist())
    return curves

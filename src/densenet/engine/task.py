"""What a run predicts: one class per picture (softmax, cross-entropy, accuracy) or several (sigmoid,
BCE-with-logits, mean AUROC). :class:`Task` owns the loss, what a training batch counts, the test columns of
``metrics.jsonl`` and the headline metric that picks ``best.pt``. Under Mixup/CutMix the same cross-entropy
takes the mixed probability targets (:mod:`densenet.engine.mix`), and no train accuracy is counted.

``--class-weights auto`` weighs cross-entropy by inverse class frequency on the training split
(:func:`densenet.data.samplers.inverse_frequency`); ``--pos-weight auto`` gives each multi-label class's positives
the weight negatives / positives of the training split, as ``BCEWithLogitsLoss(pos_weight=...)`` defines it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from densenet.data.samplers import inverse_frequency
from densenet.engine.config import TrainConfig

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def positive_weights(targets: torch.Tensor) -> torch.Tensor:
    """Per class, negatives / positives over ``targets`` (N, C) in {0, 1}; 1 for a class without positives (it has
    nothing to up-weight) — the caller warns about such classes."""
    positives = targets.sum(0).double()
    negatives = targets.shape[0] - positives
    return torch.where(positives > 0, negatives / positives.clamp(min=1), torch.ones_like(positives)).float()


def make_loss(config: TrainConfig, train_targets: torch.Tensor, num_classes: int, device: torch.device,
              log: Callable[[str], None]) -> LossFn:
    """The loss ``loss(logits, targets)`` of a run whose training targets are ``train_targets``: (N,) int64
    classes, or (N, C) float 0/1 rows for a multi-label run."""
    o = config.optim
    if train_targets.dim() == 2:
        pos_weight = None
        if o.pos_weight == "auto":
            pos_weight = positive_weights(train_targets)
            log("loss: BCE with logits, positives weighed by negatives/positives per class: "
                + ", ".join(f"{w:.2f}" for w in pos_weight.tolist()))
            pos_weight = pos_weight.to(device)
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight)
    weight = None
    if o.class_weights == "auto":
        weight = inverse_frequency(train_targets, num_classes)
        log("loss: cross-entropy weighed by inverse class frequency: " + ", ".join(f"{w:.2f}" for w in weight.tolist()))
        weight = weight.to(device)
    smoothing = o.label_smoothing
    return lambda logits, y: F.cross_entropy(logits, y, weight=weight, label_smoothing=smoothing)


@dataclass
class Task:
    """The single-label or multi-label side of a run.

    Attributes:
        multilabel: Several labels per picture.
        loss: ``loss(logits, targets)`` in fp32.
    """

    multilabel: bool
    loss: LossFn
    mixed: bool = False  # Mixup/CutMix: the targets the loss sees are soft (densenet.engine.mix)
    evaluated: str = "test"  # what the log calls the split evaluated each epoch: "test", or "val" (--val-split)

    @property
    def train_accuracy(self) -> bool:
        """Whether a train accuracy is defined: not for several labels per picture, nor for mixed pictures."""
        return not (self.multilabel or self.mixed)

    @property
    def headline(self) -> str:
        """The ``metrics.jsonl`` column that selects ``best.pt``: test accuracy, or the test set's mean AUROC."""
        return "test_mean_auroc" if self.multilabel else "test_acc"

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Correct top-1 predictions in a batch; 0 where a train accuracy is not defined (:attr:`train_accuracy`)."""
        if not self.train_accuracy:
            return torch.zeros((), device=logits.device)
        return (logits.argmax(1) == y).sum()

    def test_columns(self, result: dict[str, Any]) -> dict[str, Any]:
        """The test columns of a ``metrics.jsonl`` row, from :func:`densenet.engine.evaluate.evaluate`'s result."""
        if self.multilabel:
            return {"test_mean_auroc": result["mean_auroc"], "test_map": result["map"], "test_loss": result["loss"]}
        top5 = {"test_top5_acc": result["top5_accuracy"]} if result.get("top5_accuracy") is not None else {}
        return {"test_acc": result["accuracy"], "test_loss": result["loss"], **top5}  # top-5: with >= 5 classes

    def describe(self, row: dict[str, Any]) -> str:
        """The epoch's figures for the log line."""
        if self.multilabel:
            return (f"loss {row['loss']:.3f}, {self.evaluated} mean AUROC {_figure(row['test_mean_auroc'])}, "
                    f"{self.evaluated} mAP {_figure(row['test_map'])}")
        train = "" if row["train_acc"] is None else f", train acc {row['train_acc']:.3f}"
        return f"loss {row['loss']:.3f}{train}, {self.evaluated} acc {row['test_acc']:.3f}"


def _figure(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def make_task(config: TrainConfig, train_targets: torch.Tensor, num_classes: int, device: torch.device,
              log: Callable[[str], None]) -> Task:
    """The run's :class:`Task`, with its loss (see :func:`make_loss`)."""
    return Task(train_targets.dim() == 2, make_loss(config, train_targets, num_classes, device, log),
                mixed=config.data.mixing, evaluated="test" if config.data.val_split is None else "val")

"""Evaluation: a model on labelled batches (the trainer's test pass), and a finished run on its test set.

:func:`gather_outputs` runs the model over the batches and gathers the whole set's probabilities,
targets and loss across DDP ranks, once; :func:`summarize` turns them into metrics
(:mod:`~densenet.engine.metrics`); :func:`evaluate` is the two together, the trainer's call.
:func:`evaluate_run` is what ``densenet evaluate RUN_DIR`` calls: the run's model on its test set,
with its files (``evaluation.json``, ``confusion_matrix.png``, ``roc_curves.png``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densenet.engine.data import EVALUATED_SPLITS, evaluation_loader
from densenet.engine.distributed import DistContext, gather_rows
from densenet.engine.logging import plot_confusion, plot_roc_curves
from densenet.engine.metrics import multilabel_metrics, roc_curves, single_label_metrics
from densenet.engine.tta import check_tta, to_probabilities, tta_logits
from densenet.errors import ConfigError, DataError
from densenet.rundir import CONFUSION_PNG, EVALUATION_FILE, ROC_PNG, ModelCard, load, read_card, read_config, write_json


@dataclasses.dataclass
class Outputs:
    """The whole evaluated set, on every rank: what the metrics are computed from."""

    probs: Tensor  # (N, C) float32: softmax, or one sigmoid per class (multi-label)
    targets: Tensor  # (N,) int64 class indices, or (N, C) float 0/1 (multi-label)
    loss: float  # mean cross-entropy per example, or mean BCE per example and class (multi-label)

    @property
    def examples(self) -> int:
        return len(self.targets)


@torch.no_grad()
def gather_outputs(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    num_classes: int,
    *,
    autocast: contextlib.AbstractContextManager | None = None,
    ctx: DistContext | None = None,
    multilabel: bool = False,
    tta: str | None = None,
) -> Outputs:
    """Run ``model`` in eval mode over ``batches``; gather probabilities, targets and loss of the whole set.

    Under DDP each rank passes its own shard (disjoint, lengths may differ); the per-example rows are
    gathered once, in rank order, so every rank holds the whole set. See :func:`evaluate` for the arguments.
    """
    check_tta(tta)
    was_training = model.training
    model.eval()
    try:
        rows = [_rows(model, x, y, num_classes, autocast=autocast, multilabel=multilabel, tta=tta) for x, y in batches]
    finally:
        model.train(was_training)
    target_width = num_classes if multilabel else 1
    if rows:
        packed = torch.cat(rows)
    else:
        device = next(model.parameters(), torch.zeros(0)).device  # an exported model's runtime holds no parameters
        packed = torch.zeros(0, num_classes + 1 + target_width, device=device)
    if ctx is not None:
        packed = gather_rows(packed, ctx)
    probs, loss, targets = packed.split([num_classes, 1, target_width], dim=1)
    n = len(packed)
    return Outputs(probs, targets if multilabel else targets.squeeze(1).long(),
                   loss.double().sum().item() / max(n * (num_classes if multilabel else 1), 1))


def _rows(model: nn.Module, x: Tensor, y: Tensor, num_classes: int, *, autocast: Any, multilabel: bool,
          tta: str | None) -> Tensor:
    """One batch as rows ``[probabilities | loss | target(s)]``, float32: ``(B, C + 1 + (C or 1))``."""
    expected = (len(y), num_classes) if multilabel else (len(y),)
    if tuple(y.shape) != expected:
        kind = "(B, classes) 0/1 targets, one column per class" if multilabel else "(B,) class indices"
        raise DataError(f"{'multi' if multilabel else 'single'}-label evaluation needs {kind}; the test data gave "
                        f"targets of shape {tuple(y.shape)}. Does model.json's \"multilabel\" match the data?")
    logits = tta_logits(model, x, multilabel=multilabel, tta=tta, autocast=autocast)  # (B, C) float32
    if multilabel:
        y = y.float()
        loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(1, keepdim=True)  # (B, 1)
    else:
        loss = F.cross_entropy(logits, y, reduction="none").unsqueeze(1)  # (B, 1)
        y = y.float().unsqueeze(1)  # class indices are exact in float32 up to 2**24
    return torch.cat([to_probabilities(logits, multilabel), loss, y], dim=1)


def summarize(outputs: Outputs, classes: Sequence[str], multilabel: bool = False) -> dict[str, Any]:
    """The metrics of gathered outputs: ``loss`` and ``examples`` plus the task's metrics (see :func:`evaluate`)."""
    common = {"loss": outputs.loss, "examples": outputs.examples}
    if multilabel:
        return {**common, **multilabel_metrics(outputs.probs, outputs.targets, classes)}
    m = single_label_metrics(outputs.probs, outputs.targets, classes)
    return {"accuracy": m.pop("accuracy"), **common, "confusion_matrix": m.pop("confusion_matrix"), **m}


def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    num_classes: int,
    *,
    autocast: contextlib.AbstractContextManager | None = None,
    ctx: DistContext | None = None,
    multilabel: bool = False,
    tta: str | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run ``model`` in eval mode over ``batches`` and summarize.

    Under DDP each rank passes its own shard; the whole set's outputs are gathered once and every rank
    computes the same metrics over the whole set.

    Args:
        model: The network (put back into its training mode afterwards).
        batches: ``(x, y)`` pairs on the model's device: ``y`` is ``(B,)`` int64, or ``(B, C)`` float 0/1
            when ``multilabel``.
        num_classes: ``C``.
        autocast: The precision context of the forward passes.
        ctx: The DDP context; ``None`` or a single process evaluates its batches alone.
        multilabel: Sigmoid outputs and BCE loss (else softmax and cross-entropy).
        tta: ``None``, or ``"flip"`` to average the probabilities of each input and its mirror image
            (the loss is then the NLL of the averaged softmax, or the BCE of the averaged sigmoid).
        classes: Class names that key the per-class metrics (default ``"0"``, ``"1"``, ...).

    Returns:
        Single-label: ``{"accuracy", "loss", "examples", "confusion_matrix", "top5_accuracy", "macro_f1",
        "ece"}`` (mean cross-entropy; the matrix is rows = true class, columns = predicted class).
        Multi-label: ``{"loss", "examples", "auroc", "mean_auroc", "average_precision", "map", "f1_at_0.5",
        "f1_best", "thresholds", "undefined"}`` (mean BCE over examples and classes). See
        :mod:`~densenet.engine.metrics` for each number; undefined ones are ``None``.
    """
    outputs = gather_outputs(model, batches, num_classes, autocast=autocast, ctx=ctx, multilabel=multilabel, tta=tta)
    return summarize(outputs, list(classes) if classes is not None else [str(i) for i in range(num_classes)],
                     multilabel)


def per_class_accuracy(confusion: list[list[int]], classes: list[str]) -> dict[str, float | None]:
    """Accuracy of each true class (the recall), keyed by class name; ``None`` for a class with no examples."""
    out: dict[str, float | None] = {}
    for i, (name, row) in enumerate(zip(classes, confusion)):
        total = sum(row)
        out[name] = row[i] / total if total else None
    return out


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, test_subset: int | None = None,
                 batch_size: int = 256, tta: str | None = None, backend: str = "torch",
                 split: str = "test") -> dict[str, Any]:
    """Evaluate a run's final model on the whole test set (or a class-balanced draw of ``test_subset`` images),
    or with ``split="validation"`` on the images a ``--val-split`` run held out of training.

    The test images are prepared as in training (the same size and normalization); the task, single- or
    multi-label, is the model card's (``model.json``'s ``multilabel``). Also writes ``evaluation.json``,
    ``confusion_matrix.png`` (single-label) and ``roc_curves.png`` (multi-label and two-class runs) into
    the run directory.

    ``roc_curves.png`` is there afterwards exactly when this evaluation drew a curve: a class needs positive
    and negative test pictures.

    Args:
        run_dir: The ``--out`` folder of a finished ``densenet train``.
        data_dir: Folder holding the dataset's files (default: the run's own, then the usual lookup).
        test_subset: Evaluate on a seeded (the run's seed), class-balanced draw of N test images.
        batch_size: Images per forward pass.
        tta: ``None``, or ``"flip"`` to average each picture's probabilities with its mirror image's.
        backend: What runs the model: ``"torch"``, ``"onnxruntime"``, ``"openvino"`` or ``"auto"``
            (:func:`densenet.export.runtime.build_runtime`; all fp32).
        split: ``"test"`` or ``"validation"`` (:func:`run_loader`).

    Returns:
        :func:`evaluate`'s keys plus ``"classes"``, ``"multilabel"``, ``"tta"``, ``"backend"`` and ``"split"``, and for
        single-label runs ``"per_class_accuracy"`` (class -> accuracy, ``None`` for a class absent from the test
        set). Every value is JSON-safe: an undefined number is ``None``, never NaN.

    Raises:
        ConfigError: an unknown ``tta`` or ``split``, or a validation split the run does not have.
        RunDirError: if ``run_dir`` is not a complete run directory.
        DataError: if the test set cannot be found or read, or its labels do not fit the model's task.
    """
    from densenet.export.runtime import build_runtime, resolve_backend

    check_tta(tta)
    if split not in EVALUATED_SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose from {', '.join(EVALUATED_SPLITS)}")
    run_dir = Path(run_dir)
    backend = resolve_backend(backend)
    model = load(run_dir)
    card = model.card
    model = build_runtime(model, backend)
    loader = run_loader(run_dir, split, data_dir, test_subset, batch_size, card)
    outputs = gather_outputs(model, loader, len(card.classes), multilabel=card.multilabel, tta=tta)
    out = summarize(outputs, card.classes, card.multilabel)
    if not card.multilabel:
        out["per_class_accuracy"] = per_class_accuracy(out["confusion_matrix"], card.classes)
    out.update(classes=card.classes, multilabel=card.multilabel, tta=tta, backend=backend, split=split)
    _write_files(run_dir, out, card, roc_curves(outputs.probs, outputs.targets, card.classes, card.multilabel))
    return out


def run_loader(run_dir: str | Path, split: str = "test", data_dir: str | None = None, subset: int | None = None,
               batch_size: int = 256, card: ModelCard | None = None) -> Iterable[tuple[Tensor, Tensor]]:
    """A split of a run's dataset prepared by the transform the run recorded (the truth, also for older runs).

    Args:
        run_dir: The run directory (its ``config.json`` names the dataset).
        split: ``"test"``, ``"train"`` (evaluation transform, no augmentation: what int8 exports calibrate on), or
            ``"validation"``: the images a ``--val-split`` run held out of training and evaluated each epoch.
        data_dir: Folder holding the dataset's files (default: the run's own, then the usual lookup).
        subset: A seeded (the run's seed), class-balanced draw of N pictures of the split.
        batch_size: Pictures per batch.
        card: The run's model card, when already read.

    Returns:
        ``(x, y)`` CPU batches in order: float ``(B, C, H, W)`` inputs and their targets.

    Raises:
        ConfigError: ``"validation"`` for a run trained without ``--val-split``, or with a ``subset``.
    """
    config = read_config(run_dir)
    if split == "validation":
        _check_validation(run_dir, config.data.val_split, subset)
    pre = (card or read_card(run_dir)).preprocessing
    subsets = {"train_subset": subset} if split == "train" else {"test_subset": subset}
    data = dataclasses.replace(config.data, data_dir=data_dir or config.data.data_dir, **subsets,
                               resize=pre.image_size, keep_aspect=pre.resize == "center-crop",
                               crop_pct=pre.crop_pct, interpolation=pre.interpolation)
    return evaluation_loader(dataclasses.replace(config, data=data), pre.mean, pre.std, batch_size, split=split)


def _check_validation(run_dir: str | Path, val_split: int | None, subset: int | None) -> None:
    if val_split is None:
        raise ConfigError(f"{run_dir} was trained without --val-split, so it has no validation split; "
                          f"evaluate its test set instead (leave out --split validation)")
    if subset is not None:
        raise ConfigError(f"--test-subset draws from the test set; --split validation evaluates all {val_split} "
                          f"images {run_dir} held out")


def _write_files(run_dir: Path, out: dict[str, Any], card: ModelCard,
                 curves: dict[str, tuple[list[float], list[float]]]) -> None:
    name = f"{card.model} on {card.dataset}" if card.dataset else card.model
    tta = (", flip TTA" if out["tta"] else "") + (", validation split" if out["split"] == "validation" else "")
    if not card.multilabel:
        plot_confusion(out["confusion_matrix"], card.classes, run_dir / CONFUSION_PNG,
                       title=f"{name}: accuracy {out['accuracy']:.4f}{tta}")
    if curves:
        mean = f": mean AUROC {out['mean_auroc']:.4f}" if card.multilabel and out["mean_auroc"] is not None else ""
        plot_roc_curves(curves, run_dir / ROC_PNG, title=f"{name}{mean}{tta}")
    else:  # no class has both positives and negatives here: a curve left by an earlier evaluation would mislead
        (run_dir / ROC_PNG).unlink(missing_ok=True)
    write_json(run_dir / EVALUATION_FILE, out)

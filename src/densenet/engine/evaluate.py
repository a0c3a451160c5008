"""Evaluation: a model on labelled batches (the trainer's test pass), and a finished run on its test set.

:func:`evaluate` is the loop: accuracy, loss and confusion matrix. :func:`evaluate_run` is what
``densenet evaluate RUN_DIR`` calls: the run's model on its test set, with per-class accuracy.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from densenet.engine.data import evaluation_loader
from densenet.engine.distributed import DistContext, all_reduce_sum
from densenet.engine.logging import plot_confusion
from densenet.rundir import CONFUSION_PNG, EVALUATION_FILE, load, read_config, write_json


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    *,
    autocast: contextlib.AbstractContextManager | None = None,
    ctx: DistContext | None = None,
    multilabel: bool = False,
) -> dict[str, Any]:
    """Run ``model`` in eval mode over ``batches`` and summarize.

    Under DDP each rank passes its own shard; sums are reduced so the result covers the whole set once.

    Returns:
        ``{"accuracy", "loss", "examples", "confusion_matrix"}``; the matrix is rows = true class,
        columns = predicted class.
    """
    if multilabel:
        raise NotImplementedError("multi-label metrics arrive with engine/metrics.py")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for x, y in batches:
        with autocast or contextlib.nullcontext():
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        pred = logits.argmax(1)
        confusion.view(-1).index_add_(0, y * num_classes + pred, torch.ones_like(y, dtype=torch.float64))
    model.train(was_training)
    if ctx is not None:
        packed = all_reduce_sum(torch.cat([confusion.view(-1), loss_sum.view(1)]), ctx)
        confusion, loss_sum = packed[:-1].view(num_classes, num_classes), packed[-1]
    total = confusion.sum().item()
    correct = confusion.diagonal().sum().item()
    return {
        "accuracy": correct / max(total, 1),
        "loss": loss_sum.item() / max(total, 1),
        "examples": int(total),
        "confusion_matrix": confusion.long().tolist(),
    }


def per_class_accuracy(confusion: list[list[int]], classes: list[str]) -> dict[str, float]:
    """Accuracy of each true class (the recall), keyed by class name."""
    out = {}
    for i, (name, row) in enumerate(zip(classes, confusion)):
        total = sum(row)
        out[name] = row[i] / total if total else float("nan")
    return out


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, test_subset: int | None = None,
                 batch_size: int = 256) -> dict[str, Any]:
    """Evaluate a run's final model on the whole test set (or a class-balanced draw of ``test_subset`` images).

    The test images are prepared as in training (the same size and normalization). Also writes
    ``confusion_matrix.png`` and ``evaluation.json`` into the run directory.

    Args:
        run_dir: The ``--out`` folder of a finished ``densenet train``.
        data_dir: Folder holding the dataset's files (default: the run's own, then the usual lookup).
        test_subset: Evaluate on a seeded (the run's seed), class-balanced draw of N test images.
        batch_size: Images per forward pass.

    Returns:
        ``{"accuracy", "loss", "examples", "per_class_accuracy", "confusion_matrix", "classes"}``; the matrix
        is rows = true class, columns = predicted class.

    Raises:
        RunDirError: if ``run_dir`` is not a complete run directory.
        DataError: if the test set cannot be found or read.
    """
    run_dir = Path(run_dir)
    model = load(run_dir)
    card = model.card
    config = read_config(run_dir)
    pre = card.preprocessing  # the transform the run recorded is the truth, also for older run directories
    data = dataclasses.replace(config.data, data_dir=data_dir or config.data.data_dir, test_subset=test_subset,
                               resize=pre.image_size, keep_aspect=pre.resize == "center-crop",
                               crop_pct=pre.crop_pct, interpolation=pre.interpolation)
    config = dataclasses.replace(config, data=data)
    loader = evaluation_loader(config, pre.mean, pre.std, batch_size)
    result = evaluate(model, loader, len(card.classes))
    out = {
        "accuracy": result["accuracy"],
        "loss": result["loss"],
        "examples": result["examples"],
        "per_class_accuracy": per_class_accuracy(result["confusion_matrix"], card.classes),
        "confusion_matrix": result["confusion_matrix"],
        "classes": card.classes,
    }
    plot_confusion(out["confusion_matrix"], card.classes, run_dir / CONFUSION_PNG,
                   title=f"{card.model} on {card.dataset}: accuracy {out['accuracy']:.4f}")
    write_json(run_dir / EVALUATION_FILE, out)
    return out

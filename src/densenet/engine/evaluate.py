"""Evaluation of a model on a labelled dataset: accuracy, loss, per-class accuracy, confusion matrix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from densenet.engine.distributed import DistContext, all_reduce_sum


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    *,
    autocast: contextlib.AbstractContextManager | None = None,
    ctx: DistContext | None = None,
) -> dict[str, Any]:
    """Run ``model`` in eval mode over ``batches`` and summarize.

    Under DDP each rank passes its own shard; sums are reduced so the result covers the whole set once.

    Returns:
        ``{"accuracy", "loss", "examples", "confusion_matrix"}``; the matrix is rows = true class,
        columns = predicted class.
    """
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

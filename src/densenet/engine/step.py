"""One training step, the one the trainer runs and ``densenet bench train`` times."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from densenet.engine.performance import ResolvedPerf, autocast_context

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               perf: ResolvedPerf, scaler: torch.amp.GradScaler | None = None, *, loss_fn: LossFn = F.cross_entropy,
               before_backward: Callable[[torch.Tensor], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward under autocast, loss in fp32, backward (scaled for fp16), optimizer step, gradients freed.

    Args:
        model: The model in training mode (prepared by :func:`~densenet.engine.performance.prepare_model`).
        optimizer: Steps ``model``'s parameters.
        x: A batch of inputs, in the model's memory format.
        y: Its class labels.
        perf: The resolved precision (autocast dtype).
        scaler: fp16's gradient scaler (:func:`~densenet.engine.performance.make_grad_scaler`), else ``None``.
        loss_fn: ``loss_fn(logits.float(), y)``; cross-entropy by default.
        before_backward: Called with the loss before backward, e.g. to stop on a NaN loss before the step.

    Returns:
        The loss and the logits.
    """
    with autocast_context(perf):
        logits = model(x)
        loss = loss_fn(logits.float(), y)
    if before_backward is not None:
        before_backward(loss)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)  # between steps no gradients are held
    return loss, logits


def infer_step(model: nn.Module, x: torch.Tensor, perf: ResolvedPerf) -> torch.Tensor:
    """One inference step: ``model(x)`` under ``torch.inference_mode`` and autocast (the model in eval mode)."""
    with torch.inference_mode(), autocast_context(perf):
        return model(x)

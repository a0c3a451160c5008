"""One training step, the one the trainer runs and ``densenet bench train`` times."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from densenet.engine.performance import ResolvedPerf, autocast_context

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               perf: ResolvedPerf, scaler: torch.amp.GradScaler | None = None, *, loss_fn: LossFn = F.cross_entropy,
               before_backward: Callable[[torch.Tensor], None] | None = None, accumulate: int = 1,
               step: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward under autocast, loss in fp32, backward (scaled for fp16), optimizer step, gradients freed.

    With gradient accumulation, each micro-batch is one call: ``accumulate`` is the number of micro-batches
    whose gradients the next optimizer step sums, and ``step`` is true on the last of them. Each backward
    takes the loss divided by ``accumulate``, so for micro-batches of equal size the summed gradient is that
    of one batch ``accumulate`` times larger (BatchNorm in train mode aside: its statistics are per micro-batch).
    Before the last micro-batch a DDP model runs under ``no_sync()``: gradients are all-reduced once per step.

    Args:
        model: The model in training mode (prepared by :func:`~densenet.engine.performance.prepare_model`).
        optimizer: Steps ``model``'s parameters.
        x: A batch of inputs, in the model's memory format.
        y: Its class labels.
        perf: The resolved precision (autocast dtype).
        scaler: fp16's gradient scaler (:func:`~densenet.engine.performance.make_grad_scaler`), else ``None``.
        loss_fn: ``loss_fn(logits.float(), y)``; cross-entropy by default.
        before_backward: Called with the loss before backward, e.g. to stop on a NaN loss before the step.
        accumulate: Micro-batches per optimizer step (1: every call steps).
        step: Whether this call ends the optimizer step (steps, then frees the gradients).

    Returns:
        The (undivided) loss and the logits.
    """
    sync = contextlib.nullcontext() if step or not hasattr(model, "no_sync") else model.no_sync()
    with sync:
        with autocast_context(perf):
            logits = model(x)
            loss = loss_fn(logits.float(), y)
        if before_backward is not None:
            before_backward(loss)
        part = loss / accumulate if accumulate > 1 else loss
        (scaler.scale(part) if scaler is not None else part).backward()
    if not step:
        return loss, logits
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)  # between steps no gradients are held
    return loss, logits


@dataclass(frozen=True)
class Accumulation:
    """Which micro-batches of an epoch make up each optimizer step, as timm groups them.

    Consecutive groups of ``steps`` micro-batches; the epoch's last group takes what is left (and divides by
    its own size), so no gradient crosses an epoch boundary.

    Attributes:
        steps: Micro-batches per optimizer step (``--accum-steps``).
        batches: Micro-batches per epoch.
    """

    steps: int
    batches: int

    @property
    def optimizer_steps(self) -> int:
        """Optimizer steps per epoch: what a per-step schedule counts."""
        return math.ceil(self.batches / self.steps)

    def group_size(self, batch: int) -> int:
        """The number of micro-batches in the step that 0-based micro-batch ``batch`` belongs to."""
        return min(self.steps, self.batches - batch // self.steps * self.steps)

    def ends_step(self, batch: int) -> bool:
        """Whether 0-based micro-batch ``batch`` is the last of its optimizer step."""
        return (batch + 1) % self.steps == 0 or batch + 1 == self.batches


def infer_step(model: nn.Module, x: torch.Tensor, perf: ResolvedPerf) -> torch.Tensor:
    """One inference step: ``model(x)`` under ``torch.inference_mode`` and autocast (the model in eval mode)."""
    with torch.inference_mode(), autocast_context(perf):
        return model(x)

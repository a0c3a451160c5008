"""Where a training run stands: what callbacks see (:class:`TrainState`), an epoch's figures (:class:`EpochStats`)
and an interrupted epoch's sums (:class:`PartialEpoch`), which a Ctrl-C checkpoint carries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainState:
    """Where a run stands, as callbacks see it.

    Attributes:
        epoch: The current epoch (1-based).
        batch: Batches of this epoch done so far (at an epoch's end: all of them).
        batches: Batches per epoch.
        loss: The last batch's loss (``on_batch_end``), or the epoch's mean loss (``on_epoch_end``).
        metrics: At an epoch's end, that epoch's ``metrics.jsonl`` row; else ``None``.
    """

    epoch: int
    batch: int
    batches: int
    loss: float
    metrics: dict[str, Any] | None = None


Callback = Callable[[TrainState], bool | None]
"""Called after each batch (``on_batch_end``) or epoch (``on_epoch_end``); returning True stops the run the way
Ctrl-C does: the state so far is saved and ``densenet train --resume`` continues it. With ``--accum-steps N`` a
stop asked for mid-step happens after the step's last micro-batch, so no accumulated gradient is lost."""


@dataclass
class EpochStats:
    loss: float
    train_acc: float
    examples: int
    train_seconds: float


@dataclass
class PartialEpoch:
    """Where an interrupted epoch stopped; a Ctrl-C checkpoint carries it so resume goes on mid-epoch.

    The sums are over every rank; ``seconds`` is one rank's training time so far.
    """

    epoch: int
    batches: int
    loss_sum: float
    correct: float
    count: int
    seconds: float

"""``--ema DECAY``: an exponential moving average of the weights, evaluated beside the trained ones every epoch.

After every optimizer step each parameter's average moves toward the trained value,
``ema = decay * ema + (1 - decay) * p`` (:class:`torch.optim.swa_utils.AveragedModel` with
:func:`~torch.optim.swa_utils.get_ema_multi_avg_fn`; the first update copies the weights). BatchNorm's
running statistics, and every other buffer, are copied from the trained model rather than averaged: they
are measured, not learned, and the copy keeps them the statistics of real batches.

Every epoch both weights are evaluated; ``metrics.jsonl`` gets the trained ("raw") weights' test columns
and the same columns prefixed ``ema_``, and ``weights`` says which of the two scored higher on the
headline metric (the raw weights win ties). That score selects ``best.pt``, and the final epoch's winner
is what ``model.safetensors`` holds.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

RAW, EMA = "raw", "ema"
PREFIX = "ema_"  # the metrics.jsonl columns of the averaged weights: ema_test_acc, ema_test_loss, ...


class WeightEMA:
    """The moving average of a model's weights.

    Args:
        model: The (unwrapped) model being trained; the average starts as a copy of it.
        decay: The weight of the old average in each update, in (0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)

    @property
    def module(self) -> nn.Module:
        """The averaged network: a model like the trained one, with the average as its weights."""
        return self.averaged.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average toward ``model``'s parameters (after an optimizer step) and copy its buffers."""
        self.averaged.update_parameters(model)
        for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the averaged weights (the model's own keys) and the number of updates."""
        return {"model": self.module.state_dict(), "updates": self.averaged.n_averaged.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave."""
        self.module.load_state_dict(state["model"])
        self.averaged.n_averaged.copy_(state["updates"])


def ema_columns(test_columns: dict[str, Any]) -> dict[str, Any]:
    """The averaged weights' test columns of a ``metrics.jsonl`` row: ``test_acc`` becomes ``ema_test_acc``."""
    return {PREFIX + key: value for key, value in test_columns.items()}


def winner(row: dict[str, Any], headline: str) -> str:
    """``"ema"`` if the averaged weights scored strictly higher than the raw ones on ``headline`` in ``row``."""
    ema, raw = row.get(PREFIX + headline), row.get(headline)
    return EMA if ema is not None and (raw is None or ema > raw) else RAW


def score(row: dict[str, Any], headline: str) -> float | None:
    """The row's selection score: the headline metric of whichever weights won (see :func:`winner`)."""
    return row.get(PREFIX + headline) if winner(row, headline) == EMA else row.get(headline)

"""A model's outputs as probabilities, optionally averaged over test-time augmentations (TTA).

One owner for "logits to probabilities" at test time, so that ``evaluate`` and ``predict`` agree:
softmax for single-label runs, an independent sigmoid per class for multi-label runs.

``tta="flip"`` runs each input and its horizontal mirror (``x.flip(-1)``) in one forward pass and averages
their *probabilities*. :func:`tta_logits` returns logits whose softmax (or sigmoid) is exactly that average,
so the test loss is the ordinary cross-entropy (or BCE-with-logits) of them: the NLL of the averaged
softmax, or the BCE of the averaged sigmoid. They are computed in log space (``logsumexp``), so a
probability near 0 or 1 keeps its precision.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densenet.errors import ConfigError

TTA_MODES = ("flip",)  # None means no augmentation: one pass per input


def check_tta(tta: str | None) -> None:
    """Refuse an unknown test-time augmentation name.

    Raises:
        ConfigError: ``tta`` is neither ``None`` nor one of :data:`TTA_MODES`.
    """
    if tta is not None and tta not in TTA_MODES:
        raise ConfigError(f"--tta must be one of {', '.join(TTA_MODES)} (or left out for none), got {tta!r}")


def tta_logits(model: nn.Module, x: Tensor, *, multilabel: bool = False, tta: str | None = None,
               autocast: contextlib.AbstractContextManager | None = None) -> Tensor:
    """Float32 logits of ``model`` on ``x`` whose softmax (sigmoid if ``multilabel``) is the TTA average.

    Args:
        model: The network, already in the mode wanted (``evaluate`` and ``predict`` use eval mode).
        x: ``(B, C, H, W)`` inputs.
        multilabel: Average sigmoid probabilities (else softmax ones).
        tta: ``None`` (the model's own logits) or ``"flip"``.
        autocast: The precision context of the forward pass.

    Returns:
        ``(B, classes)`` logits: without TTA the model's; with TTA, ``log(mean p)`` for softmax, and
        ``log(mean p) - log(mean (1 - p))`` for sigmoid.
    """
    check_tta(tta)
    batch = x if tta is None else torch.cat([x, x.flip(-1)])  # (V * B, C, H, W): the views in one pass
    with autocast or contextlib.nullcontext():
        logits = model(batch)
    logits = logits.float()
    if tta is None:
        return logits
    views = logits.view(2, len(x), -1)  # (V, B, classes)
    if multilabel:
        return torch.logsumexp(F.logsigmoid(views), 0) - torch.logsumexp(F.logsigmoid(-views), 0)
    return torch.logsumexp(F.log_softmax(views, -1), 0) - math.log(len(views))


def to_probabilities(logits: Tensor, multilabel: bool) -> Tensor:
    """Softmax over classes, or an independent sigmoid per class for multi-label runs."""
    return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)


def probabilities(model: nn.Module, x: Tensor, *, multilabel: bool = False, tta: str | None = None,
                  autocast: contextlib.AbstractContextManager | None = None) -> Tensor:
    """``(B, classes)`` probabilities of ``model`` on ``x``, averaged over the ``tta`` views (:func:`tta_logits`)."""
    return to_probabilities(tta_logits(model, x, multilabel=multilabel, tta=tta, autocast=autocast), multilabel)

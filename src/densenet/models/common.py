"""Small helpers every model family shares: argument checks and the classifier head."""

from __future__ import annotations

from torch import nn

# The weight initializations every model family takes as ``init=``: "torchvision" (the family's torchvision
# scheme: Kaiming-normal convolutions), "pytorch" (each module's own default) or "xavier" (the textbook's
# ``train_ch6``: Xavier-uniform weights of every Linear and Conv2d, after the module defaults).
INITS = ("torchvision", "pytorch", "xavier")


def is_positive_int(value: object) -> bool:
    """True for a positive ``int`` (and not a ``bool``, which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def is_real(value: object) -> bool:
    """True for an ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def xavier_init(model: nn.Module) -> None:
    """The textbook's ``train_ch6`` init: Xavier-uniform weights of every Linear and Conv2d (biases keep theirs)."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)


def new_classifier(old: nn.Linear, num_features: int, num_classes: int) -> nn.Linear:
    """A fresh ``Linear(num_features, num_classes)`` on ``old``'s device and dtype.

    Raises:
        ValueError: if ``num_classes`` is not a positive integer.
    """
    if not is_positive_int(num_classes):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return nn.Linear(num_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)

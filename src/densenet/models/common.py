"""Small helpers every model family shares: argument checks, the classifier surface and head, weight inits."""

from __future__ import annotations

from collections.abc import Callable

import torch
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


def init_weights(model: nn.Module, init: str, torchvision: Callable[[nn.Module], None]) -> None:
    """Initialize a freshly built model as ``init`` (one of :data:`INITS`) says.

    Args:
        model: The model, with its modules' default initialization.
        init: ``"torchvision"``, ``"pytorch"`` (keep the defaults) or ``"xavier"``.
        torchvision: The family's own torchvision scheme.
    """
    if init == "torchvision":
        torchvision(model)
    elif init == "xavier":
        xavier_init(model)


def xavier_init(model: nn.Module) -> None:
    """The textbook's ``train_ch6`` init: Xavier-uniform weights of every Linear and Conv2d (biases keep theirs)."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)


class ImageClassifier(nn.Module):
    """The surface every model of the zoo shares (timm's): ``forward_features``, ``forward_head``,
    ``reset_classifier``; ``forward`` is the two in a row.

    Subclasses define ``forward_features``, ``forward_head``, ``num_features`` and the final ``nn.Linear`` under
    the attribute :attr:`head_name` (torchvision's names: ``classifier`` for DenseNets, ``fc`` for ResNets).
    """

    head_name = "classifier"
    num_features: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` outputs (same device and dtype).

        Raises:
            ValueError: if ``num_classes`` is not a positive integer.
        """
        setattr(self, self.head_name, new_classifier(getattr(self, self.head_name), self.num_features, num_classes))
        self.num_classes = num_classes


def new_classifier(old: nn.Linear, num_features: int, num_classes: int) -> nn.Linear:
    """A fresh ``Linear(num_features, num_classes)`` on ``old``'s device and dtype.

    Raises:
        ValueError: if ``num_classes`` is not a positive integer.
    """
    if not is_positive_int(num_classes):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return nn.Linear(num_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)

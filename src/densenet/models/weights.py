"""Loading torchvision checkpoints, including the legacy key format of its first DenseNet weights.

torchvision's DenseNet module names are this package's (``features.denseblock1.denselayer1.norm1``),
so current checkpoints load as they are. Its oldest published DenseNet weights were saved when
a dense layer's modules were called ``norm.1``, ``relu.1``, ``conv.1``, ``norm.2``... (names with
a dot, which PyTorch no longer allows); :func:`convert_legacy_keys` maps them to ``norm1``... .
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn

from densenet.errors import WeightsError

# "...denselayer3.norm.1.running_mean" -> "...denselayer3.norm1.running_mean"
_LEGACY_LAYER_KEY = re.compile(
    r"^(?P<layer>.*denselayer\d+)\.(?P<module>norm|relu|conv)\.(?P<index>[12])"
    r"\.(?P<tensor>weight|bias|running_mean|running_var|num_batches_tracked)$"
)


def convert_legacy_keys(state_dict: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Return a copy of ``state_dict`` with legacy dense-layer keys renamed; other keys are kept.

    Args:
        state_dict: A torchvision DenseNet (or any) state dict, legacy or current.

    Returns:
        A new ordered dict; the tensors are shared, not copied.
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        m = _LEGACY_LAYER_KEY.match(key)
        out[f"{m['layer']}.{m['module']}{m['index']}.{m['tensor']}" if m else key] = value
    return out


def load_torchvision_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load torchvision weights (current or legacy DenseNet keys) into ``model``, strictly, adapting nothing.

    :func:`densenet.models.load_weights` does the same but keeps the model's own head when the number of
    classes differs and adapts a 1- or 3-channel stem. Checkpoints older than BatchNorm's
    ``num_batches_tracked`` buffer lack it; PyTorch's BatchNorm fills it in, as it does for any such checkpoint.

    Args:
        model: A model from this package with torchvision's layout (``densenet121``, ``resnet50``...).
        state_dict: The checkpoint's tensors, e.g. ``torch.load(path, weights_only=True)``.

    Raises:
        ValueError: if keys are missing or unexpected, or a tensor's shape differs, i.e. the
            checkpoint belongs to another architecture or number of classes.
    """
    from densenet.models.pretrained import load_weights  # lazily: pretrained imports this module

    try:
        load_weights(model, state_dict, adapt=False)
    except WeightsError as exc:
        raise ValueError(f"{exc} (for a new head, use load_weights or reset_classifier after loading)") from None

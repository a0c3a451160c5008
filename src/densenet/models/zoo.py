"""Registered DenseNets: each builder is a name plus the numbers that define it."""

from __future__ import annotations

from typing import Any

from densenet.models.densenet import DenseNet
from densenet.models.registry import register_model


@register_model("d2l_densenet", input_size=(1, 96, 96), num_classes=10, params=758_226,
                source="Dive into Deep Learning, ch. 7.7", family="densenet")
def d2l_densenet(**kwargs: Any) -> DenseNet:
    """The textbook's DenseNet: ImageNet stem, 4 blocks of 4 BN-ReLU-Conv3x3 layers, k=32, halving transitions."""
    args = dict(growth_rate=32, block_config=(4, 4, 4, 4), num_init_features=64, bn_size=None,
                compression=0.5, conv_bias=True, init="pytorch")
    return DenseNet(**{**args, **kwargs})

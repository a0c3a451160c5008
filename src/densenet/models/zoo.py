"""Registered DenseNets: each entry is a name plus the numbers that define it.

Every network here is the one :class:`~densenet.models.densenet.DenseNet` class with different
arguments. The expected parameter count at the registered defaults sits beside each entry;
``tests/models`` checks it.
"""

from __future__ import annotations

from typing import Any

from densenet.models.densenet import DenseNet
from densenet.models.registry import register_config

_IMAGENET = "torchvision / Huang et al. 2017 (Table 1)"
_PAPER_CIFAR = "Huang et al. 2017, Densely Connected Convolutional Networks (Table 2)"


def _densenet(name: str, config: dict[str, Any], *, params: int, input_size: tuple[int, int, int],
              num_classes: int, source: str) -> None:
    register_config(name, DenseNet, config, input_size=input_size, num_classes=num_classes, params=params,
                    source=source, family="densenet")


def _imagenet(name: str, growth_rate: int | tuple[int, ...], block_config: tuple[int, ...],
              num_init_features: int, params: int, source: str = _IMAGENET) -> None:
    """torchvision's DenseNet-BC: 7x7/2 stem, bottleneck 4k, compression 0.5, no conv bias."""
    config = dict(growth_rate=growth_rate, block_config=block_config, num_init_features=num_init_features,
                  bn_size=4, compression=0.5, stem="imagenet")
    _densenet(name, config, params=params, input_size=(3, 224, 224), num_classes=1000, source=source)


def _cifar(name: str, depth: int, growth_rate: int | tuple[int, ...], bc: bool, params: int,
           source: str = _PAPER_CIFAR) -> None:
    """The paper's CIFAR/SVHN nets: 3x3 stem, three dense blocks of equal depth.

    DenseNet (depth L): (L - 4) / 3 plain BN-ReLU-Conv3x3 layers per block, 16 stem channels, theta 1.
    DenseNet-BC: (L - 4) / 6 bottleneck layers per block, 2k stem channels, theta 0.5.
    """
    first_k = growth_rate if isinstance(growth_rate, int) else growth_rate[0]
    if bc:
        config = dict(block_config=((depth - 4) // 6,) * 3, num_init_features=2 * first_k, bn_size=4, compression=0.5)
    else:
        config = dict(block_config=((depth - 4) // 3,) * 3, num_init_features=16, bn_size=None, compression=1.0)
    config = dict(growth_rate=growth_rate, **config, stem="cifar")
    _densenet(name, config, params=params, input_size=(3, 32, 32), num_classes=10, source=source)


# The textbook's network (seed): ImageNet stem, 4 blocks of 4 BN-ReLU-Conv3x3 layers with biases, k=32.
_D2L = dict(block_config=(4, 4, 4, 4), num_init_features=64, bn_size=None, compression=0.5, conv_bias=True,
            init="pytorch")
_densenet("d2l_densenet", dict(growth_rate=32, **_D2L), params=758_226, input_size=(1, 96, 96), num_classes=10,
          source="Dive into Deep Learning, ch. 7.7")
# The seed's idea b: double the growth rate after each downsampling, as VGG and ResNet double width.
_densenet("d2l_densenet_doubling", dict(growth_rate=(8, 16, 32, 64), **_D2L), params=656_622,
          input_size=(1, 96, 96), num_classes=10, source="d2l ch. 7.7 with growth doubling per stage (seed idea b)")

# ImageNet (torchvision's architecture and state_dict keys; DenseNet-264 from the paper's Table 1).
_imagenet("densenet121", 32, (6, 12, 24, 16), 64, params=7_978_856)
_imagenet("densenet161", 48, (6, 12, 36, 24), 96, params=28_681_000)
_imagenet("densenet169", 32, (6, 12, 32, 32), 64, params=14_149_480)
_imagenet("densenet201", 32, (6, 12, 48, 32), 64, params=20_013_928)
_imagenet("densenet264", 32, (6, 12, 64, 48), 64, params=33_337_704, source="Huang et al. 2017 (Table 1)")
# CondenseNet's exponentially increasing growth (Huang et al. 2018), on the plain DenseNet-BC layers.
_imagenet("densenet_g8_16_32_64", (8, 16, 32, 64), (14, 14, 14, 14), 64, params=7_703_404,
          source="growth schedule of CondenseNet (Huang et al. 2018), without learned group convolutions")

# CIFAR/SVHN (paper's Table 2 reports 1.0M, 7.0M, 27.2M, 0.8M, 15.3M, 25.6M at 10 classes).
_cifar("densenet40_k12", 40, 12, bc=False, params=1_019_722)
_cifar("densenet100_k12", 100, 12, bc=False, params=6_979_642)
_cifar("densenet100_k24", 100, 24, bc=False, params=27_249_082)
_cifar("densenet_bc100_k12", 100, 12, bc=True, params=769_162)
_cifar("densenet_bc250_k24", 250, 24, bc=True, params=15_324_406)
_cifar("densenet_bc190_k40", 190, 40, bc=True, params=25_624_430)

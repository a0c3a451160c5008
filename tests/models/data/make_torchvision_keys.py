"""Write torchvision's state_dict key lists for the DenseNets and ResNets, from its naming rules.

The lists are written from the rules alone (no torchvision, no code from this package), so
tests comparing them with our models' ``state_dict()`` keys are an independent check.
Run ``python tests/models/data/make_torchvision_keys.py`` to regenerate the JSON files.

Rules (torchvision ``models/densenet.py`` / ``models/resnet.py``):
- BatchNorm ``X``: ``X.weight``, ``X.bias``, ``X.running_mean``, ``X.running_var``, ``X.num_batches_tracked``.
- DenseNet: ``features.conv0``, ``features.norm0``; per block b and layer l
  ``features.denseblock{b}.denselayer{l}.{norm1, conv1, norm2, conv2}``; between blocks
  ``features.transition{t}.{norm, conv}``; then ``features.norm5`` and ``classifier`` (weight, bias).
- ResNet: ``conv1``, ``bn1``; per stage s and block i ``layer{s}.{i}.{conv1, bn1, conv2, bn2[, conv3, bn3]}``
  and, on the first block of stages 2-4 (and stage 1 of bottleneck nets), ``downsample.0`` (conv) and
  ``downsample.1`` (BatchNorm); then ``fc`` (weight, bias). Convolutions have no bias.
"""

from __future__ import annotations

import json
from pathlib import Path

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
DENSENETS = {"densenet121": (6, 12, 24, 16), "densenet161": (6, 12, 36, 24), "densenet169": (6, 12, 32, 32),
             "densenet201": (6, 12, 48, 32)}
RESNETS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
           "resnet50": ("bottleneck", (3, 4, 6, 3))}


def bn(prefix: str) -> list[str]:
    return [f"{prefix}.{t}" for t in BN]


def densenet_keys(blocks: tuple[int, ...]) -> list[str]:
    keys = ["features.conv0.weight", *bn("features.norm0")]
    for b, layers in enumerate(blocks, start=1):
        for layer in range(1, layers + 1):
            p = f"features.denseblock{b}.denselayer{layer}"
            keys += [*bn(f"{p}.norm1"), f"{p}.conv1.weight", *bn(f"{p}.norm2"), f"{p}.conv2.weight"]
        if b < len(blocks):
            keys += [*bn(f"features.transition{b}.norm"), f"features.transition{b}.conv.weight"]
    return keys + [*bn("features.norm5"), "classifier.weight", "classifier.bias"]


def resnet_keys(block: str, layers: tuple[int, ...]) -> list[str]:
    keys = ["conv1.weight", *bn("bn1")]
    convs = 2 if block == "basic" else 3
    for s, n in enumerate(layers, start=1):
        for i in range(n):
            p = f"layer{s}.{i}"
            for c in range(1, convs + 1):
                keys += [f"{p}.conv{c}.weight", *bn(f"{p}.bn{c}")]
            if i == 0 and (s > 1 or block == "bottleneck"):
                keys += [f"{p}.downsample.0.weight", *bn(f"{p}.downsample.1")]
    return keys + ["fc.weight", "fc.bias"]


def main() -> None:
    here = Path(__file__).parent
    lists = {name: densenet_keys(blocks) for name, blocks in DENSENETS.items()}
    lists |= {name: resnet_keys(*spec) for name, spec in RESNETS.items()}
    for name, keys in lists.items():
        doc = {"model": name, "source": "torchvision naming rules", "num_keys": len(keys), "keys": keys}
        (here / f"{name}_keys.json").write_text(json.dumps(doc, indent=0) + "\n")


if __name__ == "__main__":
    main()

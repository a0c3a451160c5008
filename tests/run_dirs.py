"""Run directories built without training: a small d2l_densenet saved with its card and ``config.json``, over a
tiny generated picture folder (two classes) or label CSV (multi-label). Untrained, so they build in a second."""

from __future__ import annotations

from pathlib import Path

import torch

from densenet.engine.config import TrainConfig
from densenet.models import create_model
from densenet.rundir import CONFIG_FILE, ModelCard, Preprocessing, save_model, write_json
from tests.photo_files import write_multilabel_csv, write_plain_pngs

SMALL = {"block_config": [2, 2], "growth_rate": 8}


def _save_run(run: Path, classes: list[str], config: TrainConfig, multilabel: bool) -> Path:
    torch.manual_seed(0)
    kwargs = {"in_channels": 3, "num_classes": len(classes), **SMALL}
    card = ModelCard("d2l_densenet", kwargs, classes, Preprocessing(3, 32, [0.5] * 3, [0.25] * 3),
                     dataset=config.data.dataset, multilabel=multilabel)
    save_model(run, create_model("d2l_densenet", **kwargs), card)
    write_json(run / CONFIG_FILE, config.to_dict())
    return run


def binary_run(root: Path, test_classes: tuple[str, ...] = ("green", "red")) -> Path:
    """``root/run`` of a two-class image-folder run (green, red), whose test split has 12 pictures spread over
    ``test_classes`` (6 each by default)."""
    data = root / "data"
    write_plain_pngs(data / "train", 2, classes=("green", "red"))
    write_plain_pngs(data / "test", 12, classes=test_classes, seed=1)
    for name in ("green", "red"):
        (data / "test" / name).mkdir(exist_ok=True)
    config = TrainConfig().replace({"data.dataset": "image-folder", "data.data_dir": str(data), "data.resize": 32,
                                    "data.workers": 0})
    return _save_run(root / "run", ["green", "red"], config, multilabel=False)


def multilabel_run(root: Path) -> Path:
    """``root/run`` of a multi-label CSV run (blue, green, red), whose test split has 8 pictures."""
    labels = write_multilabel_csv(root / "data", 40)
    config = TrainConfig().replace({"data.dataset": "csv", "data.data_dir": str(root / "data"),
                                    "data.labels": str(labels), "data.resize": 32, "data.workers": 0})
    return _save_run(root / "run", ["blue", "green", "red"], config, multilabel=True)

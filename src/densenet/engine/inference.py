"""Evaluation of a finished run on its test set, and prediction on picture files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from densenet.engine.config import TrainConfig
from densenet.engine.evaluate import evaluate, per_class_accuracy
from densenet.engine.logging import plot_confusion
from densenet.errors import DataError, RunDirError
from densenet.export.weights import ModelCard, atomic_write_bytes, load

CONFUSION_PNG = "confusion_matrix.png"


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """Read ``config.json`` of a run directory."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run directory (no config.json); pass the --out folder of a "
                          "`densenet train` run")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()), str(path))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is corrupt ({exc})") from None


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, test_subset: int | None = None,
                 batch_size: int = 256) -> dict[str, Any]:
    """Evaluate a run's final model on the whole test set (or its first ``test_subset`` images).

    Also writes ``confusion_matrix.png`` and ``evaluation.json`` into the run directory.

    Returns:
        ``{"accuracy", "loss", "per_class_accuracy", "confusion_matrix", "examples"}``.
    """
    from densenet.data import BatchLoader
    from densenet.engine.setup import load_split

    run_dir = Path(run_dir)
    model = load(run_dir)
    card: ModelCard = model.card
    config = load_run_config(run_dir)
    data = dataclasses.replace(config.data, data_dir=data_dir or config.data.data_dir, test_subset=test_subset,
                               resize=card.preprocessing.image_size)
    config = dataclasses.replace(config, data=data)
    test = load_split(config, "test")
    loader = BatchLoader(test, batch_size, shuffle=False, device=torch.device("cpu"), normalize=config.data.normalize)
    result = evaluate(model, loader, len(card.classes))
    out = {
        "accuracy": result["accuracy"],
        "loss": result["loss"],
        "examples": result["examples"],
        "per_class_accuracy": per_class_accuracy(result["confusion_matrix"], card.classes),
        "confusion_matrix": result["confusion_matrix"],
        "classes": card.classes,
    }
    plot_confusion(out["confusion_matrix"], card.classes, run_dir / CONFUSION_PNG,
                   title=f"{card.model} on {card.dataset}: accuracy {out['accuracy']:.4f}")
    atomic_write_bytes(run_dir / "evaluation.json", (json.dumps(out, indent=2) + "\n").encode())
    return out


@torch.no_grad()
def predict_files(run_dir: str | Path, paths: list[str], top_k: int = 5) -> list[dict[str, Any]]:
    """Top-k classes for each picture file, preprocessed exactly as the training data was.

    A file that cannot be read gets ``{"file", "error"}``; the others still run.
    """
    from densenet.data import open_image, preprocess_image

    model = load(run_dir)
    card: ModelCard = model.card
    pre = card.preprocessing
    mean = torch.tensor(pre.mean).view(-1, 1, 1)
    std = torch.tensor(pre.std).view(-1, 1, 1)
    k = min(top_k, len(card.classes))
    results: list[dict[str, Any]] = []
    for path in paths:
        try:
            image = preprocess_image(open_image(path), pre.channels, pre.image_size)
        except DataError as exc:
            results.append({"file": str(path), "error": str(exc)})
            continue
        x = ((image.float() / 255.0 - mean) / std).unsqueeze(0)
        probs = torch.softmax(model(x).float(), dim=1)[0]
        values, indices = probs.topk(k)
        results.append({"file": str(path), "predictions": [
            {"class": card.classes[i], "index": int(i), "probability": float(v)}
            for v, i in zip(values.tolist(), indices.tolist())]})
    return results

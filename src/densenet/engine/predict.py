"""Prediction with a finished run on picture files, preprocessed exactly as its training data was."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from densenet.engine.tta import check_tta, probabilities
from densenet.errors import DataError
from densenet.rundir import load


@torch.no_grad()
def predict(run_dir: str | Path, images: Sequence[str | Path], top_k: int = 5,
            tta: str | None = None, backend: str = "torch") -> list[dict[str, Any]]:
    """Top-k classes for each picture file, preprocessed exactly as the training data was.

    A single-label run's probabilities are a softmax over its classes; a multi-label run's (``multilabel``
    in ``model.json``) are independent sigmoids, one per class, which need not sum to 1.

    Any size or mode is accepted: the picture is converted to the run's channels, resized and cropped
    by the evaluation transform recorded in ``model.json`` (:meth:`~densenet.rundir.Preprocessing.transform`)
    and normalized with its mean and std.

    Args:
        run_dir: The ``--out`` folder of a finished ``densenet train``.
        images: Paths of picture files (PNG, JPEG, ...).
        top_k: How many classes to return per picture (at most the number of classes).
        tta: ``None``, or ``"flip"`` to average each picture's probabilities with its mirror image's.
        backend: What runs the model: ``"torch"``, ``"onnxruntime"``, ``"openvino"`` or ``"auto"``
            (:func:`densenet.export.runtime.build_runtime`; all fp32, so the probabilities agree within 1e-4).

    Returns:
        One dict per file, in order: ``{"file", "predictions": [{"class", "index", "probability"}, ...]}``,
        most probable first, or ``{"file", "error"}`` for a file that could not be read (the others still run).

    Raises:
        ConfigError: an unknown ``tta``.
        RunDirError: if ``run_dir`` is not a complete run directory.
    """
    from densenet.data.photos import decode
    from densenet.export.runtime import build_runtime

    check_tta(tta)
    model = load(run_dir)
    card = model.card
    model = build_runtime(model, backend)
    pre = card.preprocessing
    transform = pre.transform()
    mean = torch.tensor(pre.mean).view(-1, 1, 1)
    std = torch.tensor(pre.std).view(-1, 1, 1)
    k = min(top_k, len(card.classes))
    results: list[dict[str, Any]] = []
    for path in images:
        try:
            image = transform(decode(path, pre.channels, transform.decode_size()))
        except DataError as exc:
            results.append({"file": str(path), "error": str(exc)})
            continue
        x = ((image.float() / 255.0 - mean) / std).unsqueeze(0)  # (1, C, H, W)
        probs = probabilities(model, x, multilabel=card.multilabel, tta=tta)[0]
        values, indices = probs.topk(k)
        results.append({"file": str(path), "predictions": [
            {"class": card.classes[i], "index": int(i), "probability": float(v)}
            for v, i in zip(values.tolist(), indices.tolist())]})
    return results

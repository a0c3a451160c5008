"""The model card, ``model.json``: what rebuilds a trained model and preprocesses its inputs.

It holds the registry name, the builder's keyword arguments, the class names and the
preprocessing the training data went through.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from densenet.errors import RunDirError, UnsafeFileError
from densenet.rundir.files import META_FILE, WEIGHTS_FILE, write_json

FORMAT_VERSION = 1


@dataclass
class Preprocessing:
    """How an image becomes a model input: mode, size, resizing and normalization.

    Attributes:
        channels: 1 (grayscale) or 3 (RGB).
        image_size: Side of the square input.
        mean: Per-channel mean subtracted after scaling pixels to [0, 1].
        std: Per-channel std divided by.
        resize: ``"stretch"``: resized to ``image_size`` squared (built-in datasets, and run directories
            written before the photo pipeline); ``"center-crop"``: the short side resized to
            ``round(image_size / crop_pct)``, then a centre crop (photos).
        crop_pct: The centre crop's fraction of the resized short side.
        interpolation: ``"bilinear"`` or ``"bicubic"``.
    """

    channels: int
    image_size: int
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])
    resize: str = "stretch"
    crop_pct: float = 1.0
    interpolation: str = "bilinear"

    def transform(self) -> Any:
        """The :class:`~densenet.data.photos.EvalTransform` evaluation used: the one ``predict`` and exports apply."""
        from densenet.data.photos import EvalTransform

        if self.resize not in ("stretch", "center-crop"):
            raise RunDirError(f"model.json: unknown preprocessing resize {self.resize!r}; expected stretch or "
                              "center-crop")
        return EvalTransform(self.image_size, self.crop_pct, self.interpolation,  # type: ignore[arg-type]
                             keep_aspect=self.resize == "center-crop")


@dataclass
class ModelCard:
    """Everything in ``model.json``."""

    model: str
    model_kwargs: dict[str, Any]
    classes: list[str]
    preprocessing: Preprocessing
    dataset: str = ""
    multilabel: bool = False  # sigmoid outputs, one independent probability per class (else softmax)
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        data = dict(data)
        data["preprocessing"] = Preprocessing(**data["preprocessing"])
        return cls(**data)


def write_card(folder: str | Path, card: ModelCard) -> Path:
    """Write ``card`` as ``folder/model.json`` atomically; return its path."""
    path = Path(folder) / META_FILE
    write_json(path, asdict(card))
    return path


def read_card(path: str | Path) -> ModelCard:
    """Read ``model.json`` from a run directory, or from the path of its ``model.json`` or ``model.safetensors``.

    Raises:
        RunDirError: if the folder lacks the model's files or ``model.json`` is not a valid model card.
        UnsafeFileError: if ``path`` is a pickled weights file.
    """
    meta = model_files(path)[1]
    try:
        return ModelCard.from_dict(json.loads(meta.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RunDirError(f"{meta} is not a valid densenet model.json ({exc}); re-export the model") from None


def model_files(path: str | Path) -> tuple[Path, Path]:
    """The ``(model.safetensors, model.json)`` paths of a run directory or of one of those two files.

    Raises:
        RunDirError: if ``path`` does not exist or either file is missing.
        UnsafeFileError: if ``path`` is a pickled weights file.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if path.suffix in (".pt", ".pth", ".pkl", ".bin", ".ckpt"):
        raise UnsafeFileError(f"{path}: densenet reads weights from model.safetensors only; pickled files can "
                              "run code when loaded. Convert it with densenet.export.convert_torch_checkpoint.")
    weights, meta = folder / WEIGHTS_FILE, folder / META_FILE
    if not path.exists():
        raise RunDirError(f"{path} does not exist")
    missing = [p.name for p in (weights, meta) if not p.is_file()]
    if missing:
        raise RunDirError(f"{folder} is not a run directory with a trained model (missing {', '.join(missing)}); "
                          "pass the --out folder of a finished `densenet train`")
    return weights, meta

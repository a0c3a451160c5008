"""Converting a pickled PyTorch checkpoint (``.pt``/``.pth``) into ``model.safetensors`` + ``model.json``.

The tools only read safetensors weights, which cannot carry code. A ``.pt`` file is a pickle,
and unpickling can call any function the file names. The conversion therefore loads it with
``torch.load(weights_only=True)`` only: PyTorch's restricted unpickler accepts tensors and plain
containers and refuses everything else before calling it.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from densenet.errors import UnsafeFileError
from densenet.export.formats import ExportError
from densenet.models import create_model, load_torchvision_state_dict, model_info
from densenet.rundir import WEIGHTS_FILE, ModelCard, Preprocessing, save_model

# Where training scripts commonly nest the weights inside a checkpoint dictionary.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "module", "net")
# Prefixes that wrappers add to every key: DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def convert_torch_checkpoint(
    src: str | Path,
    dst_dir: str | Path,
    model_name: str,
    *,
    model_kwargs: Mapping[str, Any] | None = None,
    classes: Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
    dataset: str = "",
    overwrite: bool = False,
) -> Path:
    """Read a ``.pt``/``.pth`` checkpoint without running code and save it as a loadable run directory.

    The checkpoint may be a plain state dict or a dictionary holding one (under ``state_dict``,
    ``model`` ...); ``module.`` / ``_orig_mod.`` prefixes from DDP and ``torch.compile`` are
    stripped, and torchvision's legacy DenseNet keys (``norm.1`` ...) are renamed with
    :func:`densenet.models.convert_legacy_keys`. The weights must fit the model exactly.

    Args:
        src: The pickled checkpoint.
        dst_dir: Folder for ``model.safetensors`` and ``model.json`` (created if needed).
        model_name: Registered model name, e.g. ``"densenet121"``.
        model_kwargs: Builder arguments (``num_classes``, ``in_channels`` ...); ``num_classes``
            defaults to ``len(classes)`` when classes are given, else the registry's default.
        classes: Class names; default ``"0"``, ``"1"``, ...
        preprocessing: How images become inputs; default: the registry's input size with mean 0 and
            std 1 (pass ImageNet's mean and std for torchvision weights).
        dataset: Name of the training dataset, recorded in ``model.json``.
        overwrite: Replace weights already in ``dst_dir``.

    Returns:
        The path of the written ``model.safetensors``.

    Raises:
        UnsafeFileError: if the file needs more than tensors and plain containers to unpickle.
        ExportError: if the file is unreadable, holds no state dict, or does not fit the model.
    """
    src, dst_dir = Path(src), Path(dst_dir)
    if not overwrite and (dst_dir / WEIGHTS_FILE).exists():
        raise ExportError(f"{dst_dir / WEIGHTS_FILE} already exists; choose another folder or pass overwrite=True")
    state = _strip_wrappers(_find_state_dict(_load_weights_only(src), src))
    info = model_info(model_name)
    kwargs = dict(model_kwargs or {})
    if classes is not None:
        kwargs.setdefault("num_classes", len(classes))
    kwargs.setdefault("num_classes", info.num_classes)
    kwargs.setdefault("in_channels", info.input_size[0])
    model = create_model(model_name, **kwargs)
    try:
        load_torchvision_state_dict(model, state)
    except ValueError as exc:
        raise ExportError(f"{src} does not fit {model_name} with {kwargs}: {exc}") from None
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(kwargs["num_classes"])]
    if len(names) != kwargs["num_classes"]:
        raise ExportError(f"{len(names)} class names given for a model with num_classes={kwargs['num_classes']}")
    channels = kwargs["in_channels"]
    pre = preprocessing or Preprocessing(channels=channels, image_size=info.input_size[1],
                                         mean=[0.0] * channels, std=[1.0] * channels)
    card = ModelCard(model=model_name, model_kwargs=kwargs, classes=names, preprocessing=pre, dataset=dataset)
    return save_model(dst_dir, model, card)


def _load_weights_only(src: Path) -> Any:
    if not src.is_file():
        raise ExportError(f"checkpoint {src} does not exist or is not a file")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(src, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), lines[0] if lines else "")
        raise UnsafeFileError(
            f"{src} was refused by the restricted unpickler (torch.load weights_only=True): {detail}. It is not a "
            "plain-weights checkpoint: loading it would need arbitrary Python objects, which could run code, or it "
            "is corrupt. Only convert files you trust; if it is yours, re-save just model.state_dict()") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise ExportError(f"{src} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None


def _find_state_dict(obj: Any, src: Path, depth: int = 0) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return dict(obj)
        if depth < 2:
            for key in _NESTED_KEYS:
                if isinstance(obj.get(key), Mapping):
                    return _find_state_dict(obj[key], src, depth + 1)
    keys = f" (top-level keys: {', '.join(map(str, list(obj)[:8]))})" if isinstance(obj, Mapping) else ""
    raise ExportError(f"{src} holds no state dict of tensors{keys}; save model.state_dict() and convert that")


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


__all__ = ["convert_torch_checkpoint"]

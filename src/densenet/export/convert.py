"""Converting a weights file (a pickled ``.pt``/``.pth`` above all) into ``model.safetensors`` + ``model.json``.

The tools only read safetensors weights, which cannot carry code. A ``.pt`` file is a pickle, and unpickling
can call any function the file names. The conversion reads it with
:func:`densenet.models.read_weights`, i.e. ``torch.load(weights_only=True)`` only: PyTorch's restricted
unpickler accepts tensors and plain containers and refuses everything else before calling it. It fits the
weights with :func:`densenet.models.load_weights`, the one implementation the trainer also uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from densenet.data.datasets import imagenet_stats
from densenet.export.formats import ExportError
from densenet.models import Weights, create_model, load_weights, model_info, read_weights
from densenet.rundir import WEIGHTS_FILE, ModelCard, Preprocessing, save_model

# torchvision's evaluation transform for its ImageNet weights: resize the short side to 256, centre-crop 224.
TORCHVISION_CROP_PCT = 0.875


def torchvision_preprocessing(model_name: str, channels: int = 3) -> Preprocessing:
    """The preprocessing torchvision's ImageNet weights expect, at ``model_name``'s registered input size.

    Args:
        model_name: Registered model name; its input size is the image size (224 for ``densenet121``).
        channels: 3, or 1 for a model whose stem was summed over RGB: mean and std are then the luma-weighted
            sums of the RGB ones, as for a gray image folder (:func:`densenet.data.datasets.imagenet_stats`).

    Returns:
        Centre-crop resizing (crop_pct 0.875, bilinear) with ImageNet's mean and std.
    """
    mean, std = (list(v) for v in imagenet_stats(channels))
    return Preprocessing(channels=channels, image_size=model_info(model_name).input_size[1], mean=mean, std=std,
                         resize="center-crop", crop_pct=TORCHVISION_CROP_PCT, interpolation="bilinear")


def convert_torch_checkpoint(
    src: str | Path | Weights,
    dst_dir: str | Path,
    model_name: str,
    *,
    model_kwargs: Mapping[str, Any] | None = None,
    classes: Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
    dataset: str = "",
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Read a checkpoint without running code, fit it into ``model_name`` and save it as a run directory.

    Reading follows :func:`densenet.models.read_weights` (a ``.pt``/``.pth``, nested or not, with DDP,
    ``torch.compile`` or legacy torchvision keys; also a ``.safetensors`` file or a run directory) and fitting
    :func:`densenet.models.load_weights`: a head of another number of classes is re-initialized, a 3-channel
    stem is summed for ``in_channels=1``, anything else must match exactly.

    Args:
        src: The checkpoint, or weights already read with :func:`~densenet.models.read_weights`.
        dst_dir: Folder for ``model.safetensors`` and ``model.json`` (created if needed).
        model_name: Registered model name, e.g. ``"densenet121"``.
        model_kwargs: Builder arguments (``num_classes``, ``in_channels`` ...); ``num_classes``
            defaults to ``len(classes)`` when classes are given, else the registry's default.
        classes: Class names; default ``"0"``, ``"1"``, ...
        preprocessing: How images become inputs; default: the registry's input size with mean 0 and
            std 1 (pass :func:`torchvision_preprocessing` for torchvision weights).
        dataset: Name of the training dataset, recorded in ``model.json``.
        overwrite: Replace weights already in ``dst_dir``.
        log: Called with each adaptation line of :func:`~densenet.models.load_weights`.

    Returns:
        The path of the written ``model.safetensors``.

    Raises:
        UnsafeFileError: if the file needs more than tensors and plain containers to unpickle.
        WeightsError: if the file is missing, unreadable, holds no state dict, or does not fit the model.
        ExportError: if ``dst_dir`` already holds weights, or the class names do not match ``num_classes``.
    """
    dst_dir = Path(dst_dir)
    if not overwrite and (dst_dir / WEIGHTS_FILE).exists():
        raise ExportError(f"{dst_dir / WEIGHTS_FILE} already exists; choose another folder or pass overwrite=True")
    weights = src if isinstance(src, Weights) else read_weights(src)
    info = model_info(model_name)
    kwargs, names = _kwargs_and_classes(info.num_classes, info.input_size[0], model_kwargs, classes)
    model = create_model(model_name, **kwargs)
    load_weights(model, weights, log=log)
    channels = kwargs["in_channels"]
    pre = preprocessing or Preprocessing(channels=channels, image_size=info.input_size[1],
                                         mean=[0.0] * channels, std=[1.0] * channels)
    card = ModelCard(model=model_name, model_kwargs=kwargs, classes=names, preprocessing=pre, dataset=dataset)
    return save_model(dst_dir, model, card)


def _kwargs_and_classes(default_classes: int, default_channels: int, model_kwargs: Mapping[str, Any] | None,
                        classes: Sequence[str] | None) -> tuple[dict[str, Any], list[str]]:
    """The builder arguments (``num_classes`` from ``classes`` or the registry) and one name per class."""
    kwargs = dict(model_kwargs or {})
    if classes is not None:
        kwargs.setdefault("num_classes", len(classes))
    kwargs.setdefault("num_classes", default_classes)
    kwargs.setdefault("in_channels", default_channels)
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(kwargs["num_classes"])]
    if len(names) != kwargs["num_classes"]:
        raise ExportError(f"{len(names)} class names given for a model with num_classes={kwargs['num_classes']}; "
                          "give one name per class")
    return kwargs, names


__all__ = ["TORCHVISION_CROP_PCT", "convert_torch_checkpoint", "torchvision_preprocessing"]

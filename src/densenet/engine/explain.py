"""Grad-CAM (Selvaraju et al. 2017): where in a picture a finished run looks when it scores a class.

The activation ``A`` of one layer (by default the output of the last dense block, the input of
``features.norm5``; for a ResNet its last stage) is kept in the forward pass. For a class score ``y``
(its logit), each channel's weight is the spatial mean of ``dy/dA``, and the map is
``ReLU(sum_c w_c A_c)``. The map is resampled bilinearly onto the original picture through the
evaluation transform's resize and centre crop, so it lands on the pixels the model saw; what the crop
cut off gets zero.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from densenet.errors import DataError, UsageError
from densenet.rundir import load

__all__ = ["explain", "grad_cam", "heatmap_on_original", "overlay", "resolve_layer"]

DEFAULT_OUT = "explain"  # the CLI's --out: a folder under the current directory
ALPHA = 0.5  # how strongly the heatmap covers the picture


def resolve_layer(model: nn.Module, layer: str | None = None) -> tuple[str, str]:
    """The layer Grad-CAM reads: ``(module name, "input" or "output")``.

    Args:
        model: A DenseNet, a ResNet, or any model with 4-D feature maps.
        layer: A name from ``model.named_modules()`` (its output is used); None: the input of ``features.norm5``
            (the last dense block's output) for a DenseNet, the last ``layerN`` stage for a ResNet.

    Raises:
        UsageError: ``layer`` is not a module of ``model``, or None and the model has no default.
    """
    modules = dict(model.named_modules())
    label = getattr(getattr(model, "card", None), "model", type(model).__name__)
    if layer is None:
        if "features.norm5" in modules:
            return "features.norm5", "input"
        stages = [name for name in modules if re.fullmatch(r"layer\d+", name)]
        if stages:
            return max(stages, key=lambda name: int(name[5:])), "output"
        raise UsageError(f"{label} has no default layer for Grad-CAM; choose one with --layer "
                         f"(layers: {_some_layers(modules)})")
    if not layer or layer not in modules:
        raise UsageError(f"{label} has no layer {layer!r}; layers: {_some_layers(modules)} "
                         "(or any deeper name of model.named_modules(), such as features.denseblock4.denselayer1)")
    return layer, "output"


def _some_layers(modules: dict[str, nn.Module]) -> str:
    """The top-level module names and those directly under ``features``."""
    names = [name for name in modules if name and (name.count(".") == 0 or
                                                   (name.count(".") == 1 and name.startswith("features.")))]
    return ", ".join(names)


def grad_cam(model: nn.Module, x: torch.Tensor, classes: Sequence[int] | None = None,
             layer: str | None = None) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """Grad-CAM maps of one input at the resolution of ``layer``.

    The activation is kept by a hook that hands the rest of the network a copy, so in-place operations after the
    layer (``ReLU(inplace=True)``) change the copy and not the activation or its gradient. Parameters' ``.grad``
    are left untouched, and so is the model's train/eval mode.

    Args:
        model: The classifier (in eval mode, as :func:`densenet.rundir.load` returns it).
        x: One normalized input, (1, C, H, W).
        classes: Class indices to explain; None: the top class.
        layer: See :func:`resolve_layer`.

    Returns:
        The logits (K,), the class indices explained, and their maps (len(classes), h, w), >= 0, unnormalized.

    Raises:
        UsageError: an unknown layer, or one whose output is not a (B, C, H, W) feature map.
    """
    name, where = resolve_layer(model, layer)
    kept: list[torch.Tensor] = []

    def keep(t: object) -> torch.Tensor:
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise UsageError(f"layer {name!r} gives {shape}, not a (B, C, H, W) feature map; choose a convolutional "
                             "layer or block with --layer")
        kept[:] = [t]
        return t.clone()  # downstream in-place ops change this copy, not the kept activation

    module = model.get_submodule(name)
    if where == "input":
        handle = module.register_forward_pre_hook(lambda _m, args: (keep(args[0]), *args[1:]))
    else:
        handle = module.register_forward_hook(lambda _m, _args, out: keep(out))
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True))[0]  # (K,)
            if not kept:
                raise UsageError(f"layer {name!r} does not run when the model classifies a picture; choose another")
            chosen = [int(logits.argmax())] if classes is None else [int(c) for c in classes]
            cams = []
            for n, c in enumerate(chosen):
                (grad,) = torch.autograd.grad(logits[c], kept[0], retain_graph=n < len(chosen) - 1)
                weights = grad[0].mean(dim=(1, 2))  # (C,)
                cams.append(F.relu((weights[:, None, None] * kept[0][0]).sum(0)))  # (h, w)
    finally:
        handle.remove()
    return logits.detach(), chosen, torch.stack(cams).detach()


def _axis_weights(n_out: int, scale: float, offset: int, size: int, n_src: int) -> np.ndarray:
    """(n_out, n_src) bilinear weights from map cells to the pixels of one image axis; zero outside the crop.

    Pixel ``i``'s centre lies at ``(i + 0.5) * scale - offset`` in model-input pixels (``scale``: resized over
    original length, ``offset``: the crop's start), which is ``size`` long and covered by ``n_src`` cells.
    """
    u = (np.arange(n_out) + 0.5) * scale - offset
    s = np.clip(u * n_src / size - 0.5, 0, n_src - 1)  # align_corners=False, clamped at the border
    i0 = np.floor(s).astype(int)
    i1 = np.minimum(i0 + 1, n_src - 1)
    frac = s - i0
    w = np.zeros((n_out, n_src))
    rows = np.arange(n_out)
    np.add.at(w, (rows, i0), 1 - frac)
    np.add.at(w, (rows, i1), frac)
    w[(u < 0) | (u >= size)] = 0
    return w


def heatmap_on_original(cam: np.ndarray | torch.Tensor, transform: Any, decoded_size: tuple[int, int],
                        original_size: tuple[int, int]) -> np.ndarray:
    """A map of the model input, put back on the original picture through the transform's resize and crop.

    Args:
        cam: (h, w) map over the model input (which the evaluation transform cut from the picture).
        transform: The run's :class:`~densenet.data.photos.EvalTransform`.
        decoded_size: (width, height) of the decoded picture the transform was applied to (a JPEG may be
            decoded smaller than its file, see :func:`~densenet.data.photos.open_image`).
        original_size: (width, height) of the picture at full size.

    Returns:
        float32 (height, width): bilinear between map cells, zero where the crop cut the picture off.
    """
    cam = np.asarray(cam, dtype=np.float64)
    (new_w, new_h), (left, top) = transform.geometry(*decoded_size)
    width, height = original_size
    rx = _axis_weights(width, new_w / width, left, transform.size, cam.shape[1])  # (W, w)
    ry = _axis_weights(height, new_h / height, top, transform.size, cam.shape[0])  # (H, h)
    return (ry @ cam @ rx.T).astype(np.float32)  # (H, W)


def _jet(v: np.ndarray) -> np.ndarray:
    """The jet colour map (blue, cyan, yellow, red) of values in [0, 1]: uint8 (..., 3)."""
    rgb = [np.clip(1.5 - np.abs(4 * v - k), 0, 1) for k in (3, 2, 1)]
    return (np.stack(rgb, axis=-1) * 255).round().astype(np.uint8)


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = ALPHA) -> Image.Image:
    """``image`` (any mode) with ``heat`` (H, W, values in [0, 1]) blended over it in jet colours, RGB."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    mixed = (1 - alpha) * base + alpha * _jet(heat).astype(np.float32)
    return Image.fromarray(mixed.round().clip(0, 255).astype(np.uint8))


def _class_indices(known: Sequence[str], names: Sequence[str] | None) -> list[int] | None:
    if not names:
        return None
    unknown = [name for name in names if name not in known]
    if unknown:
        shown = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
        raise UsageError(f"class {unknown[0]!r} is not one of the run's classes: {shown}")
    return [list(known).index(name) for name in dict.fromkeys(names)]


def _file_stem(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "image"


class _Names:
    """Heatmap file names: ``STEM.cam.png``, or ``STEM.CLASS.cam.png`` beside others; repeated stems get ``-2``..."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def stem(self, path: str | Path) -> str:
        base = _file_stem(Path(path).stem)
        stem, n = base, 1
        while stem in self.used:
            n += 1
            stem = f"{base}-{n}"
        self.used.add(stem)
        return stem


def _model_input(path: str | Path, pre: Any, transform: Any) -> tuple[torch.Tensor, tuple[int, int]]:
    """The normalized (1, C, H, W) input of one picture, as ``densenet predict`` makes it, and the decoded size."""
    from densenet.data.photos import decode

    img = decode(path, pre.channels, transform.decode_size())
    mean = torch.tensor(pre.mean).view(-1, 1, 1)
    std = torch.tensor(pre.std).view(-1, 1, 1)
    return ((transform(img).float() / 255.0 - mean) / std).unsqueeze(0), img.size


def _explain_one(model: nn.Module, path: str | Path, transform: Any, indices: list[int] | None, layer: str | None,
                 out_dir: Path | None, names: _Names) -> dict[str, Any]:
    """One picture's entry of :func:`explain`; DataError if it cannot be read."""
    from densenet.data.photos import convert_mode, open_image

    card = model.card
    x, decoded_size = _model_input(path, card.preprocessing, transform)
    original = convert_mode(open_image(path), 3)  # at full size, for the picture the heatmap is drawn on
    logits, chosen, cams = grad_cam(model, x, indices, layer)
    probs = torch.sigmoid(logits) if card.multilabel else torch.softmax(logits, dim=0)
    stem = names.stem(path) if out_dir is not None else ""
    explanations = []
    for c, cam in zip(chosen, cams):
        heat = heatmap_on_original(cam, transform, decoded_size, original.size)
        peak = float(heat.max())
        heat = heat / peak if peak > 0 else heat
        y, x_ = np.unravel_index(int(heat.argmax()), heat.shape)
        entry: dict[str, Any] = {"class": card.classes[c], "index": c, "probability": float(probs[c]),
                                 "peak": [int(x_), int(y)] if peak > 0 else None, "heatmap": None}
        if out_dir is None:
            entry["cam"] = heat
        else:
            middle = f".{_file_stem(card.classes[c])}" if len(chosen) > 1 else ""
            target = out_dir / f"{stem}{middle}.cam.png"
            overlay(original, heat).save(target)
            entry["heatmap"] = str(target)
        explanations.append(entry)
    return {"file": str(path), "explanations": explanations}


def explain(run_dir: str | Path, images: Sequence[str | Path], classes: Sequence[str] | None = None,
            layer: str | None = None, out_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Grad-CAM heatmaps of picture files for a finished run, on each picture at its original size.

    Each picture is preprocessed exactly as ``densenet predict`` does it. The score of a class is its logit;
    its probability is the softmax over the classes, or its sigmoid for a multi-label run.

    Args:
        run_dir: The ``--out`` folder of a finished ``densenet train``.
        images: Paths of picture files (PNG, JPEG, ...).
        classes: Class names to explain, one heatmap each; None: the most probable class.
        layer: A module name of the model (see :func:`resolve_layer`); None: the last dense block's output
            (a ResNet's last stage).
        out_dir: Write each picture with its heatmap blended over it, at its original size, as
            ``out_dir/STEM.cam.png`` (``STEM.CLASS.cam.png`` with several classes; a repeated stem gets ``-2``,
            ...); created if missing. None: write nothing and return the heatmaps instead.

    Returns:
        One dict per file, in order: ``{"file", "explanations": [{"class", "index", "probability", "peak",
        "heatmap"}, ...]}``, where ``peak`` is the heatmap's maximum as ``[x, y]`` in original pixels (None if the
        map is all zero) and ``heatmap`` the file written (None without ``out_dir``, when a ``"cam"`` entry holds
        the float32 (height, width) map scaled to [0, 1] instead); or ``{"file", "error"}`` for a file that
        could not be read (the others still run).

    Raises:
        RunDirError: ``run_dir`` is not a complete run directory.
        UsageError: an unknown class or layer (checked before any picture is read).
    """
    model = load(run_dir)
    transform = model.card.preprocessing.transform()
    indices = _class_indices(model.card.classes, classes)
    resolve_layer(model, layer)
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    names = _Names()
    results: list[dict[str, Any]] = []
    for path in images:
        try:
            results.append(_explain_one(model, path, transform, indices, layer, out, names))
        except DataError as exc:
            results.append({"file": str(path), "error": str(exc)})
    return results

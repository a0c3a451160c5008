"""Model cost: parameter counts, forward FLOPs, the zoo table ``densenet models`` prints, and the one-model
summary ``densenet summary`` prints."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from densenet.models.registry import create_model, list_models, model_info


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Forward FLOPs for one image, a multiply-add counting as 2 (``torch.utils.flop_counter``).

    Convolutions and matrix products are counted; BatchNorm, ReLU and pooling are not. The
    model runs once in eval mode on a zero image on its own device (``meta`` works and costs
    nothing); its train/eval mode is restored afterwards.

    Args:
        model: Any model.
        input_size: One image's (C, H, W).

    Returns:
        The FLOP count.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros((1, *input_size), device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def model_table(pattern: str = "*") -> list[dict[str, Any]]:
    """One row per registered model matching ``pattern``, measured at its defaults.

    Models are built on the ``meta`` device, so no memory is allocated and no weights are
    initialized; the whole table takes a few seconds.

    Returns:
        Dicts with ``name``, ``family``, ``source``, ``params`` (counted), ``gflops`` (at the
        default input size) and ``input_size`` (C, H, W).
    """
    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        with torch.device("meta"):
            model = create_model(name)
        rows.append({"name": name, "family": info.family, "source": info.source, "params": count_params(model),
                     "gflops": count_flops(model, info.input_size) / 1e9, "input_size": info.input_size})
    return rows


def summarize(name: str, input_size: tuple[int, int, int] | None = None,
              num_classes: int | None = None) -> dict[str, Any]:
    """What ``densenet summary`` shows: each top-level stage's output shape for one image, parameters and FLOPs.

    Args:
        name: A registered model name.
        input_size: One image's (C, H, W); default: the model's own.
        num_classes: Classifier outputs; default: the model's own.

    Returns:
        ``{"model", "input_size", "params", "flops", "layers": [{"name", "type", "output_shape"}]}``
        (docs/interface.md); ``flops`` counts one image's forward pass.

    Raises:
        ConfigError: an unknown model name.
        InputSizeError: an input too small for the model.
    """
    from densenet.models.shapes import stage_shapes

    size = input_size or model_info(name).input_size
    kwargs: dict[str, Any] = {"in_channels": size[0]}
    if num_classes:
        kwargs["num_classes"] = num_classes
    model = create_model(name, **kwargs).eval()
    layers = stage_shapes(model, size)  # first: it turns an input too small into an InputSizeError
    return {"model": name, "input_size": list(size), "params": count_params(model),
            "flops": count_flops(model, size), "layers": layers}

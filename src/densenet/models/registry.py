"""Model registry: builders are registered by name with their metadata as data.

``create_model(name, **kwargs)`` builds a model; ``list_models(pattern)`` lists names.
Each entry carries its default input size, the expected parameter count at its defaults
(checked by a test) and where the architecture comes from.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from densenet.errors import ConfigError

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model name.

    Attributes:
        name: The registered name.
        builder: Function returning the model; takes keyword arguments only.
        input_size: Default (C, H, W) the model is meant for.
        num_classes: Default number of classes.
        params: Expected number of parameters at the defaults (None if not pinned).
        source: Where the architecture comes from (paper, torchvision, textbook).
        family: A short family tag ("densenet", "resnet", ...).
    """

    name: str
    builder: Builder
    input_size: tuple[int, int, int]
    num_classes: int
    params: int | None
    source: str
    family: str
    defaults: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    input_size: tuple[int, int, int],
    num_classes: int,
    params: int | None,
    source: str,
    family: str,
) -> Callable[[Builder], Builder]:
    """Decorator that registers a builder under ``name``.

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, builder, input_size, num_classes, params, source, family)
        return builder

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Return the sorted model names matching a shell-style ``pattern`` (e.g. ``"densenet*"``)."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def model_info(name: str) -> ModelInfo:
    """Return the registry entry for ``name``.

    Raises:
        ConfigError: for an unknown name, suggesting close matches.
    """
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown model {name!r}.{hint} Run `densenet models` to list them.") from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name``.

    Args:
        name: A name from :func:`list_models`.
        **kwargs: Passed to the builder, e.g. ``in_channels``, ``num_classes``, ``memory_efficient``.

    Returns:
        A freshly initialized ``nn.Module``.
    """
    info = model_info(name)
    kwargs.setdefault("num_classes", info.num_classes)
    kwargs.setdefault("in_channels", info.input_size[0])
    return info.builder(**kwargs)


def _ensure_loaded() -> None:
    # Importing the model modules runs their @register_model decorators.
    import densenet.models  # noqa: F401

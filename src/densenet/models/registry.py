"""Model registry: builders are registered by name with their metadata as data.

``create_model(name, **kwargs)`` builds a model; ``list_models(pattern)`` lists names.
Each entry carries its default input size, the expected parameter count at its defaults
(checked by a test) and where the architecture comes from.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from densenet.errors import ConfigError
from densenet.models.pretrained import Weights, load_weights, read_weights

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
        defaults: The architecture arguments the builder passes to the model class.
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
    defaults: Mapping[str, Any] | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator that registers a builder under ``name``.

    Args:
        name: The model name.
        input_size: Default input (C, H, W).
        num_classes: Default number of classes.
        params: Expected parameter count at the defaults, or ``None``.
        source: Where the architecture comes from.
        family: Family tag.
        defaults: Architecture arguments the builder uses, recorded as data.

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, builder, tuple(input_size), num_classes, params, source, family,
                                    dict(defaults or {}))
        return builder

    return decorate


def register_config(
    name: str,
    model_cls: Callable[..., nn.Module],
    config: Mapping[str, Any],
    **metadata: Any,
) -> Builder:
    """Register ``model_cls(**config)`` under ``name``: a builder that is only numbers.

    Keyword arguments given to :func:`create_model` override ``config``. The builder carries
    ``model_cls``'s signature, so unknown arguments are reported by name.

    Args:
        name: The model name.
        model_cls: The model class (e.g. ``DenseNet``).
        config: Constructor arguments that define this variant.
        **metadata: ``input_size``, ``num_classes``, ``params``, ``source``, ``family`` as in :func:`register_model`.

    Returns:
        The registered builder.
    """
    frozen = dict(config)

    def build(**kwargs: Any) -> nn.Module:
        return model_cls(**{**frozen, **kwargs})

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"{getattr(model_cls, '__name__', model_cls)} with {frozen}."
    build.__signature__ = inspect.signature(model_cls)  # type: ignore[attr-defined]
    return register_model(name, defaults=frozen, **metadata)(build)


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


def create_model(name: str, weights: str | Path | Weights | None = None, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name``, optionally starting from pretrained weights.

    Args:
        name: A name from :func:`list_models`.
        weights: A weights file or run directory (see :func:`~densenet.models.pretrained.read_weights`), or
            weights already read; loaded with :func:`~densenet.models.pretrained.load_weights`, so a head of
            another size keeps its fresh initialization and a 3-channel stem is summed for ``in_channels=1``.
        **kwargs: Passed to the builder, e.g. ``in_channels``, ``num_classes``, ``memory_efficient``.

    Returns:
        A freshly initialized ``nn.Module``, holding ``weights`` if given.

    Raises:
        ConfigError: for an unknown name or an argument the model does not take.
        ValueError: for an argument value the model rejects.
        WeightsError: if ``weights`` cannot be read or do not fit the model.
        UnsafeFileError: if a pickled ``weights`` file would need code to load.
    """
    info = model_info(name)
    _check_arguments(info, kwargs)
    kwargs.setdefault("num_classes", info.num_classes)
    kwargs.setdefault("in_channels", info.input_size[0])
    model = info.builder(**kwargs)
    if weights is not None:
        load_weights(model, weights if isinstance(weights, Weights) else read_weights(weights))
    return model


def _check_arguments(info: ModelInfo, kwargs: Mapping[str, Any]) -> None:
    params = inspect.signature(info.builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ConfigError(f"model {info.name!r} does not take argument(s) {', '.join(unknown)}; "
                          f"it takes: {', '.join(params)}")


def _ensure_loaded() -> None:
    # Importing the model modules runs their @register_model decorators.
    import densenet.models  # noqa: F401

"""Pretrained weights: read a weights source and fit it into one of this package's models.

A source is a pickled checkpoint (``.pth``/``.pt``/``.bin``/``.ckpt``, e.g. torchvision's ImageNet
DenseNet-121), a ``.safetensors`` file or a run directory of this project. :func:`read_weights` finds the
state dict inside it, strips wrapper prefixes and renames torchvision's legacy keys; :func:`load_weights`
copies it into a model, re-initializing a head of another size and adapting a stem of 1 or 3 input channels.

Pickles are read with ``torch.load(weights_only=True)`` only: PyTorch's restricted unpickler accepts
tensors and plain containers and refuses anything else before calling it, so a file carrying code never runs.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from densenet.errors import UnsafeFileError, WeightsError
from densenet.models.weights import convert_legacy_keys

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
# Where training scripts nest the weights inside a checkpoint dictionary, in the order they are tried.
NESTED_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "module", "net",
               "state_dict_ema", "model_ema", "ema")
# A prefix on every key: DDP (module.), torch.compile (_orig_mod.), Lightning (model.), a named attribute.
_PREFIX = re.compile(r"^(module|_orig_mod|model|densenet\d+)\.")
_SEARCH_DEPTH = 3
_SHOWN_KEYS = 3


@dataclass(frozen=True, eq=False)
class Weights:
    """A state dict read from a file, with where it came from.

    Attributes:
        state: The tensors, keyed as this package names them: wrapper prefixes stripped, legacy keys renamed.
        path: The file read (for a run directory: its ``model.safetensors``).
        sha256: Hex SHA-256 of that file.
    """

    state: dict[str, torch.Tensor] = field(repr=False)
    path: Path
    sha256: str

    def describe(self) -> dict[str, str]:
        """Where the weights came from, for a run's records: ``{"path": ..., "sha256": ...}``."""
        return {"path": str(self.path), "sha256": self.sha256}


def read_weights(source: str | Path) -> Weights:
    """Read the state dict of a weights file or run directory, without running any code it may carry.

    Args:
        source: A ``.pth``/``.pt``/``.bin``/``.ckpt`` checkpoint (plain or nested under ``state_dict``,
            ``model``, ``state_dict_ema`` ...), a ``.safetensors`` file, or a run directory holding
            ``model.safetensors``.

    Returns:
        The tensors with ``module.``/``_orig_mod.``/``model.``/``densenetNNN.`` prefixes stripped and
        torchvision's legacy dense-layer keys renamed, the file's path and its SHA-256.

    Raises:
        WeightsError: if the source is missing, unreadable, or holds no state dict of tensors.
        UnsafeFileError: if a pickle needs more than tensors and plain containers to load.
    """
    from densenet.rundir.files import WEIGHTS_FILE  # lazily: rundir imports the models

    path = Path(source)
    if not path.exists():
        raise WeightsError(f"weights {path} do not exist; pass a .pth/.pt/.bin checkpoint, a .safetensors file "
                           "or a run directory")
    if path.is_dir():
        if not (path / WEIGHTS_FILE).is_file():
            raise WeightsError(f"{path} is not a run directory with trained weights (no {WEIGHTS_FILE} in it); "
                               "pass the --out folder of a finished `densenet train`, or a weights file")
        path = path / WEIGHTS_FILE
    if path.suffix == ".safetensors":
        raw: Any = _read_safetensors(path)
    elif path.suffix in PICKLE_SUFFIXES:
        raw = _read_pickle(path)
    else:
        raise WeightsError(f"{path}: unknown weights format {path.suffix!r}; pass a "
                           f"{'/'.join(PICKLE_SUFFIXES)} checkpoint, a .safetensors file or a run directory")
    state = convert_legacy_keys(_strip_prefixes(_find_state_dict(raw, path)))
    return Weights(dict(state), path, _sha256(path))


def load_weights(model: nn.Module, weights: Weights | Mapping[str, torch.Tensor], *,
                 log: Callable[[str], None] | None = None, adapt: bool = True) -> list[str]:
    """Copy the weights into ``model`` in place, strictly, after two adaptations; return the lines it logged.

    A classifier with another number of classes than the model's is not copied: the model keeps its own
    freshly initialized head. A stem convolution for 3 input channels is summed over them for a 1-channel
    model (a gray image then gives what the same image repeated into RGB gives); one for 1 channel is repeated
    and divided by 3 for a 3-channel model. Everything else must match; ``num_batches_tracked`` may be missing,
    as in old checkpoints. The tensors of ``weights`` are not modified.

    Args:
        model: A model of this package; its head is its ``head_name`` attribute (``classifier``, ``fc``).
        weights: From :func:`read_weights`, or a state dict (prefixes and legacy keys are handled the same way).
        log: Called with each adaptation line, e.g. ``classifier: checkpoint 1000 classes, this run 5,
            re-initialized``.
        adapt: ``False`` refuses any difference instead of adapting the head or the stem.

    Returns:
        The adaptation lines, in order; empty when the weights fit as they are.

    Raises:
        WeightsError: naming the first key that does not fit, or a few missing and unexpected keys.
    """
    if isinstance(weights, Weights):
        state, where = dict(weights.state), f"weights {weights.path}"
    else:
        state, where = dict(convert_legacy_keys(_strip_prefixes(dict(weights)))), "the weights"
    expected = model.state_dict()
    what = f"this {type(model).__name__}"
    lines = (_keep_new_head(model, state, expected) + _adapt_stem(model, state, expected, where, what)) if adapt else []
    _check_keys(state, expected, where, what)
    _check_shapes(state, expected, where, what)
    model.load_state_dict(state, strict=True)
    if log is not None:
        for line in lines:
            log(line)
    return lines


def _read_pickle(path: Path) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), lines[0] if lines else "")
        raise UnsafeFileError(
            f"{path} was refused by the restricted unpickler (torch.load weights_only=True): {detail}. It is not a "
            "plain-weights checkpoint: loading it would need arbitrary Python objects, which could run code, or it "
            "is corrupt. Only use files you trust; if it is yours, re-save just model.state_dict()") from None
    except (RuntimeError, OSError, EOFError, ValueError, IndexError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "no data"
        raise WeightsError(f"{path} is truncated or not a PyTorch checkpoint ({type(exc).__name__}: {first}); "
                           "download or save it again") from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({exc}); download or export it again") from None


def _find_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    found = _search(obj, 0)
    if found is None:
        top = f"top-level keys: {', '.join(map(str, list(obj)[:8]))}" if isinstance(obj, Mapping) else \
            f"it holds a {type(obj).__name__}"
        raise WeightsError(f"{path} holds no state dict of tensors ({top}); save model.state_dict() and use that")
    return found


def _search(obj: Any, depth: int) -> dict[str, torch.Tensor] | None:
    """The state dict in ``obj``: itself if all tensors, else the first found under NESTED_KEYS, else its tensors.

    A dictionary that mixes tensors with other entries (``{"conv.weight": ..., "epoch": 3}``) counts as a state
    dict only when nothing nested under a known key is one: a checkpoint's tensor-valued metadata must not win
    over the weights it holds.
    """
    if not isinstance(obj, Mapping) or not obj:
        return None
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if len(tensors) == len(obj):
        return tensors
    if depth < _SEARCH_DEPTH:
        for key in NESTED_KEYS:
            found = _search(obj.get(key), depth + 1)
            if found is not None:
                return found
    return tensors if any("." in k for k in tensors) else None


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    while state:
        m = _PREFIX.match(next(iter(state)))
        if not m or not all(k.startswith(m[0]) for k in state):
            break
        state = {k[len(m[0]):]: v for k, v in state.items()}
    return state


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _keep_new_head(model: nn.Module, state: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
                   ) -> list[str]:
    """For a checkpoint head of another number of classes, put the model's own head into ``state``."""
    head = getattr(model, "head_name", None)
    key = f"{head}.weight"
    if head is None or key not in state or key not in expected:
        return []
    theirs, ours = state[key].shape, expected[key].shape
    if len(theirs) != 2 or theirs[1:] != ours[1:] or theirs[0] == ours[0]:
        return []
    for name in (key, f"{head}.bias"):
        if name in expected:
            state[name] = expected[name]
    return [f"{head}: checkpoint {theirs[0]} classes, this run {ours[0]}, re-initialized"]


def _adapt_stem(model: nn.Module, state: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                where: str, what: str) -> list[str]:
    """Sum a 3-channel stem convolution for a 1-channel model, or spread a 1-channel one over 3 channels."""
    stem = next((name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    key = f"{stem}.weight"
    if stem is None or key not in state or key not in expected:
        return []
    theirs, ours = state[key], expected[key]
    if theirs.dim() != 4 or theirs.shape[1] == ours.shape[1] or _but_channels(theirs) != _but_channels(ours):
        return []
    have, want = theirs.shape[1], ours.shape[1]
    if (have, want) == (3, 1):
        state[key], how = theirs.sum(dim=1, keepdim=True), "summed over channels"  # (O, 1, k, k)
    elif (have, want) == (1, 3):
        state[key], how = theirs.repeat(1, 3, 1, 1) / 3, "repeated over channels and divided by 3"  # (O, 3, k, k)
    else:
        raise WeightsError(f"{where} do not fit {what}: {key}: checkpoint {have} input channels, this model {want}; "
                           f"only 3 -> 1 and 1 -> 3 can be adapted: build the model with --in-channels {have}")
    return [f"{stem}: checkpoint {have} input channels, this model {want}: {how}"]


def _but_channels(weight: torch.Tensor) -> tuple[int, ...]:
    return (weight.shape[0], *weight.shape[2:])  # (O, k, k) of an (O, C, k, k) convolution weight


def _check_keys(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], where: str,
                what: str) -> None:
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        sides = "; ".join(f"{side} ({len(keys)}): {', '.join(keys[:_SHOWN_KEYS])}"
                          f"{' ...' if len(keys) > _SHOWN_KEYS else ''}"
                          for side, keys in (("missing keys", missing), ("unexpected keys", unexpected)) if keys)
        raise WeightsError(f"{where} look like another architecture than {what}: {sides}; "
                           "pass the --model it was trained as")


def _check_shapes(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], where: str,
                  what: str) -> None:
    for key, ours in expected.items():
        if key in state and state[key].shape != ours.shape:
            raise WeightsError(f"{where} do not fit {what}: {key}: checkpoint {tuple(state[key].shape)} vs model "
                               f"{tuple(ours.shape)}; the file is for another architecture: pass the --model it "
                               "was trained as")


__all__ = ["NESTED_KEYS", "PICKLE_SUFFIXES", "Weights", "load_weights", "read_weights"]

"""Reading the official CIFAR-10/100 "python version" pickles safely.

The batches are Python 2 pickles of dicts with bytes keys (``b'data'``, ``b'labels'``...).
Unpickling runs whatever the file names, so only the few globals a numpy array needs are let
through; the archive is read in memory and never extracted to disk, so a crafted tar cannot
write anywhere either.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from densenet.data._specs import CifarLayout
from densenet.errors import DataError

__all__ = ["read_cifar", "restricted_loads"]

# Globals a pickled ndarray refers to; numpy 2 moved numpy.core to numpy._core, and
# files written by either name must load.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}
_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "str", "int", "float", "complex"}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, label: str) -> None:
        super().__init__(file, encoding="bytes")
        self.label = label

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            # Resolve via numpy._core when present: importing numpy.core warns on numpy 2.
            target = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray  # type: ignore[attr-defined]
            if name in ("_reconstruct", "scalar"):
                return getattr(target, name)
            return getattr(np, name)
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return super().find_class("builtins", name)
        raise DataError(
            f"{self.label}: refusing to unpickle {module}.{name}: a CIFAR batch holds only arrays, lists and "
            "dicts, so this file is not a genuine CIFAR file (it could run code). Delete it and download again."
        )


def restricted_loads(data: bytes, label: str) -> object:
    """Unpickle ``data`` allowing only builtin containers and numpy arrays.

    Raises:
        DataError: the pickle refers to anything else, or is corrupt.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), label).load()
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure inside pickle means a corrupt file
        raise DataError(f"{label}: corrupt pickle ({type(exc).__name__}: {exc}). Download the dataset again.") from None


def _read_members(source: Path, layout: CifarLayout, names: list[str]) -> dict[str, bytes]:
    """The bytes of ``names`` from an extracted folder or from the .tar.gz."""
    if source.is_dir():
        return {name: (source / name).read_bytes() for name in names}
    wanted = {f"{layout.extracted_dir}/{name}": name for name in names}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(source, "r:gz") as archive:
            for member in archive:
                # Only regular files at the exact expected paths; links, absolute or ".." paths never match.
                key = str(PurePosixPath(member.name))
                if member.isfile() and key in wanted:
                    handle = archive.extractfile(member)
                    assert handle is not None
                    found[wanted[key]] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{source}: cannot read the archive ({exc}). Delete it and download it again.") from None
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(f"{source}: the archive lacks {', '.join(f'{layout.extracted_dir}/{m}' for m in missing)}.")
    return found


def _get(batch: object, key: str, label: str) -> object:
    if not isinstance(batch, dict):
        raise DataError(f"{label}: expected a pickled dict, got {type(batch).__name__}.")
    for candidate in (key.encode(), key):  # official files have bytes keys; re-pickled copies may not
        if candidate in batch:
            return batch[candidate]
    raise DataError(f"{label}: missing key {key!r} (keys: {sorted(map(str, batch))}).")


def _decode_batch(batch: object, layout: CifarLayout, label: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(_get(batch, "data", label))
    labels = np.asarray(_get(batch, layout.labels_key, label), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{label}: expected data of shape (N, 3072) uint8, got {data.shape} {data.dtype}.")
    if labels.shape != (data.shape[0],):
        raise DataError(f"{label}: {data.shape[0]} images but {labels.size} labels.")
    # Each row is the red plane, then green, then blue, each 32x32 row-major.
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar(source: Path, layout: CifarLayout, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read one split of an official CIFAR dataset.

    Args:
        source: the extracted folder (e.g. ``cifar-10-batches-py``) or the ``.tar.gz``.
        layout: the dataset's layout (from its :class:`~densenet.data.sources.DatasetSpec`).
        split: ``"train"`` or ``"test"``.

    Returns:
        images uint8 (N, 3, 32, 32), labels int64 (N,), class names.

    Raises:
        DataError: a file is missing, corrupt, unsafe, or has unexpected contents.
    """
    batches = list(layout.splits[split])
    raw = _read_members(source, layout, [*batches, layout.meta])
    meta_label = f"{source}/{layout.meta}" if source.is_dir() else f"{source}:{layout.meta}"
    names = _get(restricted_loads(raw[layout.meta], meta_label), layout.names_key, meta_label)
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]  # type: ignore[union-attr]
    images, labels = [], []
    for name in batches:
        label = f"{source}/{name}" if source.is_dir() else f"{source}:{name}"
        data, targets = _decode_batch(restricted_loads(raw[name], label), layout, label)
        if targets.size and (targets.min() < 0 or targets.max() >= len(classes)):
            raise DataError(f"{label}: labels outside 0..{len(classes) - 1}.")
        images.append(data)
        labels.append(targets)
    return np.concatenate(images), np.concatenate(labels), classes

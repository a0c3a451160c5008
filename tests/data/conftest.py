"""Fixtures for the data tests: a hermetic lookup environment and synthetic datasets.

The real datasets (``fmnist_dir``, ``mnist_dir``) come from tests/real_data.py, like everywhere else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from densenet.data import sources
from densenet.data._specs import CIFAR10, CIFAR100, DatasetSpec
from densenet.data.idx import write_idx

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def hermetic_lookup(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the machine's $DENSENET_DATA, user cache or /usr/share/datasets."""
    root = tmp_path_factory.mktemp("lookup")
    monkeypatch.delenv(sources.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "xdg-cache"))
    monkeypatch.setattr(sources, "SYSTEM_DATA_DIR", root / "system")
    return root


def write_tiny_idx(folder: Path, n_train: int = 30, n_test: int = 10, size: int = 5, seed: int = 0) -> dict:
    """Write a small random IDX dataset with the upstream file names; return the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 3).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 3).astype(np.uint8),
    }
    for role, array in arrays.items():
        write_idx(folder / IDX_FILES[role], array)
    return arrays


def register_tiny(
    monkeypatch: pytest.MonkeyPatch, folder: Path, mirrors: tuple[str, ...] = ("http://invalid./",)
) -> DatasetSpec:
    """Register a 3-class dataset "tiny" whose checksums are those of the files in ``folder``."""
    from densenet.data.sources import content_md5

    spec = DatasetSpec(
        name="tiny",
        title="Tiny",
        files=dict(IDX_FILES),
        mirrors=mirrors,
        md5={name: md5_of(folder / name) for name in IDX_FILES.values()},
        content_md5={name: content_md5(folder / name) for name in IDX_FILES.values()},
        classes=("a", "b", "c"),
        in_channels=1,
        image_size=5,
        mean=(0.5,),
        std=(0.25,),
    )
    monkeypatch.setitem(sources.DATASETS, "tiny", spec)
    return spec


@pytest.fixture
def tiny_idx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict, DatasetSpec]:
    folder = tmp_path / "tiny"
    arrays = write_tiny_idx(folder)
    return folder, arrays, register_tiny(monkeypatch, folder)


# ---------------------------------------------------------------- CIFAR in the official layout


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes and str as Python 2 ``str`` (BINSTRING opcodes), as cPickle did for the CIFAR files."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def _save_py2_str(self, obj: bytes | str) -> None:
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def _py2_style(obj: object, module_name: str) -> bytes:
    """Pickle like the official files: protocol 2, Python 2 strings, GLOBAL opcodes naming ``module_name``."""
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    data = buffer.getvalue()
    for current in (b"numpy._core.multiarray", b"numpy.core.multiarray"):
        data = data.replace(current + b"\n", module_name.encode() + b"\n")
    return data


def write_cifar(
    root: Path, spec: DatasetSpec, per_batch: int = 6, seed: int = 0, numpy_module: str = "numpy.core.multiarray"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``<root>/<extracted_dir>/`` with every batch and the meta file; return split -> (data rows, labels)."""
    layout = spec.cifar
    assert layout is not None
    folder = root / layout.extracted_dir
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    written: dict[str, list] = {"train": [], "test": []}
    for split, batches in layout.splits.items():
        for name in batches:
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, len(spec.classes), per_batch)]
            batch = {
                b"batch_label": f"{name} of synthetic".encode(),
                layout.labels_key.encode(): labels,
                b"data": data,
                b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)],
            }
            if spec.name == "cifar-100":
                batch[b"coarse_labels"] = [v % 20 for v in labels]
            (folder / name).write_bytes(_py2_style(batch, numpy_module))
            written[split].append((data, np.array(labels)))
    meta = {layout.names_key.encode(): [c.encode() for c in spec.classes], b"num_cases_per_batch": per_batch}
    (folder / layout.meta).write_bytes(_py2_style(meta, numpy_module))
    return {s: (np.concatenate([d for d, _ in v]), np.concatenate([lab for _, lab in v])) for s, v in written.items()}


def make_tar(root: Path, spec: DatasetSpec) -> Path:
    layout = spec.cifar
    assert layout is not None
    archive = root / layout.archive
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / layout.extracted_dir, arcname=layout.extracted_dir)
    return archive


def register_cifar(monkeypatch: pytest.MonkeyPatch, spec: DatasetSpec, root: Path) -> DatasetSpec:
    """Replace a CIFAR spec's checksums with those of the synthetic files under ``root``."""
    layout = spec.cifar
    assert layout is not None
    folder = root / layout.extracted_dir
    members = {m: md5_of(folder / m) if (folder / m).exists() else "" for m in layout.members}
    archive = root / layout.archive
    md5 = {layout.archive: md5_of(archive)} if archive.exists() else {}
    new = dataclasses.replace(spec, md5=md5, cifar=dataclasses.replace(layout, members=members))
    monkeypatch.setitem(sources.DATASETS, spec.name, new)
    return new


@pytest.fixture(params=[CIFAR10, CIFAR100], ids=["cifar-10", "cifar-100"])
def cifar_spec(request: pytest.FixtureRequest) -> DatasetSpec:
    return request.param


@pytest.fixture(scope="session")
def helpers() -> SimpleNamespace:
    """The writers above, for tests (conftest modules cannot be imported by name safely)."""
    return SimpleNamespace(
        md5_of=md5_of,
        write_tiny_idx=write_tiny_idx,
        register_tiny=register_tiny,
        write_cifar=write_cifar,
        make_tar=make_tar,
        register_cifar=register_cifar,
        idx_files=IDX_FILES,
    )

"""Fixtures shared by the whole suite: where the real datasets are, and how to run the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The upstream Fashion-MNIST files (``../shared/data/fashion-mnist``, as on CI)."""
    path = SHARED_DATA / "fashion-mnist"
    if not (path / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not found at {path}")
    return path


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = SHARED_DATA / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found at {path}")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests train tiny models; one thread avoids OpenMP oversubscription on small shared machines."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

"""Fixtures shared by the whole suite: the real datasets (tests/real_data.py) and one torch thread."""

from __future__ import annotations

import pytest

# real_data: the fashion_dir / fmnist_dir / mnist_dir fixtures and the hooks that keep them from skipping silently.
pytest_plugins = ("pytester", "tests.real_data")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests train tiny models; one thread avoids OpenMP oversubscription on small shared machines."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

"""The export tests run small models at 32x32: one thread is as fast, and kinder to a shared machine; and a trained
Fashion-MNIST run for the quantized exports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fashion_run(tmp_path_factory: pytest.TempPathFactory, fashion_dir) -> Path:
    """A d2l_densenet trained for a few seconds on 2,000 Fashion-MNIST pictures at 32 px, normalized (about 75%
    test accuracy): a real run whose logits have real margins, for the quantized exports and their checks."""
    from densenet.engine.config import load_preset
    from densenet.engine.trainer import train

    run = tmp_path_factory.mktemp("fashion") / "run"
    config = load_preset("d2l-fashion-mnist").replace({
        "data.data_dir": str(fashion_dir), "data.resize": 32, "data.train_subset": 2000, "data.normalize": True,
        "optim.lr": 0.05, "optim.momentum": 0.9, "run.batch_size": 64, "run.epochs": 3, "run.compile": False,
        "run.device": "cpu", "run.precision": "fp32"})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, run, progress=False)
    finally:
        torch.set_num_threads(threads)
    return run

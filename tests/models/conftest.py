"""Model tests run their many tiny forward/backward passes on one thread.

On a busy shared machine, multi-threaded kernels on inputs this small spend most of their time
waiting for each other (measured: a 2-image d2l_densenet step took 2.5 s on two threads under
load, 0.02 s on one).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

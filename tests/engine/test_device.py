"""One reading of --device for every command (train, bench, experiment, evaluate)."""

import pytest
import torch

from densenet.engine.distributed import resolve_device
from densenet.errors import ConfigError

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the errors of a machine without a GPU")


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device("auto") == expected


@needs_no_gpu
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_a_cuda_device_without_a_gpu_is_refused(name):
    with pytest.raises(ConfigError, match=f"--device {name}: no CUDA device is available here; use --device cpu"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cuda:"])
def test_a_name_that_is_no_device_is_refused(name):
    with pytest.raises(ConfigError, match="--device must be auto, cpu, cuda or cuda:N"):
        resolve_device(name)

"""One runtime seam: a run's model on PyTorch, ONNX Runtime and OpenVINO gives the same logits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from densenet.errors import ConfigError
from densenet.export.runtime import (
    AUTO_ORDER,
    BACKENDS,
    RuntimeModel,
    build_runtime,
    installed_backends,
    resolve_backend,
)
from densenet.rundir import load
from tests.export.helpers import make_run_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("runtime") / "run")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_each_backend_gives_the_pytorch_logits_at_any_batch_size(run: Path, backend: str) -> None:
    model = load(run)
    runtime = build_runtime(model, backend)
    assert isinstance(runtime, RuntimeModel) and runtime.backend == backend and runtime.card == model.card
    assert f"{'intra_op' if backend == 'onnxruntime' else 'threads'}={torch.get_num_threads()}" in runtime.detail
    for batch in (1, 5):
        x = torch.randn(batch, 1, 32, 32, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            torch.testing.assert_close(runtime(x), model(x), atol=1e-4, rtol=1e-4)


def test_torch_is_the_model_itself_and_auto_is_the_first_installed_of_the_speed_order(run: Path) -> None:
    model = load(run)
    assert build_runtime(model, "torch") is model
    assert set(installed_backends()) == set(BACKENDS)  # the dev extra installs both runtimes
    assert AUTO_ORDER == ("onnxruntime", "openvino", "torch") and resolve_backend("auto") == "onnxruntime"
    assert build_runtime(model, "auto").backend == "onnxruntime"


def test_an_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'; choose one of torch, onnxruntime, openvino"):
        resolve_backend("tensorrt")


def test_a_missing_runtime_names_the_pip_command(run: Path, tmp_path: Path) -> None:
    # A process in which the package cannot be imported, as on a machine without the extra.
    script = ("import sys; sys.modules['openvino'] = None; sys.modules['onnxruntime'] = None\n"
              "from densenet.cli.main import main; sys.exit(main(sys.argv[1:]))")
    for args, status, message in [  # a configuration error (2), a failed export (1)
        (["evaluate", str(run), "--backend", "openvino"], 2, "--backend openvino needs the openvino package: "
                                                          "pip install 'densenet[openvino]'"),
        (["export", str(run), "--format", "openvino", "--output", str(tmp_path / "m.xml")], 1,
         "the OpenVINO export needs the openvino package: pip install 'densenet[openvino]'"),
        (["bench", "infer", "--model", "d2l_densenet", "--batch-size", "1", "--input-size", "1,32,32",
          "--backend", "onnxruntime-int8", "--steps", "1"], 2, "pip install 'densenet[export]'"),
    ]:
        result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
        assert result.returncode == status, result.stderr[-2000:]
        assert result.stderr.strip().splitlines()[-1].startswith("error: ") and message in result.stderr
    assert list(tmp_path.iterdir()) == []

"""ONNX and TorchScript exports of every model family: dynamic batch, same numbers as PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import densenet
from densenet.export import (
    ExportCheckError,
    ExportError,
    check_onnx,
    check_torchscript,
    export_artifact,
    export_onnx,
    export_torchscript,
)
from densenet.export.formats import ATOL, RTOL, atomic_output
from tests.export.helpers import family_models, randomize_batchnorm, small_input

BATCHES = (1, 3)


@pytest.fixture(scope="module", params=family_models())
def family(request: pytest.FixtureRequest) -> tuple[str, torch.nn.Module, tuple[int, int, int]]:
    torch.manual_seed(0)
    model = randomize_batchnorm(densenet.create_model(request.param))
    return request.param, model, small_input(request.param)


def _inputs(size: tuple[int, int, int]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(42)
    return [torch.randn(b, *size, generator=g) for b in BATCHES]


def test_onnx_round_trip_with_dynamic_batch(family, tmp_path: Path) -> None:
    name, model, size = family
    path = export_onnx(model, tmp_path / f"{name}.onnx", size)
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]] == list(size)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for x in _inputs(size):
            got = session.run(None, {"input": x.numpy()})[0]
            expected = model(x).numpy()
            assert got.shape == expected.shape == (x.shape[0], densenet.models.model_info(name).num_classes)
            np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL)


def test_torchscript_round_trip_with_dynamic_batch(family, tmp_path: Path) -> None:
    name, model, size = family
    path = export_torchscript(model, tmp_path / f"{name}.pt", size)
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        for x in _inputs(size):
            torch.testing.assert_close(loaded(x), model(x), atol=ATOL, rtol=RTOL)


def test_checks_report_the_difference(tmp_path: Path) -> None:
    model = randomize_batchnorm(densenet.create_model("d2l_densenet"))
    onnx_result = check_onnx(export_onnx(model, tmp_path / "m.onnx", (1, 32, 32)), model, (1, 32, 32))
    ts_result = check_torchscript(export_torchscript(model, tmp_path / "m.pt", (1, 32, 32)), model, (1, 32, 32))
    for result in (onnx_result, ts_result):
        assert result.ok and result.batch_sizes == [1, 3] and 0 <= result.max_abs_diff < 1e-4
        assert result.to_dict()["ok"] is True
    # The same artifact against another model's weights must fail.
    other = randomize_batchnorm(densenet.create_model("d2l_densenet"), seed=1)
    assert not check_onnx(tmp_path / "m.onnx", other, (1, 32, 32)).ok


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_folded_export_matches_unfolded_model(fmt: str, tmp_path: Path) -> None:
    model = randomize_batchnorm(densenet.create_model("d2l_densenet"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = export_artifact(model, tmp_path / "m.bin", fmt, (1, 32, 32), check=True, fold_bn=True)
    assert report.folded_pairs == ["features.conv0 <- features.norm0"]
    assert report.check is not None and report.check.ok and report.check.max_abs_diff < 1e-4
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "the model itself was changed"
    doc = report.to_dict()
    assert doc["folded_bn"] is True and doc["batch_sizes_checked"] == [1, 3] and doc["bytes"] > 1_000_000


def test_failed_check_writes_nothing(tmp_path: Path) -> None:
    model = randomize_batchnorm(densenet.create_model("d2l_densenet"))
    with pytest.raises(ExportCheckError, match="nothing was written"):
        # Folding changes rounding, so no export can be exactly equal to the unfolded model.
        export_artifact(model, tmp_path / "m.onnx", "onnx", (1, 32, 32), check=True, fold_bn=True, atol=0, rtol=0)
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_bad_arguments_are_export_errors(tmp_path: Path) -> None:
    model = densenet.create_model("d2l_densenet")
    with pytest.raises(ExportError, match="opset 30"):
        export_onnx(model, tmp_path / "m.onnx", (1, 32, 32), opset=30)
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(model, tmp_path / "missing" / "m.onnx", (1, 32, 32))
    with pytest.raises(ExportError, match="unknown export format"):
        export_artifact(model, tmp_path / "m.tflite", "tflite", (1, 32, 32))
    assert list(tmp_path.iterdir()) == []

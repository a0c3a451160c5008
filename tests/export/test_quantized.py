"""OpenVINO IR (fp32, bf16, int8) and ONNX int8 exports of a trained run, checked with the real runtimes."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

from densenet.engine.performance import cpu_supports_bf16
from densenet.export.agreement import check_agreement
from densenet.export.artifact import export_run
from densenet.export.calibration import calibration_batches, check_batches
from densenet.export.formats import ExportCheckError
from densenet.export.openvino_ir import read_sidecar, sidecar_path
from densenet.export.runtime import artifact_runtime
from densenet.rundir import load
from tests.run_dirs import binary_run


def ir_files(xml: Path) -> list[Path]:
    return [xml, xml.with_suffix(".bin"), sidecar_path(xml)]


def test_calibration_draws_training_pictures_through_the_runs_preprocessing(fashion_run: Path) -> None:
    batches = calibration_batches(fashion_run, 40, batch_size=16)
    assert [len(b) for b in batches] == [16, 16, 8] and batches[0].shape[1:] == (1, 32, 32)
    x = torch.cat(batches)
    # normalized with the run's mean and std, as in training: about zero mean, unit spread (raw pixels are >= 0)
    assert x.min() < -0.5 and abs(x.mean()) < 0.5 and 0.5 < x.std() < 1.5
    test = check_batches(fashion_run, 150)
    assert sum(len(x) for x, _ in test) == 150 and test[0][1].dtype == torch.int64


def test_photo_runs_calibrate_on_training_pictures_without_augmentation(tmp_path: Path) -> None:
    run = binary_run(tmp_path)  # an image-folder run of 2 training pictures: training would crop and flip them
    first, second = calibration_batches(run, 5), calibration_batches(run, 5)
    assert sum(len(b) for b in first) == 2 and first[0].shape[1:] == (3, 32, 32)
    assert all(torch.equal(a, b) for a, b in zip(first, second))  # the evaluation transform: deterministic


def test_openvino_fp32_export_matches_pytorch_and_records_f32(fashion_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.xml"
    report = export_run(fashion_run, out, "openvino", check=True)
    assert report.check.max_abs_diff <= 1e-4 and report.check.batch_sizes == [1, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.openvino.json", "model.xml"]
    side = read_sidecar(out)
    # On AMX CPUs the plugin would compute an fp32 IR in bf16: the sidecar pins f32.
    assert side["precision"] == "fp32" and side["compile_options"]["INFERENCE_PRECISION_HINT"] == "f32"
    runtime = artifact_runtime(out)
    assert "inference precision f32" in runtime.detail
    x, _ = check_batches(fashion_run, 7)[0]  # a batch size the check did not use, real pictures
    with torch.no_grad():
        torch.testing.assert_close(runtime(x), load(fashion_run)(x), atol=1e-4, rtol=1e-4)


def test_openvino_bf16_and_int8_agree_with_pytorch_on_1000_test_pictures(fashion_run: Path, tmp_path: Path) -> None:
    fp32 = export_run(fashion_run, tmp_path / "fp32.xml", "openvino")
    bf16 = export_run(fashion_run, tmp_path / "bf16.xml", "openvino", precision="bf16", check=True)
    int8 = export_run(fashion_run, tmp_path / "int8.xml", "openvino", precision="int8")  # int8 is always checked
    for report in (bf16, int8):
        a = report.agreement
        assert a.pictures == 1000 and a.ok and a.agreement >= 0.99 and a.drop_points <= 0.5 and not report.forced
        assert 0.6 < a.reference_accuracy < 1.0  # a trained run: the check is about something
    assert int8.calibration_pictures == 300 and read_sidecar(tmp_path / "int8.xml")["calibration_pictures"] == 300
    assert (tmp_path / "int8.bin").stat().st_size < 0.4 * (tmp_path / "fp32.bin").stat().st_size  # int8 weights
    assert fp32.agreement is None and fp32.check is None  # fp32 is checked only when asked
    hint = "bf16" if cpu_supports_bf16() else "f32"  # without native bf16 the plugin computes in f32
    assert f"inference precision {hint}" in artifact_runtime(tmp_path / "bf16.xml").detail
    # The reported agreement is what the written file gives.
    written = artifact_runtime(tmp_path / "int8.xml")
    again = check_agreement(written, load(fashion_run), check_batches(fashion_run, 1000))
    assert again.agreement == int8.agreement.agreement and again.accuracy == int8.agreement.accuracy


def test_onnx_int8_is_static_qdq_per_channel_and_its_reported_agreement_is_the_files(fashion_run: Path,
                                                                                     tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    report = export_run(fashion_run, out, "onnx", precision="int8", calibration=200, force=True)
    graph = onnx.load(str(out)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    scales = {i.name: i for i in graph.initializer}
    conv_weight_scales = [scales[n.input[1]] for n in graph.node if n.op_type == "DequantizeLinear"
                          and ".conv" in n.input[0] and n.input[0].endswith(".weight_quantized")]
    assert conv_weight_scales and all(s.dims[0] > 1 for s in conv_weight_scales)  # one scale per output channel
    assert "classifier.weight" in scales and "classifier.weight_quantized" not in scales  # the head stays float
    a = report.agreement
    assert report.calibration_pictures == 200 and a.pictures == 1000 and a.agreement > 0.95
    assert report.forced == (not a.ok)
    again = check_agreement(artifact_runtime(out), load(fashion_run), check_batches(fashion_run, 1000))
    assert (again.agreement, again.accuracy) == (a.agreement, a.accuracy)


# The refusal is one code path for both formats; OpenVINO's run is the slower one.
@pytest.mark.parametrize("fmt, name", [pytest.param("openvino", "model.xml", marks=pytest.mark.slow),
                                       ("onnx", "model.onnx")])
def test_an_int8_export_beyond_the_tolerance_is_refused_with_the_measured_numbers(fashion_run: Path, tmp_path: Path,
                                                                                  fmt: str, name: str) -> None:
    out = tmp_path / name
    # An agreement above 100% cannot be met: the real export and check run, and the check refuses.
    with pytest.raises(ExportCheckError, match=r"top-1 agreement with PyTorch fp32 \d+\.\d\d% on 200 test pictures "
                       r"\(at least 101% required\), accuracy .* \(a drop of -?\d+\.\d\d points") as refused:
        export_run(fashion_run, out, fmt, precision="int8", calibration=64, min_agreement=1.01, check_pictures=200)
    assert "nothing was written" in str(refused.value) and list(tmp_path.iterdir()) == []
    forced = export_run(fashion_run, out, fmt, precision="int8", calibration=64, min_agreement=1.01, force=True,
                        check_pictures=200)
    assert forced.forced and not forced.agreement.ok and forced.agreement.pictures == 200 and out.is_file()
    doc = forced.to_dict()
    assert doc["forced"] is True and doc["agreement"]["ok"] is False and doc["agreement"]["min_agreement"] == 1.01
    if fmt == "openvino":
        assert json.loads(sidecar_path(out).read_text())["precision"] == "int8"

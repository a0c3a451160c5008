"""`densenet export` end to end, in a real subprocess."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from densenet.rundir import load
from tests.export.helpers import make_run_dir
from tests.helpers import run_cli

# One thread: the artifacts are small, and the suite shares its machine.
ENV = {"OMP_NUM_THREADS": "1"}


def test_export_onnx_with_check_and_folding(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    out = tmp_path / "artifacts" / "model.onnx"
    out.parent.mkdir()
    result = run_cli("export", str(run_dir), "--format", "onnx", "--output", str(out), "--check", "--fold-bn",
                     "--opset", "13", "--json", env=ENV)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["format"] == "onnx" and doc["output"] == str(out) and doc["opset"] == 13
    assert doc["input_size"] == [1, 32, 32] and doc["folded_bn"] is True and doc["folded_pairs"] == 1
    assert doc["batch_sizes_checked"] == [1, 3] and 0 <= doc["max_abs_diff"] < 1e-4
    assert doc["bytes"] == out.stat().st_size
    assert [p.name for p in out.parent.iterdir()] == ["model.onnx"], "temporary files were left behind"
    # The artifact runs at a batch size the check did not use, with the run's input size.
    x = torch.randn(5, 1, 32, 32)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, load(run_dir)(x).numpy(), atol=1e-4, rtol=1e-4)


def test_export_torchscript_text_output(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    out = tmp_path / "model.pt"
    result = run_cli("export", str(run_dir), "--format", "torchscript", "--output", str(out), "--check", env=ENV)
    assert result.returncode == 0, result.stderr
    assert "check passed: max abs difference" in result.stdout and out.is_file()
    assert torch.jit.load(str(out))(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_not_a_run_dir_is_one_error_line(tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    result = run_cli("export", str(tmp_path), "--format", "onnx", "--output", str(out), "--check", "--json", env=ENV)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not a run directory" in lines[0]
    assert "Traceback" not in result.stderr and not out.exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    result = run_cli("export", str(run_dir), "--format", "torchscript", "--output", str(tmp_path / "m.pt"),
                     "--opset", "13", env=ENV)
    assert result.returncode == 2 and result.stderr.startswith("error: --opset applies to --format onnx only")
    assert not (tmp_path / "m.pt").exists()


def test_export_openvino_int8_on_the_command_line_prints_one_json_document(fashion_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.xml"
    result = run_cli("export", str(fashion_run), "--format", "openvino", "--precision", "int8", "--calibration", "64",
                     "--output", str(out), "--json", env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads(result.stdout)  # NNCF's progress bars and logs stay out of stdout
    assert doc["format"] == "openvino" and doc["precision"] == "int8" and doc["calibration_pictures"] == 64
    assert doc["checked"] is True and doc["agreement"]["ok"] is True and doc["agreement"]["pictures"] == 1000
    assert doc["bytes"] == out.stat().st_size + out.with_suffix(".bin").stat().st_size and doc["forced"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.openvino.json", "model.xml"]


def test_export_onnx_int8_text_output(fashion_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    result = run_cli("export", str(fashion_run), "--format", "onnx", "--quantize", "int8", "--calibration", "32",
                     "--force", "--output", str(out), env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"wrote {out} (onnx int8, ") and "input (batch, 1, 32, 32)" in lines[0]
    assert lines[1] == "int8 ranges calibrated on 32 training pictures"
    assert re.fullmatch(r"check (passed|FAILED, written anyway \(--force\)): top-1 agreement \d+\.\d\d% with "
                        r"PyTorch fp32 on 1000 test pictures, accuracy \d+\.\d\d% vs PyTorch fp32's \d+\.\d\d% "
                        r"\(a drop of -?\d+\.\d\d points\)", lines[2]), lines[2]


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx", "--precision", "int8"], "--precision applies to --format openvino; ONNX takes --quantize"),
    (["--format", "openvino", "--quantize", "int8"], "--quantize applies to --format onnx; OpenVINO takes --precision"),
    (["--format", "openvino", "--calibration", "10"], "--calibration applies to int8 exports"),
    (["--format", "torchscript", "--quantize", "int8"], "--quantize applies to --format onnx"),
])
def test_precision_flags_of_another_format_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    result = run_cli("export", str(run_dir), *args, "--output", str(tmp_path / "m.xml"), env=ENV)
    assert result.returncode == 2 and result.stderr.startswith(f"error: {message}"), result.stderr
    assert not (tmp_path / "m.xml").exists()


def test_an_openvino_output_that_is_no_xml_file_is_refused_before_any_work(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    result = run_cli("export", str(run_dir), "--format", "openvino", "--output", str(tmp_path / "m.onnx"), env=ENV)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == (
        f"error: an OpenVINO IR is written as FILE.xml (+ FILE.bin); got --output {tmp_path / 'm.onnx'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_onnx_int8_below_opset_13_is_refused_before_any_work(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    result = run_cli("export", str(run_dir), "--format", "onnx", "--quantize", "int8", "--opset", "11", "--output",
                     str(tmp_path / "m.onnx"), env=ENV)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == (
        "error: per-channel int8 needs ONNX opset 13 or later (DequantizeLinear's axis); choose --opset 13 or more, "
        "or leave it out (default 17)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]

"""``densenet bench infer --backend``: every backend against eager fp32, in one timing loop, on a tiny input."""

from __future__ import annotations

import json

import pytest
import torch
from tests.helpers import run_cli

from densenet.bench.backends import run_backends, to_markdown
from densenet.engine.performance import PerfOptions, cpu_supports_bf16
from densenet.errors import ConfigError

TINY = dict(model_name="d2l_densenet", batch_size=2, input_size=(1, 32, 32), steps=2, warmup=1)


def test_exports_against_eager_rows_ratios_and_table() -> None:
    doc = run_backends(**TINY, backends=("onnxruntime", "torchscript"))
    rows = doc["results"]
    assert [r["backend"] for r in rows] == ["eager", "onnxruntime", "torchscript"]  # eager first, the reference
    for r in rows:
        assert r["images_per_s"] == pytest.approx(2 / (r["median_ms"] / 1e3), rel=1e-2)
    eager, ort_row, ts_row = rows
    assert eager["speedup"] == 1.0 and eager["max_abs_diff"] == 0.0
    assert ort_row["speedup"] == pytest.approx(eager["median_ms"] / ort_row["median_ms"], rel=1e-2)
    assert ort_row["max_abs_diff"] < 1e-4 and f"intra_op={torch.get_num_threads()}" in ort_row["detail"]
    assert ts_row["max_abs_diff"] < 1e-5 and "torch.jit" in ts_row["detail"]
    table = to_markdown(doc).splitlines()
    assert table[0].startswith("d2l_densenet 1x32x32, batch 2") and table[-1].startswith("| torchscript |")


def test_openvino_and_int8_backends_in_the_same_loop() -> None:
    doc = run_backends(**TINY, backends=("openvino", "openvino-bf16", "openvino-int8", "onnxruntime-int8"))
    rows = {r["backend"]: r for r in doc["results"]}
    assert list(rows) == ["eager", "openvino", "openvino-bf16", "openvino-int8", "onnxruntime-int8"]
    threads = torch.get_num_threads()
    assert "inference precision f32" in rows["openvino"]["detail"] and rows["openvino"]["max_abs_diff"] < 1e-4
    bf16 = "bf16" if cpu_supports_bf16() else "f32"  # without native bf16 the plugin computes in f32
    assert f"inference precision {bf16}" in rows["openvino-bf16"]["detail"]
    assert rows["openvino-bf16"]["max_abs_diff"] < 0.1
    for name in ("openvino-int8", "onnxruntime-int8"):
        assert "calibrated on random inputs" in rows[name]["detail"], rows[name]["detail"]
        assert 0 < rows[name]["max_abs_diff"] < 1.0  # quantized: close to eager, not exact
    assert f"threads={threads}" in rows["openvino-int8"]["detail"]
    assert "int8 static QDQ U8S8 per-channel" in rows["onnxruntime-int8"]["detail"]
    for r in rows.values():
        assert r["images_per_s"] == pytest.approx(2 / (r["median_ms"] / 1e3), rel=1e-2)


def test_the_fast_backend_is_the_compiled_fast_path() -> None:
    # A real torch.compile on the CPU, in fp32 so the comparison with eager is tight.
    doc = run_backends(**TINY, backends=("fast",), perf=PerfOptions(precision="fp32"))
    fast = doc["results"][1]
    assert fast["backend"] == "fast" and "compiled=True" in fast["detail"] and "channels_last=True" in fast["detail"]
    assert fast["max_abs_diff"] < 1e-4


def test_the_fast_backend_falls_back_to_eager_when_compile_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(fn, **kwargs):  # noqa: ANN001, ANN003, ANN202
        def fail(*args):  # noqa: ANN002, ANN202
            raise RuntimeError("no C++ compiler")

        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*no C\\+\\+ compiler"):
        doc = run_backends(**TINY, backends=("fast",), perf=PerfOptions(precision="bf16", compile=True))
    fast = doc["results"][1]
    assert "bf16" in fast["detail"] and "compiled=False" in fast["detail"]
    assert 0 < fast["max_abs_diff"] < 0.1  # bf16 autocast: close, not exact


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown backend.*tensorrt"):
        run_backends(**{**TINY, "steps": 1}, backends=("tensorrt",))


def test_cli_times_the_backends_named_and_records_the_machine() -> None:
    result = run_cli("bench", "infer", "--model", "d2l_densenet", "--batch-size", "1", "--input-size", "1,32,32",
                     "--backend", "torchscript", "eager", "--backend", "onnxruntime", "--steps", "2", "--warmup",
                     "1", "--threads", "1", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads(result.stdout)
    assert [r["backend"] for r in doc["results"]] == ["eager", "torchscript", "onnxruntime"]
    assert doc["threads"] == 1 and doc["steps"] == 2 and doc["batch_size"] == 1
    machine = doc["machine"]
    assert machine["command"].startswith("densenet bench infer --model d2l_densenet") and machine["threads"] == 1
    assert {"cpu", "avx512_bf16", "amx_bf16", "amx_int8", "torch", "load_average", "date"} <= set(machine)
    assert "step 2/2: eager" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "--backend", "eager"], "--backend times inference: use densenet bench infer --backend"),
    (["infer", "--backend", "eager", "--baseline", "naive"], "drop --baseline and --memory-efficient"),
    (["infer", "--backend", "tensorrt"], "invalid choice: 'tensorrt'"),
])
def test_cli_backend_misuse_is_a_one_line_usage_error(args: list[str], message: str) -> None:
    result = run_cli("bench", args[0], "--model", "d2l_densenet", "--batch-size", "1", "--input-size", "1,32,32",
                     *args[1:])
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

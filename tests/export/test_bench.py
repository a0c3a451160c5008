"""The inference benchmark's bookkeeping, on a tiny input so it runs in seconds."""

from __future__ import annotations

import pytest
import torch

from densenet.export import bench


def test_rows_ratios_and_table() -> None:
    rows = bench.benchmark_backends("d2l_densenet", batch_sizes=(1, 2), input_size=(1, 32, 32), steps=2, warmup=1,
                                    threads=1, backends=("eager_fp32", "onnxruntime"))
    assert [(r["batch_size"], r["backend"]) for r in rows] == [
        (1, "eager_fp32"), (1, "onnxruntime"), (2, "eager_fp32"), (2, "onnxruntime")]
    for r in rows:
        assert r["images_per_s"] > 0 and r["median_ms"] > 0
        assert r["images_per_s"] == pytest.approx(r["batch_size"] / (r["median_ms"] / 1e3), rel=1e-2)
    eager, ort_row = rows[0], rows[1]
    assert eager["speedup"] == 1.0 and eager["max_abs_diff"] == 0.0
    assert ort_row["speedup"] == pytest.approx(eager["median_ms"] / ort_row["median_ms"], rel=1e-2)
    assert ort_row["max_abs_diff"] < 1e-4 and "intra_op=1" in ort_row["detail"]
    table = bench.to_markdown(rows).splitlines()
    assert len(table) == 2 + len(rows) and "| d2l_densenet | 1x32x32 | 2 | onnxruntime |" in table[-1]


def test_fast_path_falls_back_when_compile_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(fn, **kwargs):  # noqa: ANN001, ANN003, ANN202
        def fail(*args):  # noqa: ANN002, ANN202
            raise RuntimeError("no C++ compiler")

        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    rows = bench.benchmark_backends("d2l_densenet", batch_sizes=(1,), input_size=(1, 32, 32), steps=1, warmup=1,
                                    threads=1, backends=("torch_fast",))
    fast = rows[1]
    assert fast["backend"] == "torch_fast" and "torch.compile failed: RuntimeError" in fast["detail"]
    assert fast["max_abs_diff"] < 0.1  # bf16 autocast: close, not exact


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        bench.benchmark_backends("d2l_densenet", backends=("tensorrt",))

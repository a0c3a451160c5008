"""The one timing loop: every contender warms up, then they take turns in alternating order; medians."""

from __future__ import annotations

import statistics

from densenet.bench.timing import time_interleaved


def test_turns_alternate_and_medians_are_of_the_timed_calls() -> None:
    order: list[str] = []
    calls = {name: (lambda name=name: order.append(name)) for name in ("fast", "naive", "onnx")}
    lines: list[str] = []
    timings = time_interleaved(calls, steps=3, warmup=2, log=lines.append, per_call=4)
    warm, timed = order[:6], order[6:]
    assert warm == ["fast", "fast", "naive", "naive", "onnx", "onnx"]
    assert timed == ["fast", "naive", "onnx", "onnx", "naive", "fast", "fast", "naive", "onnx"]
    assert list(timings) == ["fast", "naive", "onnx"]
    for t in timings.values():
        assert len(t.times) == len(t.cpu_times) == 3 and t.warmup_s >= 0
        assert t.median_s == statistics.median(t.times) and t.median_cpu_s == statistics.median(t.cpu_times)
    assert len(lines) == 3 + 3 and lines[-1].startswith("  step 3/3: fast ")


def test_no_warmup_means_no_untimed_calls() -> None:
    order: list[int] = []
    timings = time_interleaved({"only": lambda: order.append(1)}, steps=2, warmup=0)
    assert order == [1, 1] and timings["only"].warmup_s < 0.01

"""The one timing loop of the benchmarks: contenders take turns, the order alternates, medians are compared.

Noise from other processes on a shared machine then hits every contender alike. Both ``densenet bench
train|infer`` (the fast path against a baseline) and ``densenet bench infer --backend`` use
:func:`time_interleaved`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

Log = Callable[[str], None]


@dataclass
class Timing:
    """What :func:`time_interleaved` measured for one contender (seconds)."""

    warmup_s: float = 0.0  # all warm-up calls together (compilation happens here)
    times: list[float] = field(default_factory=list)  # wall time of each timed call
    cpu_times: list[float] = field(default_factory=list)  # process CPU time of each timed call

    @property
    def median_s(self) -> float:
        return statistics.median(self.times)

    @property
    def median_cpu_s(self) -> float:
        return statistics.median(self.cpu_times)


def time_interleaved(calls: Mapping[str, Callable[[], Any]], steps: int, warmup: int,
                     device: torch.device | str = "cpu", log: Log | None = None,
                     per_call: int = 1) -> dict[str, Timing]:
    """Warm up each call, then time ``steps`` rounds of one call each, the order reversed every other round.

    Args:
        calls: Name -> a function doing one step.
        steps: Timed rounds.
        warmup: Untimed calls of each function first, one after another.
        device: Synchronized around each timed call when it is a CUDA device.
        log: Gets one line after warm-up and after each round.
        per_call: Images (or items) per call, for the progress lines.

    Returns:
        Name -> its :class:`Timing`, in the order of ``calls``.
    """
    device = torch.device(device)
    timings = {name: Timing() for name in calls}
    for name, call in calls.items():
        start = time.perf_counter()
        for _ in range(warmup):
            call()
        _sync(device)
        timings[name].warmup_s = time.perf_counter() - start
        if log:
            log(f"  warm-up {name}: {warmup} steps in {timings[name].warmup_s:.1f} s")
    names = list(calls)
    for i in range(steps):
        for name in names if i % 2 == 0 else names[::-1]:
            _sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            calls[name]()
            _sync(device)
            timings[name].times.append(time.perf_counter() - wall)
            timings[name].cpu_times.append(time.process_time() - cpu)
        if log:
            log(f"  step {i + 1}/{steps}: " + ", ".join(f"{n} {per_call / t.times[-1]:.1f} img/s"
                                                      for n, t in timings.items()))
    return timings


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

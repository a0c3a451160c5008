"""The one reader of the CPU's model name and instruction-set flags, and the machine record of benchmarks.

Speed figures depend on the machine, so every benchmark document carries :func:`machine_record`:
the CPU as ``/proc/cpuinfo`` names it, whether it has native bf16 (AVX512-BF16, AMX), the torch
version, threads, the load average (other processes on a shared machine skew timings), the date
and the command line.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def _first_processor() -> dict[str, str]:
    """The fields of the first processor in /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    fields: dict[str, str] = {}
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``'s "model name"), else what :mod:`platform` knows."""
    return _first_processor().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``'s "flags"); empty where unknown."""
    return frozenset(_first_processor().get("flags", "").split())


def has_avx512_bf16() -> bool:
    """Whether the CPU has AVX512-BF16 (bf16 dot products in AVX-512 registers)."""
    return "avx512_bf16" in cpu_flags()


def has_amx() -> bool:
    """Whether the CPU has AMX tiles for bf16 (``amx_bf16``)."""
    return "amx_bf16" in cpu_flags()


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load average, or ``None`` where the OS has none."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine_record(command: list[str] | None = None) -> dict[str, Any]:
    """What a benchmark record says about the machine it ran on.

    Args:
        command: The command line (default: this process's, as ``densenet ...``).

    Returns:
        ``date`` (UTC), ``command``, ``cpu``, ``logical_cpus``, ``avx512_bf16``, ``amx_bf16``, ``amx_int8``,
        ``torch``, ``python``, ``threads``, ``load_average``.
    """
    flags = cpu_flags()
    command = command if command is not None else ["densenet", *sys.argv[1:]]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(command), "cpu": cpu_model(), "logical_cpus": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags, "amx_int8": "amx_int8" in flags,
        "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
        "load_average": load_average(),
    }

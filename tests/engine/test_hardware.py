"""The one reader of /proc/cpuinfo and the machine record benchmarks carry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from densenet.engine import hardware
from densenet.engine.performance import cpu_supports_bf16

SAPPHIRE = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: something else
flags\t\t: fpu
"""


@pytest.fixture
def cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def write(text: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(hardware, "CPUINFO", path)
        hardware._first_processor.cache_clear()

    yield write
    hardware._first_processor.cache_clear()


def test_model_name_and_flags_come_from_the_first_processor(cpuinfo) -> None:
    cpuinfo(SAPPHIRE)
    assert hardware.cpu_model() == "Intel(R) Xeon(R) Platinum 8480+"
    assert hardware.cpu_flags() == {"fpu", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}
    assert hardware.has_avx512_bf16() and hardware.has_amx()
    record = hardware.machine_record(["densenet", "bench", "infer", "--model", "my model"])
    assert record["command"] == "densenet bench infer --model 'my model'"
    assert record["cpu"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert (record["avx512_bf16"], record["amx_bf16"], record["amx_int8"]) == (True, True, True)
    assert cpu_supports_bf16() == torch.backends.mkldnn.is_available()  # the same reader decides bf16


def test_a_cpu_without_bf16_or_cpuinfo_stays_fp32(cpuinfo, tmp_path: Path, monkeypatch) -> None:
    cpuinfo("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n")
    assert hardware.cpu_model() == "AMD EPYC" and not hardware.has_avx512_bf16() and not hardware.has_amx()
    assert not cpu_supports_bf16()
    monkeypatch.setattr(hardware, "CPUINFO", tmp_path / "missing")
    hardware._first_processor.cache_clear()
    assert hardware.cpu_flags() == frozenset() and hardware.cpu_model()  # platform's name, never empty


def test_the_record_of_this_machine_is_what_proc_cpuinfo_says() -> None:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    flags = set(next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags")))
    record = hardware.machine_record()
    assert record["cpu"] == name and record["avx512_bf16"] == ("avx512_bf16" in flags)
    assert record["amx_bf16"] == ("amx_bf16" in flags) and record["threads"] == torch.get_num_threads()
    assert record["torch"] == torch.__version__ and len(record["load_average"]) == 3
    json.dumps(record)  # goes into JSON documents as it is

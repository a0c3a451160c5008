"""scripts/long-average.sh: its usage and a missing search record are refused before anything runs.

Its measurement itself is the record it files (docs/records/search/long/*-avg/average-*.json, tabled and
checked by tests/test_figure_runs.py); `densenet evaluate` and `densenet average` are tested in tests/engine/.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "long-average.sh"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, cwd=tmp_path, timeout=60)


@pytest.mark.parametrize("args", [(), ("densenet-fashion-mnist-seed0-crop-erase-avg",),
                                  ("densenet-fashion-mnist-seed0-crop-erase-avg", "0"),
                                  ("densenet-fashion-mnist-seed0-crop-erase-avg", "three"),
                                  ("densenet-fashion-mnist-seed0-long-avg", "3", "ten")])
def test_usage_errors_exit_2(tmp_path, args):
    result = run(tmp_path, *args)
    assert result.returncode == 2 and result.stderr.startswith("usage: bash scripts/long-average.sh NAME K [K ...]")


def test_a_variant_not_trained_yet_is_named(tmp_path):
    result = run(tmp_path, "densenet-fashion-mnist-seed0-crop-erase-avg", "3")
    assert result.returncode == 1
    assert result.stderr == ("error: runs/records/densenet-fashion-mnist-seed0-crop-erase-avg/summary.json is "
                             "missing; train the variant with scripts/long-search.sh first\n")
    assert list(tmp_path.iterdir()) == []  # nothing written

"""Fixtures shared by the whole suite: where the real datasets are, and how to run the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The upstream Fashion-MNIST files (``../shared/data/fashion-mnist``, as on CI)."""
    path = SHARED_DATA / "fashion-mnist"
    if not (path / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not found at {path}")
    return path


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = SHARED_DATA / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found at {path}")
    return path


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m densenet ARGS`` in a real subprocess and capture its output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "densenet", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout, input=stdin)


def cli_json(*args: str, **kwargs) -> object:
    """Run the CLI with ``--json``, assert success, and return the parsed document."""
    result = run_cli(*args, "--json", **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)

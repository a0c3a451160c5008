"""Helpers shared by tests: run the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m densenet ARGS`` in a real subprocess and capture its output."""
    # One thread per process: on 2 shared cores, oversubscribed OpenMP threads slow small steps ~100x.
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "densenet", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout, input=stdin)


def cli_json(*args: str, **kwargs) -> object:
    """Run the CLI with ``--json``, assert success, and return the parsed document."""
    result = run_cli(*args, "--json", **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)

"""Helpers for the reliability tests: run the real CLI, check its one-line errors and a folder's integrity."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file

from densenet.data.synthetic import write_shapes_folder
from densenet.models import create_model
from densenet.rundir import ModelCard, Preprocessing, save_model
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[2]
# One thread per process: on a few busy cores, torch's default thread pool spins and runs ~100x slower.
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# The smallest training run that still exercises every file of a run directory.
TINY = ("--resize", "32", "--batch-size", "16", "--precision", "fp32", "--no-compile", "--no-progress")


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m densenet ARGS`` in a subprocess, one thread."""
    return run_cli(*args, env=ENV, timeout=timeout)


def cli_with_fault(fault: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the CLI's ``main(ARGS)`` in a subprocess after executing ``fault`` (Python code that patches something).

    The subprocess runs in the repository root, so ``fault`` can import ``tests.cli.reliability``.
    """
    code = f"{fault}\nimport sys\nfrom densenet.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, **ENV})


_SERVER = r"""
import contextlib, io, json, sys, traceback
from densenet.cli.main import main
for request in sys.stdin:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(json.loads(request))
        except SystemExit as exc:  # argparse's --help/--version
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except BaseException:  # what `python -m densenet` would print before dying
            traceback.print_exc()
            code = 1
    reply = {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
    sys.__stdout__.write("@@reply " + json.dumps(reply) + "\n")
    sys.__stdout__.flush()
"""


class CLIServer:
    """One long-lived Python process that runs the CLI's ``main(argv)`` for each request.

    ``python -m densenet`` is exactly ``sys.exit(main())``; running ``main`` in a warm process
    gives the same exit status and output, without paying torch's import (seconds on busy
    cores) for every case. Tests that need a process of their own (signals, injected faults)
    use :func:`cli` instead.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", **ENV})

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        assert self.proc.poll() is None, "the CLI server died"
        self.proc.stdin.write(json.dumps(list(args)) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("@@reply "):
                reply = json.loads(line.removeprefix("@@reply "))
                return subprocess.CompletedProcess(["densenet", *args], **reply)
        raise AssertionError(f"the CLI server exited with status {self.proc.wait()}")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def cli_json_ok(run: Callable[..., subprocess.CompletedProcess], *args: str) -> object:
    """Run the CLI with ``--json`` through ``run`` (:func:`cli` or a :class:`CLIServer`); return the document."""
    result = run(*args, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def error_line(result: subprocess.CompletedProcess, exit_code: int) -> str:
    """Assert the error contract of docs/interface.md and return the message after ``error: `` (lower case).

    The exit status is ``exit_code``, stderr has exactly one line starting ``error: ``, and no traceback.
    """
    assert result.returncode == exit_code, (result.returncode, result.stderr[-3000:])
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[0].removeprefix("error: ").lower()


def assert_intact(folder: Path) -> None:
    """Nothing half-written: no temporary files, and every file of a run directory parses completely."""
    folder = Path(folder)
    leftovers = [p for p in folder.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers
    for path in folder.rglob("*.json"):
        json.loads(path.read_text())
    for path in folder.rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            json.loads(line)
    for path in folder.rglob("*.pt"):
        torch.load(path, map_location="cpu", weights_only=True)
    for path in folder.rglob("*.safetensors"):
        load_file(path)


def epochs_in(run: Path) -> list[int]:
    """The ``epoch`` of every row of ``metrics.jsonl``."""
    path = Path(run) / "metrics.jsonl"
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()] if path.exists() else []


def make_model_dir(folder: Path, image_size: int = 32) -> Path:
    """A folder with ``model.safetensors`` + ``model.json`` of an untrained d2l_densenet (10 classes, grayscale)."""
    card = ModelCard(model="d2l_densenet", model_kwargs={"in_channels": 1, "num_classes": 10},
                     classes=[f"class{i}" for i in range(10)], preprocessing=Preprocessing(1, image_size),
                     dataset="fashion-mnist")
    save_model(folder, create_model("d2l_densenet", in_channels=1, num_classes=10), card)
    return Path(folder)


def make_shapes(folder: Path, per_class: int = 8) -> Path:
    """A tiny image-folder dataset (3 classes of 32px pictures): loads in milliseconds, no checksums."""
    return write_shapes_folder(folder, per_class=per_class, size=32, seed=0)


class _Proxy:
    """A stand-in for a module that overrides some of its functions and forwards the rest."""

    def __init__(self, real: object, **overrides: Callable) -> None:
        self._real = real
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


class _HalfWriter:
    """A file whose next write stores half the bytes, then fails as a full disk does."""

    def __init__(self, fh: object) -> None:
        self._fh = fh

    def write(self, data: bytes) -> int:
        self._fh.write(bytes(data[: len(data) // 2]))
        self._fh.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> object:
        return getattr(self._fh, name)

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


def fill_disk(set_attr: Callable[[object, str, object], None], writes: tuple[str, ...] = (),
              appends: tuple[str, ...] = ()) -> list[str]:
    """Make atomic writes of the files named in ``writes``, and appends to those in ``appends``, fail halfway
    with ENOSPC, as a disk that fills up does.

    Patches only what :mod:`densenet.rundir.files` and :mod:`densenet.engine.logging` see, through
    ``set_attr`` (``monkeypatch.setattr`` in tests, ``setattr`` in a subprocess). Returns the list of
    writes it made fail, e.g. ``["last.pt"]`` or ``["metrics.jsonl (append)"]``.
    """
    from densenet.engine import logging as metrics_module
    from densenet.rundir import files

    failed: list[str] = []
    temp_files: set[int] = set()  # descriptors of armed atomic writes
    armed_appends: dict[int, str] = {}  # descriptor -> file name

    def mkstemp(prefix: str = "", suffix: str = "", dir: str | None = None) -> tuple[int, str]:  # noqa: A002
        fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        if prefix.strip(".") in writes:
            temp_files.add(fd)
            failed.append(prefix.strip("."))
        return fd, path

    def fdopen(fd: int, *args: object, **kwargs: object) -> object:
        fh = os.fdopen(fd, *args, **kwargs)
        if fd in temp_files:
            temp_files.discard(fd)
            return _HalfWriter(fh)
        return fh

    def open_(path: str, flags: int, mode: int = 0o777) -> int:
        fd = os.open(path, flags, mode)
        if os.path.basename(path) in appends:
            armed_appends[fd] = os.path.basename(path)
        return fd

    def close(fd: int) -> None:
        armed_appends.pop(fd, None)
        os.close(fd)

    def write(fd: int, data: bytes) -> int:
        if fd not in armed_appends:
            return os.write(fd, data)
        failed.append(f"{armed_appends[fd]} (append)")
        os.write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    set_attr(files, "tempfile", _Proxy(tempfile, mkstemp=mkstemp))
    set_attr(files, "os", _Proxy(os, fdopen=fdopen))
    set_attr(metrics_module, "os", _Proxy(os, open=open_, write=write, close=close))
    return failed

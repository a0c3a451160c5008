"""The names of a run directory's files, and the one atomic writer every module uses.

A write goes to a hidden temporary file beside its destination (``.NAME.*.tmp``), is flushed
and fsync'ed, gets the mode a plain ``open()`` would give it (``0666 & ~umask``), is renamed
over the destination, and then the folder is fsync'ed so that the rename itself survives a
power cut. A failure at any step deletes the temporary file and leaves the old file in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

CONFIG_FILE = "config.json"  # the resolved TrainConfig
METRICS_FILE = "metrics.jsonl"  # one row per finished epoch
SUMMARY_FILE = "summary.json"  # the final numbers of a training run
CURVES_FILE = "curves.png"  # loss and accuracy against epochs
WEIGHTS_FILE = "model.safetensors"  # the trained weights
META_FILE = "model.json"  # the model card: what rebuilds the model and preprocesses its inputs
CHECKPOINT_DIR = "checkpoints"  # resumable training state
LAST = "last.pt"  # the latest checkpoint, inside CHECKPOINT_DIR
BEST = "best.pt"  # the checkpoint with the best test accuracy, inside CHECKPOINT_DIR
EPOCH_CHECKPOINT = "epoch-{epoch:04d}.pt"  # with --keep-checkpoints K: the last K epochs' checkpoints, too
EPOCH_CHECKPOINT_GLOB = "epoch-*.pt"
EVALUATION_FILE = "evaluation.json"  # written by densenet evaluate
CONFUSION_PNG = "confusion_matrix.png"  # written by densenet evaluate
ROC_PNG = "roc_curves.png"  # written by densenet evaluate for multi-label and two-class runs
TEMP_GLOB = ".*.tmp"  # the temporary files of atomic writes


def current_umask() -> int:
    """The process's umask, read without changing it where the platform allows.

    Linux reports it in ``/proc/self/status``. Elsewhere the only way to read it is to set it and
    set it back; the umask is process-global, so a thread creating a file in that instant would
    get the temporary value. That value is 0o077, so such a file is at worst too private, never
    too open.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    previous = os.umask(0o077)
    os.umask(previous)
    return previous


def fsync_path(path: str | Path) -> None:
    """fsync a file or a folder by path (a folder's fsync makes the renames in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[tuple[int, Path]]:
    """A temporary file beside ``path``; committed under ``path`` if the block succeeds, else deleted."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        yield fd, tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600 files; give it open()'s mode
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """Open a binary file that appears under ``path`` only once the block has succeeded.

    For content written piece by piece (a download, streamed in chunks). The file is flushed and
    fsync'ed before the rename.

    Args:
        path: The destination; its folder must exist.

    Yields:
        The open temporary file.
    """
    with _temp_beside(Path(path)) as (fd, _), os.fdopen(fd, "wb") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield the path of a temporary file for a writer that wants a file name (ONNX, TorchScript).

    When the block succeeds the temporary file is fsync'ed and renamed to ``path``; otherwise it is
    deleted, so a failed export or check leaves nothing under ``path``.
    """
    with _temp_beside(Path(path)) as (fd, tmp):
        os.close(fd)
        yield tmp
        fsync_path(tmp)


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically and durably, with the mode ``open()`` would give."""
    with atomic_file(path) as fh:
        fh.write(payload)


def write_json(path: str | Path, data: Any, *, indent: int = 2, default: Callable[[Any], Any] | None = None) -> None:
    """Write ``data`` as indented JSON plus a newline to ``path`` atomically (``default`` as in :func:`json.dumps`)."""
    atomic_write_bytes(path, (json.dumps(data, indent=indent, default=default) + "\n").encode())


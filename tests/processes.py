"""Helpers shared by tests: the child processes of a real process, and whether they outlive it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def children(pid: int) -> list[int]:
    """The pids of the live children of process ``pid``, started from any of its threads."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass  # the thread or the process ended meanwhile
    return out


def descendants(pid: int) -> list[int]:
    """The pids of the live children of ``pid``, their children, and so on."""
    out = []
    for child in children(pid):
        out += [child, *descendants(child)]
    return out


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_until_gone(pids: list[int], within_s: float) -> list[int]:
    """The pids still alive after ``within_s`` seconds; those are then SIGKILLed, so none outlives the test."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and not all(gone(p) for p in pids):
        time.sleep(0.02)
    alive = [p for p in pids if not gone(p)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it ended (and was reaped) meanwhile
    return alive

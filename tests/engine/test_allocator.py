"""glibc keeping freed memory: a large buffer freed and allocated again faults its pages in again by default, and
not once densenet.engine.allocator.keep_freed_memory has run (each case in a fresh process: the setting is
process-wide). ``densenet train`` keeps freed memory unless ``--malloc system``, and says so in summary.json."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocates and frees a 64 MiB tensor (above the 32 MiB up to which glibc moves its mmap threshold by itself) 24 times
# and prints the minor page faults of each allocation. Kept memory is not reused at once: torch allocates aligned, so
# a freed chunk of exactly the size is a little short, and the heap grows until freed neighbours merge (7 to 10
# rounds, seen with strace as brk calls); the last rounds show the steady state of a training loop.
PROBE = """
import resource, sys, torch
from densenet.engine.allocator import keep_freed_memory, malloc_mode
if sys.argv[1] == "keep":
    assert keep_freed_memory()
faults = []
for _ in range(24):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(16 * 2**20)  # 64 MiB of float32, every page written
    del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(malloc_mode(), *faults)
"""
PAGES = 64 * 2**20 // 4096  # 16,384 pages of 4 KiB in 64 MiB


def probe(mode: str) -> tuple[str, list[int]]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    name, *faults = out.split()
    return name, [int(f) for f in faults]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_kept_memory_is_reused_without_faulting_its_pages_in_again():
    name, faults = probe("system")
    assert name == "system" and min(faults) >= PAGES, faults  # mmap-ed afresh each time: every page faults again
    name, faults = probe("keep")
    assert name == "keep" and max(faults[-4:]) < PAGES // 20, faults  # the freed pages are reused as they are


def test_without_mallopt_nothing_changes(monkeypatch):
    """Where the C library has no mallopt (macOS, Windows), keep_freed_memory says so and changes nothing."""
    import ctypes

    from densenet.engine import allocator

    class NoMallopt:
        def __init__(self, _name):
            pass

    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    monkeypatch.setattr(allocator, "_mode", "system")  # as in a fresh process
    assert allocator.keep_freed_memory() is False and allocator.malloc_mode() == "system"

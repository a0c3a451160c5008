"""glibc's allocator kept from returning freed memory to the system, the one owner of that process-wide setting.

By default glibc serves a large allocation with its own ``mmap`` and gives it back with ``munmap`` when freed, and
trims the heap's free top. A training step allocates and frees the same large activation buffers every step, so
each step faults every page of them in again, zero-filled by the kernel. On the 2-vCPU Intel Xeon of the records a
``d2l-fashion-mnist`` run spent 24% of its CPU time in the kernel, taking 206,000 minor page faults a second
(``/proc/PID/stat``, 2026-12-06), and a benchmark step of ``d2l_densenet`` ran 1.29x faster with freed memory
kept (``docs/records/bench/2026-12-01-amx-malloc-*.json``).

:func:`keep_freed_memory` sets what ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647`` would set at start-up:
no allocation is ``mmap``-ed on its own and the heap is never trimmed, so freed buffers are reused without
faulting. The price is that memory freed after the peak stays with the process. ``densenet train`` calls it
unless ``--malloc system``; library calls leave the process as it is.
"""

from __future__ import annotations

import ctypes

MALLOC_MODES = ("keep", "system")  # --malloc: keep freed memory (the default of densenet train), or glibc's own

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4
_mode = "system"


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse, for the rest of the process.

    Returns:
        Whether it took effect: ``False`` where the C library has no ``mallopt`` (macOS, Windows) or ignores it
        (musl); the process is then left as it was.
    """
    global _mode
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if mallopt(_M_MMAP_MAX, 0) != 1 or mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) != 1:
        return False
    _mode = "keep"
    return True


def malloc_mode() -> str:
    """``"keep"`` once :func:`keep_freed_memory` took effect in this process, else ``"system"`` (glibc's defaults,
    or whatever ``MALLOC_*`` environment variables the process started with)."""
    return _mode

"""Downloading one file atomically: streamed into a temp file in the target folder, md5 check, then rename."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from densenet.errors import ChecksumError, DatasetNotFoundError
from densenet.rundir import atomic_file

__all__ = ["download_file"]

_CHUNK = 1 << 20
_USER_AGENT = "densenet-data/0.1 (python urllib)"


def _fetch(url: str, out: BinaryIO, timeout: float, progress: Callable[[int], object] | None) -> str:
    """Stream ``url`` into ``out`` and return the md5 of what was written."""
    digest = hashlib.md5()
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


class _BadChecksum(Exception):
    """Aborts the atomic write of a download whose md5 is wrong."""


def download_file(
    urls: Sequence[str],
    dest: Path,
    md5: str | None,
    *,
    timeout: float = 60.0,
    progress: Callable[[int], object] | None = None,
) -> Path:
    """Download the first of ``urls`` that works into ``dest``, verified against ``md5``.

    The bytes stream into a hidden temp file beside ``dest`` (:func:`densenet.rundir.atomic_file`) and
    are renamed into place only when the checksum matches, so an interrupted or bad download never
    leaves a file under ``dest``'s name (and the temp file is removed on any failure).

    Args:
        urls: mirrors to try in order.
        dest: the final path.
        md5: expected md5 of the file, or None to skip the check.
        timeout: seconds to wait per network operation.
        progress: called with the number of bytes received per chunk.

    Returns:
        ``dest``.

    Raises:
        ChecksumError: every mirror that answered sent bytes with the wrong md5.
        DatasetNotFoundError: no mirror could be reached.
    """
    failures: list[str] = []
    bad_checksum = False
    for url in urls:
        try:
            with atomic_file(dest) as out:
                actual = _fetch(url, out, timeout, progress)
                if md5 is not None and actual != md5:
                    raise _BadChecksum(f"{url}: md5 {actual}, expected {md5}")
            return dest
        except _BadChecksum as exc:
            bad_checksum = True
            failures.append(str(exc))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # URLError covers HTTP errors and no network; OSError covers timeouts and resets mid-stream.
            failures.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
    detail = "\n".join(f"  - {line}" for line in failures)
    if bad_checksum:
        raise ChecksumError(
            f"downloaded {dest.name} does not match its checksum; nothing was saved:\n{detail}\n"
            "Try again later, or download the file yourself and put it at " + str(dest)
        )
    raise DatasetNotFoundError(
        f"could not download {dest.name}:\n{detail}\n"
        f"Check the network, or download the file yourself and put it at {dest}"
    )

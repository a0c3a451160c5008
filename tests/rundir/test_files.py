"""The atomic writer: open()'s mode whatever the umask, fsync of the file then of its folder, nothing half-written."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from densenet.rundir import atomic_file, atomic_path, atomic_write_bytes, current_umask, write_json


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_with_atomic_path(path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"artifact")


WRITERS = {
    "atomic_write_bytes": lambda path: atomic_write_bytes(path, b"payload"),
    "write_json": lambda path: write_json(path, {"a": 1}),
    "atomic_path": _write_with_atomic_path,
}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_open_would_give(tmp_path: Path, writer: str, mask: int, expected: int) -> None:
    target = tmp_path / "file.bin"
    with umask(mask):
        WRITERS[writer](target)
        plain = tmp_path / "plain"
        plain.write_bytes(b"")  # what open() gives under this umask
    assert mode(target) == expected == mode(plain)


def test_current_umask_reads_without_changing_it() -> None:
    with umask(0o027):
        assert current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # still set


def test_file_is_synced_then_renamed_then_its_folder_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, ...]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append(("replace", str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "model.json"
    atomic_write_bytes(target, b"{}\n")

    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    synced_file, (_, src, dst), synced_dir = events[0][1], events[1], events[2][1]
    assert synced_file == src and Path(src).parent == tmp_path and Path(src).name.startswith(".model.json.")
    assert dst == str(target)
    assert synced_dir == str(tmp_path)  # after the rename: the rename itself is durable
    assert target.read_bytes() == b"{}\n"


def test_atomic_path_syncs_what_the_writer_wrote_before_renaming(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    target = tmp_path / "model.onnx"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"onnx")
        temp_name = str(tmp)
    assert synced == [temp_name, str(tmp_path)]


@pytest.mark.parametrize("streamed", [False, True])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path, streamed: bool) -> None:
    target = tmp_path / "last.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        if streamed:
            with atomic_file(target) as fh:
                fh.write(b"new, half of it")
                raise RuntimeError("disk on fire")
        else:
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"new")
                raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_streamed_chunks_arrive_whole(tmp_path: Path) -> None:
    target = tmp_path / "download.gz"
    with atomic_file(target) as fh:
        for i in range(5):
            assert not target.exists()  # nothing under the final name until the block ends
            fh.write(bytes([i]) * 1000)
    assert target.read_bytes() == b"".join(bytes([i]) * 1000 for i in range(5))

"""Run the real ``densenet`` CLI with a shim that makes a crash land where a test wants it.

    python tests/cli/crash_shims.py slow-write MARKER NAME K PHASE -- train ...
    python tests/cli/crash_shims.py power-cut JOURNAL RUN NAME:K[,NAME:K ...] -- train ...

Only this process is patched; the library carries no test hook.

``slow-write``: the K-th atomic write of a file called NAME stops for a minute, either with its
temporary file complete and fsync'ed but not yet renamed (PHASE ``before-rename``) or just after the
rename, before its folder is fsync'ed (``after-rename``). While it waits, MARKER reads
``NAME K PHASE``; once any write has finished it reads ``idle``, so a test that sends SIGKILL while
MARKER names a write knows the kill landed inside that write.

``power-cut``: every ``os.fsync`` is recorded. Right after the K-th rename onto NAME, JOURNAL gets
``cut-I.json`` (I counts from 0), what the disk would hold if the power went out then; at the last
such moment the process stops dead. :func:`after_power_cut` rebuilds the run directory from it.

The model of a disk: a file's data survives as it was at its last fsync (a file never fsync'ed
comes back empty, as ext4's delayed allocation leaves it); a folder's entries (creations, renames,
deletions) survive as they were at its last fsync; a folder never fsync'ed comes back empty. The
run folder itself, and whatever it held when the command started, count as already on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _write_marker(marker: Path, text: str) -> None:
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, marker)  # the real os.replace: the reader sees the old or the new text


def slow_write(marker: Path, name: str, k: int, phase: str) -> None:
    """Make the K-th atomic write of NAME wait a minute in PHASE, saying so in ``marker``."""
    from densenet.rundir import files
    from tests.cli.reliability import _Proxy

    seen = {"replaces": 0}

    def replace(src: str, dst: str) -> None:
        if os.path.basename(dst) == name:
            seen["replaces"] += 1
        hit = os.path.basename(dst) == name and seen["replaces"] == k
        if hit and phase == "before-rename":
            _write_marker(marker, f"{name} {k} {phase}")
            time.sleep(60)
        os.replace(src, dst)
        if hit and phase == "after-rename":
            _write_marker(marker, f"{name} {k} {phase}")
            time.sleep(60)

    def fsync_path(path: str | Path) -> None:
        real_fsync_path(path)
        if os.path.isdir(path):  # the last step of an atomic write
            _write_marker(marker, "idle")

    real_fsync_path = files.fsync_path
    files.os = _Proxy(os, replace=replace)
    files.fsync_path = fsync_path
    _write_marker(marker, "idle")


class _Disk:
    """What a disk holds of the run directory ``root``: folder entries and file data as of their last fsync."""

    def __init__(self, root: Path, journal: Path) -> None:
        self.root, self.journal = root.resolve(), journal
        (journal / "data").mkdir(parents=True)
        self.entries: dict[str, dict[str, list]] = {}  # folder (relative) -> name -> [inode, is a folder]
        self.data: dict[int, str] = {}  # inode -> copy of its data at its last fsync
        self.copies = 0
        if self.root.is_dir():  # what the folder held before the command started is on disk already
            for folder, _, names in os.walk(self.root):
                self._fsync_folder(Path(folder))
                for filename in names:
                    self._fsync_file(Path(folder) / filename)

    def _fsync_file(self, path: Path) -> None:
        self.copies += 1
        copy = self.journal / "data" / str(self.copies)
        shutil.copyfile(path, copy)
        self.data[os.stat(path).st_ino] = copy.name

    def _fsync_folder(self, path: Path) -> None:
        self.entries[str(path.relative_to(self.root))] = {
            entry.name: [entry.inode(), entry.is_dir(follow_symlinks=False)] for entry in os.scandir(path)}

    def fsync(self, fd: int) -> None:
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if path != self.root and self.root not in path.parents:
            return
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            self._fsync_folder(path)
        else:
            self._fsync_file(path)

    def image(self, index: int) -> None:
        """Write ``cut-INDEX.json``: the disk as it would be if the power went out now."""
        (self.journal / f"cut-{index}.json").write_text(json.dumps({"entries": self.entries, "data": self.data}))


def power_cut(journal: Path, run: Path, cuts: list[tuple[str, int]]) -> None:
    """Record every fsync under ``run``; take a disk image right after each (K-th rename onto NAME) in
    ``cuts``, and stop dead at the last."""
    disk = _Disk(run, journal)
    real_fsync, real_replace = os.fsync, os.replace
    renames: dict[str, int] = {}

    def fsync(fd: int) -> None:
        real_fsync(fd)
        disk.fsync(fd)

    def replace(src: str, dst: str) -> None:
        real_replace(src, dst)
        name = os.path.basename(dst)
        renames[name] = renames.get(name, 0) + 1
        if (name, renames[name]) in cuts:
            index = cuts.index((name, renames[name]))
            disk.image(index)
            if index == len(cuts) - 1:
                os._exit(99)  # no cleanup, no flush: the power is gone

    os.fsync, os.replace = fsync, replace


def after_power_cut(journal: Path, index: int, dest: Path) -> None:
    """Rebuild in ``dest`` the run directory that the disk holds after the power cut number ``index``."""
    disk = json.loads((journal / f"cut-{index}.json").read_text())

    def rebuild(rel: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, (inode, is_dir) in disk["entries"].get(rel, {}).items():
            if is_dir:
                rebuild(os.path.normpath(os.path.join(rel, name)), folder / name)
            elif str(inode) in disk["data"]:
                shutil.copyfile(journal / "data" / disk["data"][str(inode)], folder / name)
            else:
                (folder / name).write_bytes(b"")  # the name was made durable, the data never was

    rebuild(".", dest)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    split = argv.index("--")
    mode, options, cli_args = argv[0], argv[1:split], argv[split + 1 :]
    if mode == "slow-write":
        marker, name, k, phase = options
        slow_write(Path(marker), name, int(k), phase)
    elif mode == "power-cut":
        journal, run, cuts = options
        power_cut(Path(journal), Path(run), [(c.split(":")[0], int(c.split(":")[1])) for c in cuts.split(",")])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    from densenet.cli.main import main as densenet_main

    return densenet_main(cli_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

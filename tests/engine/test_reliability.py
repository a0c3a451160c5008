"""Failures while training: a full disk, running out of memory, SIGTERM, and SIGKILL at random moments.

Whatever happens, a run directory never holds a half-written file: the checkpoint, the weights
and every ``metrics.jsonl`` row are either the previous complete version or the new one, and
``--resume`` continues from the last complete epoch. Training runs use a tiny picture folder
(48 training images at 32 px), so an epoch takes well under a second.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.cli.crash_shims import after_power_cut
from tests.cli.reliability import (
    ENV,
    TINY,
    CLIServer,
    assert_intact,
    cli,
    cli_with_fault,
    epochs_in,
    error_line,
    fill_disk,
    make_shapes,
)
from tests.processes import children, wait_until_gone

from densenet.cli.main import _describe
from densenet.engine.checkpoint import load_checkpoint
from densenet.engine.config import load_preset
from densenet.engine.trainer import train


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(autouse=True)
def one_thread():
    """Busy shared cores make torch's thread pool crawl; one thread is fast and deterministic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(shapes: Path, epochs: int = 1):
    return load_preset("d2l-fashion-mnist").replace({
        "data.dataset": "image-folder", "data.data_dir": str(shapes), "data.resize": 32, "run.batch_size": 16,
        "run.epochs": epochs, "run.compile": False, "run.device": "cpu", "run.precision": "fp32"})


def snapshot(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in ("checkpoints/last.pt", "model.safetensors", "metrics.jsonl")}


# ------------------------------------------------------------------ a full disk


def test_full_disk_while_appending_a_metrics_row_leaves_no_half_row(shapes, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny(shapes), run, progress=False)
    failed = fill_disk(monkeypatch.setattr, appends=("metrics.jsonl",))
    with pytest.raises(OSError):
        train(tiny(shapes, epochs=2), run, resume=True, progress=False)
    assert failed == ["metrics.jsonl (append)"]
    assert epochs_in(run) == [1]  # the half row was cut off again
    assert load_checkpoint(run)["epoch"] == 2  # the checkpoint came first; resume trusts it
    assert_intact(run)
    monkeypatch.undo()
    train(tiny(shapes, epochs=3), run, resume=True, progress=False)
    assert epochs_in(run) == [1, 2, 3]


@pytest.mark.parametrize("where", ["writes=('last.pt',)", "writes=('model.safetensors',)",
                                   "appends=('metrics.jsonl',)"])
def test_full_disk_through_the_cli_says_what_to_do(where, shapes, tmp_path):
    """A disk that fills up during the checkpoint, the weights or a metrics row keeps the previous complete files,
    and the command that a user runs says what to do."""
    run = tmp_path / "run"
    train(tiny(shapes), run, progress=False)
    before = snapshot(run)
    fault = f"from tests.cli.reliability import fill_disk\nfill_disk(setattr, {where})"
    result = cli_with_fault(fault, "train", "--resume", str(run), "--epochs", "2", "--no-progress")
    message = error_line(result, 1)
    assert message == ("no space left on device ([errno 28] no space left on device). free some disk space or "
                       "choose another --out folder.")
    if "last.pt" in where:
        assert snapshot(run) == before  # epoch 1's checkpoint, weights and metrics, untouched
    elif "model.safetensors" in where:  # epoch 2's checkpoint and row came first; the weights stay epoch 1's
        assert (run / "model.safetensors").read_bytes() == before["model.safetensors"]
        assert load_checkpoint(run)["epoch"] == 2 and epochs_in(run) == [1, 2]
    else:  # the checkpoint came first; the half row was cut off again
        assert load_checkpoint(run)["epoch"] == 2 and epochs_in(run) == [1]
    assert_intact(run)  # and the half-written temporary file is gone


# ------------------------------------------------------------------ a diverging loss


def test_a_diverging_loss_through_the_cli(shapes, tmp_path):
    # A learning rate of 1e12 turns the loss into NaN within the first batches, every time.
    run = tmp_path / "run"
    result = cli("train", "--dataset", "image-folder", "--data-dir", str(shapes), "--out", str(run), *TINY,
                 "--lr", "1e12", "--epochs", "1")
    assert error_line(result, 1) == ("the training loss became nan or infinite; the last good checkpoint is kept. "
                                     "lower --lr (now 1000000000000.0) or use --precision fp32")
    assert not (run / "checkpoints").exists() and not (run / "model.safetensors").exists() and epochs_in(run) == []
    assert_intact(run)
    # A divergence after good epochs keeps their checkpoint: tests/engine/test_trainer.py checks that through the API.


# ------------------------------------------------------------------ out of memory


@pytest.mark.parametrize("exc", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.10 GiB total capacity)"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:114] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 1099511627776 bytes. Error code 12 (Cannot allocate memory) ... out of memory"),
    MemoryError(),
], ids=["cuda", "cpu-allocator", "MemoryError"])
def test_out_of_memory_is_described_with_the_way_out(exc):
    message = _describe(exc)
    assert message.startswith("out of memory") and "smaller --batch-size" in message and "\n" not in message


def test_out_of_memory_through_the_cli(shapes, tmp_path):
    run = tmp_path / "run"
    fault = ("import torch\nfrom densenet.engine.trainer import Trainer\n"
             "def step(self, x, y, batch=0):\n"
             "    raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')\n"
             "Trainer._step = step")
    result = cli_with_fault(fault, "train", "--dataset", "image-folder", "--data-dir", str(shapes), "--out", str(run),
                            *TINY)
    message = error_line(result, 1)
    assert "out of memory (cuda out of memory. tried to allocate 20.00 gib)" in message
    assert "try a smaller --batch-size" in message and "--memory-efficient" in message
    assert not (run / "checkpoints").exists() and epochs_in(run) == []
    assert_intact(run)


# ------------------------------------------------------------------ signals


def start(args: list[str], log: Path, program: tuple[str, ...] = ("-m", "densenet")) -> subprocess.Popen:
    """``python -m densenet ARGS`` (or ``python PROGRAM ARGS``) in the background, stderr to ``log``."""
    with open(log, "w") as err:
        return subprocess.Popen([sys.executable, *program, *args], stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, **ENV})


def wait_for(condition, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "training stopped early"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_saves_and_exits_cleanly_like_sigint(shapes, tmp_path):
    run, log = tmp_path / "run", tmp_path / "stderr.txt"
    proc = start(["train", "--dataset", "image-folder", "--data-dir", str(shapes), "--out", str(run), *TINY,
                  "--epochs", "200"], log)
    try:
        wait_for(lambda: bool(epochs_in(run)), proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 130
    finally:
        proc.kill()
    err = log.read_text()
    done = load_checkpoint(run)["epoch"]
    assert f"interrupted in epoch {done + 1} after" in err and f"densenet train --resume {run}" in err
    assert "Traceback" not in err and "error:" not in err
    assert epochs_in(run) == list(range(1, done + 1)) and 1 <= done < 200
    assert_intact(run)


def check_after_kill(run: Path) -> int:
    """What a SIGKILL may leave: complete files only (temporary files aside). Returns the checkpoint's epoch."""
    epoch = 0
    if (run / "checkpoints" / "last.pt").exists():
        epoch = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["epoch"]
    if (run / "model.safetensors").exists():
        assert load_file(run / "model.safetensors")
    rows = epochs_in(run)  # every line is whole JSON
    assert rows in (list(range(1, epoch + 1)), list(range(1, epoch)))  # the row follows its checkpoint
    return epoch


def test_sigkill_at_random_moments_never_corrupts_the_run(shapes, tmp_path):
    rng = random.Random(9)
    run, log = tmp_path / "run", tmp_path / "stderr.txt"

    def started() -> bool:
        text = log.read_text()
        return "training:" in text or "resuming after" in text

    # A first, uninterrupted run of 2 epochs measures how long 2 epochs plus the final writes take here.
    proc = start(["train", "--dataset", "image-folder", "--data-dir", str(shapes), "--out", str(run), *TINY,
                  "--epochs", "2"], log)
    wait_for(started, proc)
    t0 = time.monotonic()
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    duration = time.monotonic() - t0
    epoch, kills, seen = check_after_kill(run), 0, 0
    for _ in range(5):
        # Each round asks for two more epochs and dies somewhere in them: mid-batch, mid-checkpoint,
        # mid-metrics row, or while the final weights are written.
        proc = start(["train", "--resume", str(run), "--epochs", str(epoch + 2), "--no-progress"], log)
        try:
            wait_for(started, proc)
            time.sleep(rng.uniform(0.0, 0.9 * duration))
            if proc.poll() is None:
                workers = children(proc.pid)  # the picture-decoding DataLoader workers
                proc.kill()
                kills += 1
                seen += len(workers)
                assert wait_until_gone(workers, within_s=2) == [], "a worker outlived the killed run"
            proc.wait(timeout=60)
        finally:
            proc.kill()
        epoch = check_after_kill(run)
    assert kills >= 2 and seen > 0
    result = cli("train", "--resume", str(run), "--epochs", str(epoch + 1), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert epochs_in(run) == list(range(1, epoch + 2))  # one row per finished epoch, no duplicates
    assert load_checkpoint(run)["epoch"] == epoch + 1
    assert_intact(run)  # the temporary files of killed writes are gone too


def test_a_run_killed_in_its_first_epoch_starts_again(shapes, tmp_path):
    # What a kill during the first checkpoint write leaves: config.json, no last.pt, a half temporary file.
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(tiny(shapes, epochs=1).to_dict()))
    (run / "checkpoints" / ".last.pt.x1y2z3.tmp").write_bytes(b"PK\x03\x04 half a checkpoint")
    result = cli("train", "--resume", str(run), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "has no finished epoch yet; starting it from the beginning" in result.stderr
    assert epochs_in(run) == [1] and load_checkpoint(run)["epoch"] == 1
    assert_intact(run)


# ------------------------------------------------------------------ a kill inside a write, a power cut

SHIMS = Path(__file__).resolve().parents[1] / "cli" / "crash_shims.py"


@pytest.fixture(scope="module")
def densenet() -> CLIServer:
    """The CLI in one warm process, for the runs that only need to finish."""
    server = CLIServer()
    yield server
    server.close()


def finish(densenet: CLIServer, run: Path, epochs: int) -> None:
    """``densenet train --resume RUN --epochs N`` succeeds, and leaves exactly one row per epoch."""
    result = densenet("train", "--resume", str(run), "--epochs", str(epochs), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert epochs_in(run) == list(range(1, epochs + 1)) and load_checkpoint(run)["epoch"] == epochs
    assert_intact(run)


def test_sigkill_inside_a_checkpoint_write_leaves_the_previous_or_the_next_file(shapes, tmp_path, densenet):
    """SIGKILL lands inside a write: tests/cli/crash_shims.py holds that write open, and says which it is."""
    run, marker, log = tmp_path / "run", tmp_path / "in-flight", tmp_path / "stderr.txt"
    fresh = ["train", "--dataset", "image-folder", "--data-dir", str(shapes), "--out", str(run), *TINY,
             "--epochs", "2"]
    rounds = [  # (command, the write to kill, its checkpoint epoch and metrics rows after the kill)
        (fresh, ("last.pt", "2", "before-rename"), 1, [1]),  # epoch 2's checkpoint is complete but not renamed
        (["train", "--resume", str(run), "--no-progress"], ("model.safetensors", "1", "after-rename"), 2, [1, 2]),
    ]
    for args, write, epoch, rows in rounds:
        proc = start(["slow-write", str(marker), *write, "--", *args], log, program=(str(SHIMS),))
        try:
            wait_for(lambda: marker.exists() and marker.read_text() == " ".join(write), proc)  # noqa: B023
            proc.kill()
            proc.wait(timeout=60)
        finally:
            proc.kill()
        assert marker.read_text() == " ".join(write)  # the process died inside that write
        assert check_after_kill(run) == epoch and epochs_in(run) == rows
        temps = sorted(p.name.split(".")[1] for p in run.rglob(".*.tmp"))
        assert temps == (["last"] if write[2] == "before-rename" else [])  # only the write that was cut short
    assert load_file(run / "model.safetensors")  # renamed just before the kill: complete
    finish(densenet, run, 3)


def test_a_power_cut_keeps_what_was_fsynced_and_the_run_resumes(shapes, tmp_path, densenet):
    """A power cut, as modelled in tests/cli/crash_shims.py: only fsync'ed data and the entries of fsync'ed
    folders survive. Two moments of one run: right after epoch 2's checkpoint is renamed over epoch 1's (the
    folder not yet fsync'ed), and right after epoch 2's curves.png is renamed (the checkpoint's folder fsync'ed)."""
    run, journal = tmp_path / "run", tmp_path / "journal"
    proc = start(["power-cut", str(journal), str(run), "last.pt:2,curves.png:2", "--", "train", "--dataset",
                  "image-folder", "--data-dir", str(shapes), "--out", str(run), *TINY, "--epochs", "3"],
                 tmp_path / "stderr.txt", program=(str(SHIMS),))
    assert proc.wait(timeout=300) == 99, (tmp_path / "stderr.txt").read_text()[-3000:]
    for index, (epoch, rows) in enumerate([(1, [1]), (2, [1, 2])]):
        crashed = tmp_path / f"crashed-{index}"
        after_power_cut(journal, index, crashed)
        assert_intact(crashed)
        assert load_checkpoint(crashed)["epoch"] == epoch and epochs_in(crashed) == rows
        finish(densenet, crashed, 3)

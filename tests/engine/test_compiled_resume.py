"""The default fast path, trained through the CLI: torch.compile, channels-last, and bf16 where the CPU has it.

Resuming it, between epochs or after a real SIGINT mid-epoch, ends with every tensor equal to the run never
interrupted, with a short last batch, dropout and augmentation on. (Before the engine compiled with static
shapes, the short last batch switched the uninterrupted run to dynamic-shape kernels that the resumed run
never used, and every tensor differed.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from tests.helpers import run_cli

from densenet.engine.performance import cpu_supports_bf16

# 520 = 8 batches of 64 + a short one of 8; the 192 test images are one evaluation batch. A small d2l_densenet (one
# layer per block) keeps the cold compilation of the first process short: 80 s against 107 s with two layers per
# block, one thread, measured 2026-12-06 on the Intel Xeon with AMX; the later processes load the graphs from the
# Inductor cache.
ARGS = ["--preset", "densenet-fashion-mnist", "--resize", "32", "--train-subset", "520", "--test-subset", "192",
        "--batch-size", "64", "--epochs", "3", "--random-erasing", "0.25", "--crop-padding", "2",
        "--model-kwargs", '{"block_config": [1, 1, 1, 1], "growth_rate": 16, "drop_rate": 0.1}', "--no-progress"]


def train(*args: str) -> dict:
    result = run_cli("train", *args, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def assert_same_run(a, b) -> None:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), \
        [k for k in wa if not torch.equal(wa[k], wb[k])][:5]
    keep = ("epoch", "loss", "train_acc", "test_acc", "test_loss", "lr", "examples")
    rows = [[{k: r[k] for k in keep} for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())]
            for d in (a, b)]
    assert rows[0] == rows[1]


def resume_and_sigint_in_epoch_two(run) -> None:
    """Resume ``run`` (stopped after epoch 1) and send a real SIGINT once the resumed process says it is
    training, so the interrupt lands in epoch 2; the run stops after the batch in flight."""
    cmd = [sys.executable, "-m", "densenet", "train", "--resume", str(run), "--epochs", "3", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("resuming after epoch 1:"):
            break
    assert seen and seen[-1].startswith("resuming after epoch 1:"), "".join(seen)[-3000:]
    time.sleep(0.5)  # the banner comes just before the interrupt handler is installed
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["partial"] is not None and state["partial"]["epoch"] == 2, err[-2000:]
    assert state["partial"]["batches"] < 9, state["partial"]  # 9 batches per epoch: stopped inside epoch 2


def test_the_default_fast_path_learns_and_resumes_exactly(tmp_path, fashion_dir):
    """One uninterrupted run, and one stopped between epochs 1 and 2, resumed, stopped by a real SIGINT inside
    epoch 2 and resumed again: four processes, each compiling afresh."""
    data = ["--data-dir", str(fashion_dir)]
    full = train(*ARGS, *data, "--out", str(tmp_path / "full"))
    assert full["compiled"] is True and full["precision"] == ("bf16" if cpu_supports_bf16() else "fp32")
    assert full["malloc"] == ("keep" if sys.platform.startswith("linux") else "system")  # glibc keeps freed memory
    assert full["test_acc"] > 0.3  # chance is 0.1
    config = json.loads((tmp_path / "full" / "config.json").read_text())["run"]
    assert (config["compile"], config["channels_last"], config["precision"]) == (None, None, "auto")  # defaults

    train(*ARGS, *data, "--epochs", "1", "--out", str(tmp_path / "chain"))
    resume_and_sigint_in_epoch_two(tmp_path / "chain")
    train("--resume", str(tmp_path / "chain"), "--no-progress")
    assert_same_run(tmp_path / "full", tmp_path / "chain")


# The precision the default does not pick here, compiled: fp32 where the CPU has native bf16 (the default then is
# bf16), and bf16 elsewhere, where it is emulated and slow, so only `make test-all` trains it.
OTHER_PRECISION = (pytest.param("fp32", id="fp32") if cpu_supports_bf16() else
                   pytest.param("bf16", id="bf16-emulated", marks=pytest.mark.slow))


@pytest.mark.parametrize("precision", [OTHER_PRECISION])
def test_the_other_precision_resumes_exactly_too(tmp_path, fashion_dir, precision):
    """fp32 and bf16 autocast each run the same kernels in the resumed process, so both are exact; the default
    test above covers the precision the default picks on this CPU, this one the other."""
    data = ["--data-dir", str(fashion_dir), "--precision", precision]
    full = train(*ARGS, *data, "--out", str(tmp_path / "full"))
    assert (full["compiled"], full["precision"]) == (True, precision)
    train(*ARGS, *data, "--epochs", "1", "--out", str(tmp_path / "between"))
    train("--resume", str(tmp_path / "between"), "--epochs", "3", "--no-progress")
    assert_same_run(tmp_path / "full", tmp_path / "between")

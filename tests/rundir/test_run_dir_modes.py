"""Every file of a real run directory, written by the real trainer and evaluation, gets open()'s mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from densenet.engine.config import load_preset
from densenet.engine.evaluate import evaluate_run
from densenet.engine.trainer import train

EXPECTED_FILES = {"config.json", "metrics.jsonl", "summary.json", "curves.png", "model.safetensors", "model.json",
                  "checkpoints/last.pt", "checkpoints/best.pt", "evaluation.json", "confusion_matrix.png"}


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600)])
def test_every_file_of_a_run_directory_follows_the_umask(tmp_path: Path, fashion_dir: Path, mask: int,
                                                         expected: int) -> None:
    cfg = load_preset("d2l-fashion-mnist").replace({
        "data.data_dir": str(fashion_dir), "data.resize": 32, "data.train_subset": 64, "data.test_subset": 32,
        "run.batch_size": 32, "run.epochs": 1, "run.compile": False, "run.device": "cpu"})
    run = tmp_path / "run"
    previous = os.umask(mask)  # process-wide: restored before any other test runs
    try:
        train(cfg, run, progress=False)
        evaluate_run(run, test_subset=32)
    finally:
        os.umask(previous)
    modes = {str(p.relative_to(run)): stat.S_IMODE(p.stat().st_mode) for p in run.rglob("*") if p.is_file()}
    assert EXPECTED_FILES <= set(modes)
    assert {name: m for name, m in modes.items() if m != expected} == {}

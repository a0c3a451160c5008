"""Process-wide flags: ``--threads`` reaches torch in the process that trains or benchmarks, and ``train --malloc``
glibc's allocator (kept by default; see tests/engine/test_allocator.py for what it changes)."""

import json

from tests.helpers import run_cli


def test_train_threads_flag_sets_the_process_thread_count(tmp_path, fashion_dir):
    # The helper starts every CLI process with OMP_NUM_THREADS=1, so only the flag can make it 2.
    result = run_cli("train", "--data-dir", str(fashion_dir), "--resize", "32", "--train-subset", "64",
                     "--test-subset", "64", "--epochs", "1", "--batch-size", "32", "--no-compile",
                     "--out", str(tmp_path / "run"), "--no-progress", "--threads", "2", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["threads"] == 2
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["threads"] == 2


def test_bench_threads_flag_is_reported(tmp_path):
    result = run_cli("bench", "infer", "--model", "d2l_densenet", "--batch-size", "1", "--input-size", "1,32,32",
                     "--steps", "2", "--warmup", "1", "--no-compile", "--no-memory", "--threads", "2", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["threads"] == 2


def test_train_malloc_flag_is_applied_and_recorded(tmp_path, fashion_dir):
    common = ["train", "--data-dir", str(fashion_dir), "--resize", "32", "--train-subset", "64", "--test-subset", "64",
              "--epochs", "1", "--batch-size", "32", "--no-compile", "--no-progress", "--json"]
    system = run_cli(*common, "--out", str(tmp_path / "system"), "--malloc", "system")
    assert system.returncode == 0, system.stderr[-3000:]
    assert json.loads(system.stdout)["malloc"] == "system"
    bad = run_cli(*common, "--out", str(tmp_path / "bad"), "--malloc", "jemalloc")
    assert bad.returncode == 2 and "--malloc: invalid choice: 'jemalloc'" in bad.stderr, bad.stderr

"""The suite's own guards: real-data tests never skip silently, and CI fails on what a green run would hide.

Each case runs pytest on a tiny generated test file (pytester), with the plugin of tests/real_data.py,
or runs ``make test`` / ``.ci/run`` with a stand-in for the virtualenv's python.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from densenet.data import sources
from tests import real_data

REPO = Path(__file__).resolve().parents[1]
ARGS = ("-rfEs", "-p", "no:hypothesispytest", "-p", "no:cacheprovider")  # the plugins are not what is tested

TESTS = '''
import pytest

def test_reads_fashion_mnist(fashion_dir):
    assert (fashion_dir / "train-images-idx3-ubyte.gz").is_file()

def test_needs_a_gpu():
    pytest.skip("needs a GPU")
'''


@pytest.fixture
def suite(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A generated suite that sees no dataset anywhere: empty $DENSENET_DATA, cache, Debian and shared folders."""
    pytester.makeconftest('pytest_plugins = ("tests.real_data",)')
    pytester.makepyfile(TESTS)
    monkeypatch.setenv(sources.ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "SYSTEM_DATA_DIR", tmp_path / "debian")
    monkeypatch.setattr(real_data, "SHARED_DATA", tmp_path / "shared")
    monkeypatch.delenv("CI", raising=False)
    return pytester


def looked_in(tmp: Path) -> str:
    return (f"dataset 'fashion-mnist' not found for the real-data tests. Looked in: "
            f"{tmp}/env/fashion-mnist ($DENSENET_DATA/fashion-mnist): no such folder; "
            f"{tmp}/cache/densenet/fashion-mnist (the user cache): no such folder; "
            f"{tmp}/debian/fashion-mnist (the system datasets folder): no such folder; "
            f"{tmp}/shared/fashion-mnist (the copy beside the checkout): data folder {tmp}/shared/fashion-mnist "
            "does not exist. Run `make data`, or set $DENSENET_DATA to a folder with a fashion-mnist/ subfolder.")


def test_under_ci_a_missing_dataset_fails_naming_it_and_every_place_looked_in(suite, tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(errors=1, skipped=1)  # the GPU test may still skip
    result.stdout.fnmatch_lines([f"CI is set, so a missing dataset fails: {looked_in(tmp_path)}"])


def test_without_ci_a_missing_dataset_skips_and_the_summary_says_so(suite, tmp_path):
    result = suite.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*= 1 real-data test(s) skipped (set CI=true to make this a failure) =*",
                                 f"SKIPPED * {looked_in(tmp_path)}", "SKIPPED * needs a GPU"])


def test_the_lookup_is_the_tools_own(suite, tmp_path, monkeypatch, fashion_dir):
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "fashion-mnist").symlink_to(fashion_dir)  # $DENSENET_DATA/<name>, as `densenet` reads it
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.OK  # a legitimate skip (no GPU) is allowed under CI, and listed
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * needs a GPU"])


def test_under_ci_a_real_data_test_that_skips_for_any_reason_fails_the_session(suite, tmp_path, monkeypatch,
                                                                               fashion_dir):
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "fashion-mnist").symlink_to(fashion_dir)
    suite.makepyfile(test_optional='def test_optional_extra(fashion_dir):\n'
                                   '    __import__("pytest").importorskip("no_such_module_here")\n')
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*= 1 real-data test(s) skipped (CI is set, so the session fails) =*",
                                 "test_optional.py::test_optional_extra: *no_such_module_here*"])


@pytest.fixture
def fake_venv(tmp_path: Path) -> Path:
    """A virtualenv stand-in whose python prints its arguments and $CI and exits with $FAKE_STATUS."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text('#!/bin/sh\necho "python $* CI=$CI"\nexit "$FAKE_STATUS"\n')
    python.chmod(0o755)
    (venv / ".installed-dev").touch()  # newer than pyproject.toml: make installs nothing
    return venv


@pytest.mark.parametrize("status, expected", [(0, 0), (1, 2), (5, 2)])
def test_ci_runs_make_test_and_fails_on_failures_and_on_no_tests(fake_venv, status, expected):
    # Variables in MAKEFLAGS act as `make VAR=...` arguments, so .ci/run's own `make test` uses the stand-in.
    env = {**os.environ, "FAKE_STATUS": str(status), "MAKEFLAGS": f"VENV={fake_venv} PY={fake_venv}/bin/python"}
    env.pop("CI", None)
    result = subprocess.run(["bash", str(REPO / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == expected, result.stdout + result.stderr
    # .ci/run sets CI: real-data tests may not skip
    calls = [line for line in result.stdout.splitlines() if line.startswith("python ")]  # not make's own lines
    assert calls == ["python -m pytest -q -n auto CI=true"]
    assert ("collected no tests, which is a failure" in result.stderr) == (status == 5)
    assert ("make test failed" in result.stderr) == (status != 0)

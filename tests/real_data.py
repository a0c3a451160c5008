"""The real datasets the tests read, found the way ``densenet`` finds them, and never skipped silently.

A dataset is looked up as the tool looks it up (:func:`densenet.data.locate_dataset`: ``$DENSENET_DATA/<name>``,
the user cache, ``/usr/share/datasets/<name>``), then in the team's copy beside the checkout
(``../shared/data/<name>``, as on CI). Every copy found is verified by checksum.

Without ``$CI`` a missing dataset skips the tests that need it, and the summary lists each skip with
its reason (``-rfEs`` in pyproject.toml). With ``$CI`` set, a missing dataset is an error naming it
and every place looked in, and the session fails if a test that reads real data was skipped for any
other reason. Skips of other tests (one that needs a GPU, say) stay allowed and are listed.

tests/conftest.py imports the fixtures and hooks below, so every test directory shares one lookup.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # the team's copy beside the checkout, as on CI
FIXTURES = ("fashion_dir", "fmnist_dir", "mnist_dir")  # a test that uses one of these reads real data
MARKER = "real_data"


def on_ci() -> bool:
    """Whether ``$CI`` is set to a true value (CI services set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _looked_in(message: str) -> list[str]:
    """The ``  - place: why not`` lines of a :class:`DatasetNotFoundError` from the lookup."""
    lines = message.splitlines()
    end = next((i for i, line in enumerate(lines) if line.startswith("To fix it")), len(lines))
    return [line.strip().removeprefix("- ") for line in lines[1:end] if line.strip().startswith("- ")]


def find_real_dataset(name: str) -> Path:
    """The folder of a verified copy of the registered dataset ``name``; skip (locally) or fail (CI) without one."""
    from densenet.data import locate_dataset
    from densenet.errors import DatasetNotFoundError

    try:
        return locate_dataset(name, None, download=False)
    except DatasetNotFoundError as exc:
        looked = _looked_in(str(exc))
    shared = SHARED_DATA / name
    try:
        return locate_dataset(name, shared)
    except DatasetNotFoundError as exc:
        looked.append(f"{shared} (the copy beside the checkout): {str(exc).split('. ')[0]}")
    message = (f"dataset {name!r} not found for the real-data tests. Looked in: " + "; ".join(looked)
               + ". Run `make data`, or set $DENSENET_DATA to a folder with a " + f"{name}/ subfolder.")
    if on_ci():
        pytest.fail(f"CI is set, so a missing dataset fails: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The verified Fashion-MNIST files (``train-images-idx3-ubyte.gz``, ...)."""
    return find_real_dataset("fashion-mnist")


@pytest.fixture(scope="session")
def fmnist_dir(fashion_dir: Path) -> Path:
    """Another name for :func:`fashion_dir` (the data tests' name)."""
    return fashion_dir


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The verified MNIST files."""
    return find_real_dataset("mnist")


class _SkipGuard:
    """Collects the skipped real-data tests; fails the session under CI if there are any."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []  # (test id, reason)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and MARKER in report.keywords and not hasattr(report, "wasxfail"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skipped.append((report.nodeid, reason))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and on_ci() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:  # noqa: ANN001 (pytest's TerminalReporter)
        if not self.skipped:
            return
        verdict = "CI is set, so the session fails" if on_ci() else "set CI=true to make this a failure"
        terminalreporter.section(f"{len(self.skipped)} real-data test(s) skipped ({verdict})", red=on_ci())
        for nodeid, reason in self.skipped:
            terminalreporter.line(f"{nodeid}: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: reads a real dataset; under CI it may not be skipped")
    config.pluginmanager.register(_SkipGuard(), "real-data-skip-guard")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if set(FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(MARKER)

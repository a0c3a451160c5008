"""Fixtures of the CLI reliability tests: a model directory and a tiny picture dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.reliability import CLIServer, make_model_dir, make_shapes


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model.safetensors`` + ``model.json`` of an untrained d2l_densenet, for commands that only need a model."""
    return make_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="session")
def densenet() -> CLIServer:
    """The CLI in one warm subprocess, called as on the command line: ``densenet("train", "--epochs", "0")``."""
    server = CLIServer()
    yield server
    server.close()

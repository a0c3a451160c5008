"""``densenet evaluate`` and ``densenet predict`` with ``--backend``: the same results on every runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from densenet.cli.main import main
from tests.helpers import run_cli
from tests.run_dirs import binary_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return binary_run(tmp_path_factory.mktemp("backends"))


def cli_json(capsys: pytest.CaptureFixture, *args: str) -> object:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "auto"])
def test_evaluate_on_each_backend_gives_the_torch_numbers(run: Path, backend: str, capsys) -> None:
    torch_doc = cli_json(capsys, "evaluate", str(run), "--backend", "torch", "--tta", "flip")
    doc = cli_json(capsys, "evaluate", str(run), "--backend", backend, "--tta", "flip")
    assert torch_doc["backend"] == "torch" and doc["backend"] == ("onnxruntime" if backend == "auto" else backend)
    assert doc["examples"] == 12 and doc["accuracy"] == torch_doc["accuracy"]
    assert doc["confusion_matrix"] == torch_doc["confusion_matrix"]
    assert doc["loss"] == pytest.approx(torch_doc["loss"], abs=1e-5)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_predict_on_each_backend_gives_the_torch_probabilities(run: Path, backend: str, capsys) -> None:
    pictures = sorted(str(p) for p in (run.parent / "data" / "test").rglob("*.png"))[:3]

    def probabilities(name: str) -> list[dict[str, float]]:
        rows = cli_json(capsys, "predict", str(run), *pictures, "--backend", name, "--top-k", "2")
        return [{p["class"]: p["probability"] for p in row["predictions"]} for row in rows]

    expected = probabilities("torch")
    got = probabilities(backend)
    assert [set(r) for r in got] == [set(r) for r in expected]
    for g, e in zip(got, expected):
        assert g == pytest.approx(e, abs=1e-5)


def test_an_unknown_backend_is_a_usage_error(run: Path) -> None:
    result = run_cli("evaluate", str(run), "--backend", "tensorrt")
    assert result.returncode == 2 and result.stderr.startswith("error: argument --backend: invalid choice: 'tensorrt'")

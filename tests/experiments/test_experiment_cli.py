"""`densenet experiment` end to end: real runs, the report files, reuse, and bad input."""

import csv
import json

from densenet.experiments import list_experiments
from densenet.experiments.report import resolve_names
from tests.helpers import run_cli

EIGHT = ["claim1-params", "claim2-flops", "claim3-overfitting", "claim4-augmentation", "idea-a-bottleneck",
         "idea-b-growth-doubling", "idea-c-depth-width", "idea-d-width-throughput"]


def test_one_experiment_per_claim_and_idea_reachable_by_prefix():
    assert list_experiments() == EIGHT
    assert resolve_names("claim3") == ["claim3-overfitting"] and resolve_names("idea-d") == [EIGHT[-1]]
    assert resolve_names("all") == EIGHT


def test_experiment_writes_report_with_verdict_and_reuses_its_runs(tmp_path, fashion_dir):
    out = tmp_path / "evidence"
    args = ("experiment", "idea-a", "--scale", "tiny", "--seeds", "2", "--out", str(out), "--data-dir",
            str(fashion_dir), "--device", "cpu", "--no-progress")
    result = run_cli(*args, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads(result.stdout)
    assert [d["name"] for d in doc] == ["idea-a-bottleneck"]
    assert doc[0]["verdict"] in ("supported", "not supported", "inconclusive at this scale")
    assert doc[0]["runs"] == 8  # 4 networks x 2 seeds
    report = json.loads((out / "idea-a-bottleneck.json").read_text())
    trained = [r for r in report["records"] if "test_acc" in r]
    assert len(trained) == 8 and all(0 <= r["test_acc"] <= 1 for r in trained)
    with (out / "idea-a-bottleneck.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 8
    assert (out / "idea-a-bottleneck.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = (out / "README.md").read_text()
    assert f"Verdict: {doc[0]['verdict']}" in readme.splitlines()
    assert "densenet experiment idea-a-bottleneck --scale tiny --seeds 2" in readme
    assert "± " in readme

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "8 of 8 runs already exist" in again.stderr or "training" not in again.stderr
    assert json.loads((out / "idea-a-bottleneck.json").read_text())["train_seconds_total"] == 0


def test_unknown_experiment_and_bad_flags_are_one_line_errors(tmp_path):
    result = run_cli("experiment", "claim9", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "unknown experiment 'claim9'" in result.stderr and "claim1-params" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("experiment", "claim1", "--scale", "huge", "--out", str(tmp_path))
    assert result.returncode == 2 and "invalid choice" in result.stderr
    result = run_cli("experiment", "claim1", "--seeds", "0", "--out", str(tmp_path))
    assert result.returncode == 2 and "positive integer" in result.stderr

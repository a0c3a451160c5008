"""`densenet experiment` end to end: real runs, the report files, reuse, and bad input."""

import csv
import json
import shutil
from pathlib import Path

from densenet.experiments import list_experiments
from densenet.experiments.report import resolve_names
from tests.helpers import run_cli

NINE = ["claim1-params", "claim2-flops", "claim3-overfitting", "claim4-augmentation", "idea-a-bottleneck",
        "idea-b-growth-doubling", "idea-c-depth-width", "idea-d-width-throughput", "transfer"]


def test_one_experiment_per_claim_and_idea_reachable_by_prefix():
    assert list_experiments() == NINE
    assert resolve_names("claim3") == ["claim3-overfitting"] and resolve_names("idea-d") == [NINE[-2]]
    assert resolve_names("all") == NINE and resolve_names("transfer") == ["transfer"]


def test_experiment_writes_report_with_verdict_and_reuses_its_runs(tmp_path, fashion_dir):
    out = tmp_path / "evidence"
    args = ("experiment", "idea-c", "--scale", "tiny", "--seeds", "2", "--out", str(out), "--data-dir",
            str(fashion_dir), "--device", "cpu", "--no-progress")
    result = run_cli(*args, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads(result.stdout)
    assert [d["name"] for d in doc] == ["idea-c-depth-width"]
    assert doc[0]["verdict"] in ("supported", "not supported", "inconclusive at this scale")
    assert doc[0]["runs"] == 8  # 4 networks x 2 seeds
    report = json.loads((out / "idea-c-depth-width.json").read_text())
    trained = [r for r in report["records"] if "test_acc" in r]
    assert len(trained) == 8 and all(0 <= r["test_acc"] <= 1 for r in trained)
    with (out / "idea-c-depth-width.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 8
    assert (out / "idea-c-depth-width.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = (out / "README.md").read_text()
    assert f"Verdict: {doc[0]['verdict']}" in readme.splitlines()
    assert "densenet experiment idea-c-depth-width --scale tiny --seeds 2" in readme
    assert "± " in readme

    # The second run finds all 8 runs finished: it trains nothing (the sweep only logs "N of M runs already
    # exist; training K" when there is something to train) and every record says it was read back.
    summaries = sorted((out / "runs" / "runs").glob("*/summary.json"))
    assert len(summaries) == 8
    stamps = [p.stat().st_mtime_ns for p in summaries]
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already exist" not in again.stderr and "training" not in again.stderr
    second = json.loads((out / "idea-c-depth-width.json").read_text())
    assert second["train_seconds_total"] == 0
    assert [r["reused"] for r in second["records"]] == [True] * 8
    assert [r["test_acc"] for r in second["records"]] == [r["test_acc"] for r in report["records"]]
    assert [p.stat().st_mtime_ns for p in summaries] == stamps

    # --from-records redraws every file from the stored records alone: the same bytes, with no runs left to read.
    files = ["idea-c-depth-width.json", "idea-c-depth-width.csv", "idea-c-depth-width.png", "README.md"]
    original = {f: (out / f).read_bytes() for f in files}
    shutil.rmtree(out / "runs")
    for f in files[1:]:
        (out / f).unlink()
    rendered = run_cli(*args, "--from-records")
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    assert not (out / "runs").exists()
    assert {f: (out / f).read_bytes() for f in files} == original


def test_unknown_experiment_and_bad_flags_are_one_line_errors(tmp_path):
    result = run_cli("experiment", "claim9", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "unknown experiment 'claim9'" in result.stderr and "claim1-params" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("experiment", "claim1", "--scale", "huge", "--out", str(tmp_path))
    assert result.returncode == 2 and "invalid choice" in result.stderr
    result = run_cli("experiment", "claim1", "--seeds", "0", "--out", str(tmp_path))
    assert result.returncode == 2 and "positive integer" in result.stderr


def test_committed_report_is_what_the_records_render(tmp_path, monkeypatch):
    """docs/evidence re-rendered from its own JSON records (nothing trained or timed) is byte for byte itself."""
    from densenet.experiments import run_experiments

    evidence = Path(__file__).resolve().parents[2] / "docs" / "evidence"
    copy = tmp_path / "docs" / "evidence"
    copy.mkdir(parents=True)
    for f in evidence.glob("*.json"):
        shutil.copy(f, copy / f.name)
    monkeypatch.chdir(tmp_path)
    reports = run_experiments("all", "docs/evidence", scale="cpu", seeds=3, jobs=2, device="cpu",
                              progress=False, from_records=True)
    assert len(reports) == 9 and not (copy / "runs").exists()
    for f in sorted(evidence.glob("*.json")) + sorted(evidence.glob("*.csv")) + [evidence / "README.md"]:
        assert (copy / f.name).read_text() == f.read_text(), f.name
    verdicts = [line for line in (copy / "README.md").read_text().splitlines() if line.startswith("Verdict:")]
    assert len(verdicts) == 9
    assert all(line in ("Verdict: supported", "Verdict: not supported", "Verdict: inconclusive at this scale")
               for line in verdicts)


def test_from_records_refuses_missing_or_mismatched_records(tmp_path, fashion_dir):
    out = tmp_path / "evidence"
    base = ("experiment", "idea-d", "--scale", "tiny", "--out", str(out), "--device", "cpu", "--jobs", "1",
            "--no-progress")
    missing = run_cli(*base, "--seeds", "1", "--from-records")
    assert missing.returncode == 2 and "idea-d-width-throughput.json does not exist" in missing.stderr
    assert _error_lines(missing.stderr) == 1 and not out.exists()

    assert run_cli(*base, "--seeds", "1").returncode == 0  # timings only: 5 widths x 2 precisions
    path = out / "idea-d-width-throughput.json"
    stored = path.read_text()
    other = run_cli(*base, "--seeds", "2", "--from-records")
    assert other.returncode == 2 and "measured with --seeds 1, not --seeds 2" in other.stderr
    report = json.loads(stored)
    report["records"][3]["repeat"] = 7
    path.write_text(json.dumps(report))
    changed = run_cli(*base, "--seeds", "1", "--from-records")
    assert changed.returncode == 2 and "record 3" in changed.stderr and "differs in repeat" in changed.stderr
    assert _error_lines(changed.stderr) == 1
    report["records"] = report["records"][:-1]
    path.write_text(json.dumps(report))
    short = run_cli(*base, "--seeds", "1", "--from-records")
    assert short.returncode == 2 and "holds 9 records but" in short.stderr and "makes 10" in short.stderr


def _error_lines(stderr: str) -> int:
    assert "Traceback" not in stderr
    return sum(line.startswith("error: ") for line in stderr.splitlines())


def test_readme_verdict_table_is_the_rendered_one():
    """The verdict table in the project README is what the renderer makes of docs/evidence's reports."""
    from densenet.experiments.readme import load_reports, verdict_table

    root = Path(__file__).resolve().parents[2]
    text = (root / "README.md").read_text()
    start = text.index("## Does DenseNet live up to the chapter? The evidence")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end > 0 else None].splitlines()
    table = [line for line in section if line.startswith("|")]
    assert table == verdict_table(load_reports(root / "docs" / "evidence", list_experiments()))

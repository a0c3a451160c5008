"""Running experiments by name and writing the report: JSON, CSV, PNG per experiment, and README.md."""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from densenet.errors import ConfigError
from densenet.experiments.base import Experiment, Outcome
from densenet.experiments.claims import CLAIMS
from densenet.experiments.ideas import IDEAS
from densenet.experiments.scales import get_scale
from densenet.experiments.sweep import Log, Sweep
from densenet.export.weights import atomic_write_bytes

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (*CLAIMS, *IDEAS)}
MIN_SEEDS_FOR_REPORT = 3


def list_experiments() -> list[str]:
    """Experiment names, claims first, in the seed's order."""
    return list(EXPERIMENTS)


def resolve_names(name: str) -> list[str]:
    """``all``, one experiment's name, or a unique prefix of one (``claim1``, ``idea-a``)."""
    if name == "all":
        return list_experiments()
    if name in EXPERIMENTS:
        return [name]
    matches = [n for n in EXPERIMENTS if n.startswith(name)]
    if len(matches) == 1:
        return matches
    raise ConfigError(f"unknown experiment {name!r}; choose all or one of: {', '.join(EXPERIMENTS)}")


def run_experiments(name: str, out: str | Path, *, scale: str = "cpu", seeds: int = 3, dataset: str | None = None,
                    data_dir: str | None = None, device: str = "cpu", jobs: int = 1, runs_dir: str | Path | None = None,
                    progress: bool = True, log: Log | None = None) -> list[dict[str, Any]]:
    """Run the named experiment(s), write their report files under ``out``, and rebuild ``out/README.md``.

    Args:
        name: ``all`` or an experiment name (see :func:`list_experiments`).
        out: The report folder.
        scale: ``cpu``, ``full`` or ``tiny`` (see :mod:`densenet.experiments.scales`).
        seeds: Seeds per configuration; the report needs at least 3.
        dataset: Overrides the scale's dataset.
        data_dir: Where the dataset's files are (else the usual lookup).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        jobs: Training runs in parallel (each gets its share of the CPU threads).
        runs_dir: Where runs and timings are cached (default ``out/runs``).

    Returns:
        One report dict per experiment (what ``<name>.json`` holds).
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be a positive integer, got {seeds}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be a positive integer, got {jobs}")
    log = log or (lambda _m: None)
    names = resolve_names(name)
    sc = get_scale(scale)
    out = Path(out)
    sweep = Sweep(root=Path(runs_dir) if runs_dir else out / "runs", scale=sc, dataset=dataset or sc.dataset,
                  data_dir=data_dir, device=device, jobs=jobs, progress=progress, log=log)
    if seeds < MIN_SEEDS_FOR_REPORT:
        log(f"note: {seeds} seed(s); the report's figures need at least {MIN_SEEDS_FOR_REPORT}")
    reports = []
    for n in names:
        exp = EXPERIMENTS[n]
        log(f"{exp.title} [{sc.name} scale, {sweep.dataset}, {seeds} seeds]")
        start = time.perf_counter()
        outcome = exp.run(sweep, seeds, str(out / f"{n}.png"))
        report = _report(exp, outcome, sweep, seeds, time.perf_counter() - start, out)
        _write(out, report, outcome)
        write_readme(out)  # after each experiment, so a long `all` leaves a readable report at every stage
        log(f"Verdict: {outcome.verdict}")
        reports.append(report)
    return reports


def _command(name: str, sweep: Sweep, seeds: int, out: Path) -> str:
    parts = ["densenet experiment", name, f"--scale {sweep.scale.name}", f"--seeds {seeds}"]
    if sweep.dataset != sweep.scale.dataset:
        parts.append(f"--dataset {sweep.dataset}")
    parts.append(f"--out {out}")
    return " ".join(parts)


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} CPUs{gpu}, torch {torch.__version__}"


def _report(exp: Experiment, outcome: Outcome, sweep: Sweep, seeds: int, seconds: float, out: Path) -> dict[str, Any]:
    trained = [r for r in outcome.records if "test_acc" in r]
    return {
        "name": exp.name, "title": exp.title, "question": exp.question, "setup": exp.setup,
        "scale": sweep.scale.name, "scale_description": sweep.scale.description, "dataset": sweep.dataset,
        "seeds": seeds, "command": _command(exp.name, sweep, seeds, out), "machine": machine(),
        "date": datetime.date.today().isoformat(), "wall_seconds": round(seconds, 1),
        "train_seconds_total": round(sum(r["train_seconds"] for r in trained if not r["reused"]), 1),
        "runs": len(trained), "verdict": outcome.verdict, "reason": outcome.reason,
        "columns": outcome.columns, "rows": outcome.rows, "summary": outcome.summary, "records": outcome.records,
    }


def _write(out: Path, report: dict[str, Any], outcome: Outcome) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = report["name"]
    atomic_write_bytes(out / f"{name}.json", (json.dumps(report, indent=1, default=str) + "\n").encode())
    keys = sorted({k for r in outcome.records for k in r if k not in ("run",)})
    path = out / f"{name}.csv"
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for r in outcome.records:
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
    os.replace(tmp, path)


def section(report: dict[str, Any]) -> str:
    """The README section of one experiment."""
    cols = report["columns"]
    lines = [f"## {report['title']}", "", f"**Question.** {report['question']}", "",
             f"**Setup.** {report['setup']} Scale `{report['scale']}`: {report['scale_description']} "
             f"Mean ± std over {report['seeds']} seeds.", "",
             "| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(row[k]) for k, _ in cols) + " |" for row in report["rows"]]
    lines += ["", f"![{report['name']}]({report['name']}.png)", "", f"Verdict: {report['verdict']}", "",
              f"**Reason.** {report['reason'][0].upper() + report['reason'][1:]}", "",
              f"Command: `{report['command']}` ({report['runs']} training runs; raw results in "
              f"[{report['name']}.json]({report['name']}.json) and [{report['name']}.csv]({report['name']}.csv); "
              f"measured {report['date']} on {report['machine']}).", ""]
    return "\n".join(lines)


def write_readme(out: str | Path) -> Path:
    """Rebuild ``out/README.md`` from the ``<name>.json`` reports present in ``out``."""
    out = Path(out)
    reports = []
    for n in EXPERIMENTS:
        p = out / f"{n}.json"
        if p.is_file():
            reports.append(json.loads(p.read_text()))
    lines = ["# Evidence: the seed's claims and ideas, tested", "",
             "Written by `densenet experiment`; every number below comes from the runs of the command printed "
             "under its section. Verdicts are computed by the rules stated in each reason, from means and "
             "standard deviations over seeds; \"inconclusive at this scale\" means the differences are within "
             "seed-to-seed noise or the measurements do not reach the claim.", "",
             "| experiment | verdict |", "|---|---|"]
    lines += [f"| [{r['title']}](#{_anchor(r['title'])}) | {r['verdict']} |" for r in reports]
    lines.append("")
    lines += [section(r) for r in reports]
    path = out / "README.md"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path


def _anchor(title: str) -> str:
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return keep.replace(" ", "-")

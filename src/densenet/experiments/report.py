"""Running experiments by name and writing the report: JSON, CSV, PNG per experiment, and README.md."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from densenet.errors import ConfigError
from densenet.experiments.base import Experiment, Outcome
from densenet.experiments.claims import CLAIMS
from densenet.experiments.ideas import IDEAS
from densenet.experiments.readme import render_readme
from densenet.experiments.rules import RULES
from densenet.experiments.scales import get_scale
from densenet.experiments.stored import load_stored, stored_train_threads
from densenet.experiments.sweep import Log, Sweep
from densenet.experiments.transfer import TRANSFER
from densenet.rundir import atomic_write_bytes, write_json

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (*CLAIMS, *IDEAS, TRANSFER)}
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
                    progress: bool = True, log: Log | None = None, from_records: bool = False) -> list[dict[str, Any]]:
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
        from_records: Train and time nothing: re-render each report from the raw records stored in
            ``out/<name>.json`` by an earlier run of the same command (refused if they do not match
            what the experiment makes now). The measurement's date, machine, wall time and ``--jobs``
            are kept (``jobs`` is then each report's own).

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
    # Every stored report is checked before any is rewritten, so a refusal leaves the folder as it was.
    stored = {n: load_stored(out / f"{n}.json", n, sweep, seeds, EXPERIMENTS[n].plan(sweep, seeds))
              for n in names} if from_records else {}
    reports = []
    for n in names:
        exp = EXPERIMENTS[n]
        plot = str(out / f"{n}.png")
        if from_records:
            outcome, report = _rerender(exp, n, sweep, seeds, out, stored[n], plot, log)
        else:
            outcome, report = _measure(exp, sweep, seeds, out, plot, log)
        _write(out, report, outcome)
        write_readme(out)  # after each experiment, so a long `all` leaves a readable report at every stage
        log(f"Verdict: {outcome.verdict}")
        reports.append(report)
    return reports


def _rerender(exp: Experiment, name: str, sweep: Sweep, seeds: int, out: Path, old: dict[str, Any], plot: str,
              log: Log) -> tuple[Outcome, dict[str, Any]]:
    """One experiment's outcome and report from its stored records, keeping when, where and how it was measured."""
    log(f"{exp.title}: re-rendering from the {len(old['records'])} records in {out / (name + '.json')}")
    # Each report keeps the --jobs it was measured with (they differ between experiments), so one
    # `all --from-records` redraws them all; it is spelled out in its command and conditions.
    measured_sweep = dataclasses.replace(sweep, jobs=old.get("jobs", sweep.jobs))
    outcome = exp.analyze(measured_sweep, seeds, old["records"], plot)
    measured = {"machine": old["machine"], "date": old["date"], "wall_seconds": old["wall_seconds"],
                "train_threads": stored_train_threads(old, measured_sweep.jobs) if sweep.device == "cpu" else None}
    return outcome, _report(exp, outcome, measured_sweep, seeds, out, measured)


def _measure(exp: Experiment, sweep: Sweep, seeds: int, out: Path, plot: str,
             log: Log) -> tuple[Outcome, dict[str, Any]]:
    """One experiment trained and timed now: its outcome and report."""
    log(f"{exp.title} [{sweep.scale.name} scale, {sweep.dataset}, {seeds} seeds]")
    start = time.perf_counter()
    outcome = exp.run(sweep, seeds, plot)
    measured = {"machine": machine(), "date": datetime.date.today().isoformat(),
                "wall_seconds": round(time.perf_counter() - start, 1), "train_threads": sweep.train_threads}
    return outcome, _report(exp, outcome, sweep, seeds, out, measured)


def _command(name: str, sweep: Sweep, seeds: int, out: Path) -> str:
    """The command that makes these runs again under the same conditions (device and jobs spelled out)."""
    parts = ["densenet experiment", name, f"--scale {sweep.scale.name}", f"--seeds {seeds}"]
    if sweep.dataset != sweep.scale.dataset:
        parts.append(f"--dataset {sweep.dataset}")
    parts += [f"--jobs {sweep.jobs}", f"--device {sweep.device}", f"--out {out}"]
    return " ".join(parts)


def machine() -> str:
    import torch

    from densenet.engine.hardware import cpu_model

    cpu = cpu_model()
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} CPUs{gpu}, torch {torch.__version__}"


def _report(exp: Experiment, outcome: Outcome, sweep: Sweep, seeds: int, out: Path,
            measured: dict[str, Any]) -> dict[str, Any]:
    trained = [r for r in outcome.records if "test_acc" in r]
    return {
        "name": exp.name, "title": exp.title, "short": exp.short, "question": exp.question, "setup": exp.setup,
        "scale": sweep.scale.name, "dataset": sweep.dataset, "seeds": seeds, "device": sweep.device,
        "jobs": sweep.jobs, "train_threads": measured["train_threads"],
        "conditions": conditions(sweep, outcome.records, measured["train_threads"]),
        "aggregation": outcome.aggregation, "command": _command(exp.name, sweep, seeds, out),
        "machine": measured["machine"], "date": measured["date"], "wall_seconds": measured["wall_seconds"],
        "train_seconds_total": round(sum(r["train_seconds"] for r in trained if not r["reused"]), 1),
        "runs": len(trained), "verdict": outcome.verdict, "reason": outcome.reason, "headline": outcome.headline,
        "rules": RULES[exp.name],
        "columns": outcome.columns, "rows": outcome.rows, "summary": outcome.summary, "records": outcome.records,
    }


DATASET_NAMES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar-10": "CIFAR-10", "cifar-100": "CIFAR-100"}


def conditions(sweep: Sweep, records: list[dict[str, Any]], train_threads: int | None) -> str:
    """What the runs and timings of one experiment were, as the records and the sweep say."""
    from densenet.data import get_spec

    trained = [r for r in records if "test_acc" in r]
    # Runs of the sweep's dataset carry no "dataset"; those that name theirs (transfer) do.
    datasets = list(dict.fromkeys(r.get("dataset", sweep.dataset) for r in trained)) or [sweep.dataset]
    sc, size = sweep.scale, get_spec(datasets[0]).image_size
    text = [" and ".join(DATASET_NAMES.get(d, d) for d in datasets) + f" at {size}x{size}."]
    timed = [r for r in records if "images_per_s" in r]
    if trained:
        sizes = sorted({(r["train_images"], r["epochs"]) for r in trained})
        sets = [f"{n:,}" + (" training images" if i == 0 else "") + f" for {e} epoch{'s' if e != 1 else ''}"
                for i, (n, e) in enumerate(sizes)]
        tested = f"the first {sc.test_images:,} test images" if sc.test_images else "the whole test set"
        each = f", {train_threads} PyTorch thread{'s' if train_threads != 1 else ''} each" if train_threads else ""
        trains = ", ".join(sets[:-1]) + " or " + sets[-1] if len(sets) > 1 else sets[0]
        text.append(f"{'Each run trains' if len(sizes) == 1 else 'Runs train'} on the first {trains}; "
                    f"batch {sc.batch_size}, SGD with Nesterov momentum 0.9, weight decay 5e-4 and a cosine learning "
                    "rate from 0.1, precision `auto` (bf16 autocast where the device has native bf16), eager (no "
                    f"torch.compile); scored on {tested}. The runs trained on {sweep.device}, {sweep.jobs} at a time "
                    f"(--jobs {sweep.jobs}){each}.")
    else:
        text.append("Nothing is trained.")
    if timed:
        precisions = list(dict.fromkeys(r["precision"] for r in timed))
        threads = "/".join(str(t) for t in sorted({r["threads"] for r in timed}))
        devices = "/".join(sorted({r["device"] for r in timed}))
        text.append(f"Timings are training steps (forward, loss, backward, SGD step) on random {size}x{size} inputs at "
                    f"batch {sc.bench_batch}: 2 warm-up steps, then {sc.bench_steps} timed steps whose median step "
                    f"time gives one repeat's images/s; in {' and '.join(precisions)}, eager, on {devices} with "
                    f"{threads} PyTorch threads (as recorded), one timing at a time"
                    + (" after all training." if trained else "."))
    return " ".join(text)


def _write(out: Path, report: dict[str, Any], outcome: Outcome) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = report["name"]
    write_json(out / f"{name}.json", report, indent=1, default=_plain)
    rows = [_csv_row(r) for r in outcome.records]
    arch = list(dict.fromkeys(k for r in outcome.records for k in r.get("args", {})))
    rest = sorted({k for r in rows for k in r} - {"model", "builder", *arch})
    keys = ["model", *(["builder"] if any("builder" in r for r in rows) else []), *arch, *rest]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / f"{name}.csv", text.getvalue().encode())


def _plain(value: Any) -> Any:
    """JSON for what the summaries hold besides plain data: intervals as their fields, anything else as text."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else str(value)


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: the network's label as ``model``, its builder arguments as columns (lists as 4-4-4)."""
    row = {"model": record["label"]}
    if "model" in record:
        row["builder"] = record["model"]  # the registry name the arguments override
    for k, v in record.get("args", {}).items():
        row[k] = "-".join(map(str, v)) if isinstance(v, list) else v
    for k, v in record.items():
        if k not in ("label", "model", "args", "run"):
            row[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
    return row


def write_readme(out: str | Path) -> Path:
    """Rebuild ``out/README.md`` from the ``<name>.json`` reports present in ``out`` (see :mod:`.readme`)."""
    return render_readme(out, list(EXPERIMENTS))

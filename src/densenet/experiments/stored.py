"""Re-rendering a report from the raw records an earlier run stored in ``OUT/NAME.json``.

Nothing is trained or timed: the stored records are checked against the runs and timings the
experiment would make now (same architectures, seeds, training-set sizes, epochs, precisions,
repeats, parameter and FLOP counts), then analyzed again. A report whose records do not match
is refused, so a re-rendered verdict always rests on measurements of what the report describes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from densenet.errors import ConfigError
from densenet.experiments.base import Plan
from densenet.experiments.sweep import Sweep, config_hash


def expected_records(sweep: Sweep, plan: Plan) -> list[dict[str, Any]]:
    """The identifying fields of the records ``plan`` produces, in order: runs first, then timings."""
    out = []
    for run in plan.runs:
        params, flops = sweep.cost(run.arch, run.dataset)
        out.append({"label": run.arch.label, "args": run.arch.kwargs, "seed": run.seed,
                    "train_images": run.train_images, "augment": run.augment,
                    "epochs": sweep.epochs(run), "params": params, "flops": flops})
        if run.dataset or run.init_from:  # the records of such runs say which data and which start
            out[-1] |= {"dataset": run.dataset or sweep.dataset,
                        "init_from": config_hash(sweep.config(run.init_from), sweep.root) if run.init_from else None}
    for bench in plan.benches:
        params, flops = sweep.cost(bench.arch)
        out.append({"label": bench.arch.label, "args": bench.arch.kwargs, "precision": bench.precision,
                    "repeat": bench.repeat, "params": params, "flops": flops})
    return out


def load_stored(path: Path, name: str, sweep: Sweep, seeds: int, plan: Plan) -> dict[str, Any]:
    """The report stored at ``path``, once its records are checked to be those ``plan`` would make.

    Raises:
        ConfigError: The file is missing or unreadable, was made at another scale, dataset, seed
            count or device, or its records differ from the experiment's current specs.
    """
    again = f"run `densenet experiment {name}` without --from-records to measure them"
    if not path.is_file():
        raise ConfigError(f"--from-records: {path} does not exist; {again}")
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--from-records: cannot read {path} ({exc}); {again}") from None
    records = report.get("records") if isinstance(report, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ConfigError(f"--from-records: {path} holds no list of records; {again}")
    # Not --jobs: how many runs trained at a time changes no record, and each report keeps its own.
    asked = {"scale": sweep.scale.name, "dataset": sweep.dataset, "seeds": seeds, "device": sweep.device}
    for key, want in asked.items():
        # Reports written before device was stored do not have it; the command line says.
        if key in report and report[key] != want:
            raise ConfigError(f"--from-records: {path} was measured with --{key} {report[key]}, not --{key} {want}; "
                              f"pass --{key} {report[key]} to re-render it")
    expected = expected_records(sweep, plan)
    where = f"{name} at --scale {sweep.scale.name} --seeds {seeds}"
    if len(records) != len(expected):
        raise ConfigError(f"--from-records: {path} holds {len(records)} records but {where} makes {len(expected)}; "
                          f"{again}")
    for i, (got, want) in enumerate(zip(records, expected)):
        differ = [k for k in want if _canon(got.get(k)) != _canon(want[k])]
        if differ:
            raise ConfigError(f"--from-records: record {i} of {path} ({got.get('label')}) does not match what {where} "
                              f"makes now (it differs in {', '.join(differ)}); {again}")
    return report


def stored_train_threads(report: dict[str, Any], jobs: int) -> int | None:
    """Threads per training run of a stored report: as stored, else the recorded machine's CPUs over ``jobs``.

    Reports written before ``train_threads`` was stored name the machine as ``..., N CPUs, ...``
    (see :func:`densenet.experiments.report.machine`); runs on the CPU split those among the jobs.
    """
    if "train_threads" in report:
        return report["train_threads"]
    found = re.search(r"(\d+) CPUs", report.get("machine", ""))
    return max(1, int(found.group(1)) // jobs) if found else None


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)

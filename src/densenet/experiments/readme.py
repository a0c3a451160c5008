"""The report's README: the verdict table, the method (statistics and rules), and one section per experiment.

:func:`verdict_table` also renders the table in the project's top-level README, and a test keeps
the two equal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from densenet.experiments.base import seeds_note
from densenet.rundir import atomic_write_bytes

METHOD = [
    "## Method",
    "",
    "The rules below are applied by code (`densenet.experiments.rules`: one function per experiment, each branch "
    "tested on hand-made figures) and are stated here, and in each section, before its reason. They were revised on "
    "2026-12-01 (issue #18), after the 2026-11-29 runs had been seen: those verdicts had used a band of two standard "
    "errors (about an 88% interval with 3 seeds) and an idea-b rule for networks faster than every constant one that "
    "was added after its timings were seen. The 5% arm of claim 4 was trained after these rules were written, and "
    "later runs are judged by them unchanged.",
    "",
    "- **Accuracy differences** are judged by a 95% Student-t interval over seeds. Every comparison sets two arms "
    "against each other that were trained with the same seed indices on the same number of training images, and a "
    "seed fixes a run's draw of training images, its batch order and its initialization stream; so run *s* of one "
    "arm pairs with run *s* of the other, and the interval is the paired t-interval of the per-seed differences "
    "(n - 1 = 2 degrees of freedom with 3 seeds: ± 4.30 standard errors of the mean difference). Where the seeds do "
    "not pair up, Welch's interval with the Welch-Satterthwaite degrees of freedom is used. A difference is beyond "
    "noise when its whole interval lies on one side of zero.",
    "- **Speed differences** are judged by Welch's 95% interval on log images/s over the timing repeats, read as a "
    "ratio: timing noise on a shared machine is multiplicative, and repeats of two networks are not paired. A "
    "network is faster only when the whole interval of the ratio lies above 1. (A rank test cannot decide here: with "
    "3 repeats against 3 the smallest two-sided Mann-Whitney p-value is 0.1.) Tables still show the median and "
    "min-max of the repeats.",
    "- **Cost ratios** at matched accuracy (claims 1 and 2) are read from mean accuracies and carry no interval; "
    "their limits are wide (0.5x against 0.75x, 0.6x against 0.8x) so that a ratio between them is inconclusive.",
    "",
    "The rule of each experiment:",
    "",
]


def verdict_table(reports: Sequence[dict[str, Any]]) -> list[str]:
    """The verdict table of the top-level README: short title, verdict and headline of each report."""
    scale = reports[0]["scale"] if reports else "cpu"
    lines = [f"| | verdict at {scale} scale | what the runs show |", "|---|---|---|"]
    return lines + [f"| {r.get('short') or r['title']} | {r['verdict']} | {r.get('headline', '')} |" for r in reports]


def section(report: dict[str, Any]) -> str:
    """The README section of one experiment."""
    cols = report["columns"]
    conditions = report.get("conditions") or report.get("scale_description", "")
    aggregation = report.get("aggregation") or f"Accuracies are {seeds_note(report['seeds'])}."
    lines = [f"## {report['title']}", "", f"**Question.** {report['question']}", "",
             f"**Setup.** {report['setup']}", "",
             f"**Conditions** (scale `{report['scale']}`). {conditions} {aggregation}", "",
             "| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(row[k]) for k, _ in cols) + " |" for row in report["rows"]]
    lines += ["", f"![{report['name']}]({report['name']}.png)", "", f"Verdict: {report['verdict']}", "",
              *([f"**Rule.** {report['rules'][0].upper() + report['rules'][1:]}", ""] if report.get("rules") else []),
              f"**Reason.** {report['reason'][0].upper() + report['reason'][1:]}", "",
              f"Command: `{report['command']}` ({report['runs']} training runs; raw results in "
              f"[{report['name']}.json]({report['name']}.json) and [{report['name']}.csv]({report['name']}.csv); "
              f"measured {report['date']} on {report['machine']}).", ""]
    return "\n".join(lines)


def load_reports(out: str | Path, names: Sequence[str]) -> list[dict[str, Any]]:
    """The ``<name>.json`` reports present in ``out``, in the order of ``names``."""
    return [json.loads((Path(out) / f"{n}.json").read_text()) for n in names if (Path(out) / f"{n}.json").is_file()]


def render_readme(out: str | Path, names: Sequence[str]) -> Path:
    """Rebuild ``out/README.md`` from the reports of ``names`` present in ``out``."""
    out = Path(out)
    reports = load_reports(out, names)
    lines = ["# Evidence: the seed's claims and ideas, tested", "",
             "Written by `densenet experiment`; every number below comes from the runs and timings of the command "
             "printed under its section. Verdicts are computed by the rules of the method section below, from 95% "
             "intervals over seeds (accuracy) and over timing repeats (speed); \"inconclusive at this scale\" means "
             "the differences are within those intervals or the measurements do not reach the claim.", "",
             "Each `NAME.json` keeps every raw run and timing record. To redraw this report (sections, tables, "
             "CSVs, figures, verdicts) from those records without training or timing anything, add "
             "`--from-records` to the command, e.g. "
             f"`{_rerender_example(reports)}`; it refuses when a file's records do not match what the "
             "experiment makes now.", "",
             "| experiment | verdict | what the runs show |", "|---|---|---|"]
    lines += [f"| [{r['title']}](#{_anchor(r['title'])}) | {r['verdict']} | {r.get('headline', '')} |" for r in reports]
    lines += ["", *METHOD, *(f"- **{r.get('short') or r['title']}**: {r.get('rules', '')}" for r in reports), ""]
    lines += [section(r) for r in reports]
    path = out / "README.md"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path


def _rerender_example(reports: list[dict[str, Any]]) -> str:
    """The re-render command for the whole folder, from the first report's own command."""
    if not reports:
        return "densenet experiment all --out OUT --from-records"
    words = reports[0]["command"].split()
    words[2] = "all"  # densenet experiment NAME ...
    return " ".join(words) + " --from-records"


def _anchor(title: str) -> str:
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return keep.replace(" ", "-")

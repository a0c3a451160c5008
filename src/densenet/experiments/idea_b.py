"""Idea b: doubling the growth rate after each transition, against constant growth, per FLOP and per second."""

from __future__ import annotations

import math
import statistics
from typing import Any

from densenet.experiments import base
from densenet.experiments.analysis import accuracy_at_cost, aggregate, seed_values, summarize_repeats
from densenet.experiments.base import COST_COLS, Outcome, Plan, densenet, fast_precision, standard_runs
from densenet.experiments.plots import series_plot
from densenet.experiments.rules import idea_b_verdict
from densenet.experiments.stats import Interval, by_seed, log_ratio, ratio_text
from densenet.experiments.sweep import BenchSpec, Sweep

CONSTANT = [densenet(k, (4, 4, 4)) for k in (8, 12, 16)]
DOUBLING = [densenet((k, 2 * k, 4 * k), (4, 4, 4)) for k in (6, 8, 10)]


def plan_idea_b(sweep: Sweep, seeds: int) -> Plan:
    precision = fast_precision(sweep)
    return Plan(standard_runs(sweep, CONSTANT + DOUBLING, seeds),
                tuple(BenchSpec(a, precision, i) for a in CONSTANT + DOUBLING for i in range(seeds)))


def at_equal_cost(values: dict[tuple, dict[int, float]], cost: dict[str, float]) -> dict[str, Interval]:
    """Each doubling network's accuracy minus constant growth's at its cost: a paired interval over seeds.

    For each seed, constant growth's accuracy is read log-linearly between its sizes at the doubling
    network's cost; a network outside the constant family's cost range is left out (no extrapolation).
    ``values`` maps ``(label,)`` to ``{seed: test accuracy}``.
    """
    out = {}
    for a in DOUBLING:
        mine = values[(a.label,)]
        ref = {s: accuracy_at_cost([(cost[c.label], values[(c.label,)][s]) for c in CONSTANT], cost[a.label])
               for s in mine if all(s in values[(c.label,)] for c in CONSTANT)}
        if ref and None not in ref.values():
            out[a.label] = by_seed(mine, ref)
    return out


def beyond_speed_range(values: dict[tuple, dict[int, float]], repeats: dict[str, list[float]],
                       compared: dict[str, Interval]) -> dict[str, dict[str, Any]]:
    """Doubling networks outside the constant family's median speeds, set against its nearest end.

    Each gets ``ref`` (the fastest or slowest constant network), ``speed`` (Welch interval of the log
    images/s ratio over timing repeats), ``acc`` (paired accuracy interval) and ``kind``: "dominates"
    when it is faster beyond the speed interval and more accurate beyond the accuracy interval,
    "dominated" when slower and less accurate beyond both, else None (not compared).
    """
    median = {lab: statistics.median(v) for lab, v in repeats.items()}
    fastest = max(CONSTANT, key=lambda a: median[a.label]).label
    slowest = min(CONSTANT, key=lambda a: median[a.label]).label
    out = {}
    for a in DOUBLING:
        if a.label in compared:
            continue
        ref = fastest if median[a.label] > median[fastest] else slowest
        speed, acc = log_ratio(repeats[a.label], repeats[ref]), by_seed(values[(a.label,)], values[(ref,)])
        kind = ("dominates" if ref == fastest and speed.above and acc.above else
                "dominated" if ref == slowest and speed.below and acc.below else None)
        out[a.label] = {"ref": ref, "speed": speed, "acc": acc, "kind": kind}
    return out


def analyze_idea_b(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    trained = [r for r in records if "test_acc" in r]
    timings = [r for r in records if "images_per_s" in r]
    rows = {r["label"]: r for r in aggregate(trained, ["label"])}
    speed = {r["label"]: r for r in summarize_repeats(timings, ["label"])}
    reps = {lab: [r["images_per_s"] for r in timings if r["label"] == lab] for lab in speed}
    values = seed_values(trained, "test_acc", ["label"])
    precision, repeats = fast_precision(sweep), speed[CONSTANT[0].label]["n"]
    at_flops = at_equal_cost(values, {lab: r["flops"] for lab, r in rows.items()})
    # Measured cost per image: seconds per training image, from the median of the timing repeats.
    at_time = at_equal_cost(values, {lab: 1 / t["images_per_s_median"] for lab, t in speed.items()})
    outside = beyond_speed_range(values, reps, at_time)
    cols = [*COST_COLS, ("ips", f"train images/s, {precision}: {base.repeats_note(repeats)}"),
            ("flops_vs", "vs constant growth at equal FLOPs, pp (± 95% interval)"),
            ("time_vs", "vs constant growth at equal measured speed, pp (± 95% interval)")]
    cells = [{**base.cost_cells(rows[a.label]), "ips": base.med(speed[a.label], "images_per_s"),
              "flops_vs": _versus(at_flops, a.label, "not compared: outside the constant networks' FLOPs"),
              "time_vs": _versus(at_time, a.label, _speed_cell(outside.get(a.label)))} for a in CONSTANT + DOUBLING]
    _idea_b_plot(plot, rows, speed, seeds, precision, repeats)
    # At equal speed, a network beyond the constant family's speeds counts when it beats or loses outright.
    timed = {**at_time, **{lab: o["acc"] for lab, o in outside.items() if o["kind"]}}
    verdict = idea_b_verdict(at_flops, timed)
    reason = _idea_b_reason(rows, speed, at_flops, at_time, outside, precision, repeats)
    headline = (f"doubling minus constant growth at equal FLOPs: {_listed(at_flops, short=True)}; at equal measured "
                f"speed: {_listed(timed, short=True)}" + "".join(
                    f"; {_short(lab)}, outside the constant speeds, runs at {ratio_text(o['speed'])} the speed of "
                    f"{_short(o['ref'])} (geometric means)" + ("" if o["kind"] else ": not compared")
                    for lab, o in outside.items()))
    return Outcome(cols, cells, verdict, reason, records,
                   {"rows": list(rows.values()), "timings": list(speed.values()),
                    "at_equal_flops": at_flops, "at_equal_speed": at_time, "beyond_speed_range": outside,
                    "params_at_equal_flops": _params_at_equal_flops(rows)},
                   f"Accuracies are {base.seeds_note(seeds)}; throughput is the {base.repeats_note(repeats)} "
                   "(timings on a shared machine are noisy, so one fast or slow repeat does not move the figure); "
                   "± beside a difference at equal cost is its 95% paired t-interval over seeds.", headline)


def _versus(found: dict[str, Interval], label: str, outside: str) -> str:
    if label in found:
        return base.ci(found[label])
    return "reference" if label in {a.label for a in CONSTANT} else outside


def _speed_cell(o: dict[str, Any] | None) -> str:
    if o is None:
        return ""
    cell = f"{ratio_text(o['speed'])} the speed of {o['ref']}, {base.ci(o['acc'])} against it"
    return cell + (f": {o['kind']} it" if o["kind"] else ": not compared (speed or accuracy within noise)")


def _listed(found: dict[str, Interval], short: bool = False) -> str:
    return "; ".join(f"{_short(lab) if short else lab} {base.ci(iv)} pp" for lab, iv in found.items()) or "none"


def _short(label: str) -> str:
    """``DenseNet-BC k=6-12-24, 4-4-4`` -> ``k=6-12-24`` (every network of idea b has 4-4-4 layers)."""
    return label.split(" ")[1].rstrip(",")


def _idea_b_plot(plot: str, rows: dict[str, Any], speed: dict[str, Any], seeds: int, precision: str,
                 repeats: int) -> None:
    """Accuracy against FLOPs and against measured speed, one series per growth family."""
    fam = (("constant growth", CONSTANT), ("doubling per stage", DOUBLING))
    by_speed = [(lab, sorted(archs, key=lambda a: speed[a.label]["images_per_s_median"])) for lab, archs in fam]
    series_plot(plot, [
        {"xlabel": "forward FLOPs (log scale)", "ylabel": f"test accuracy % ({base.seeds_note(seeds)})", "logx": True,
         "series": [{"label": lab, "x": [rows[a.label]["flops"] for a in archs],
                     "y": [100 * rows[a.label]["test_acc_mean"] for a in archs],
                     "yerr": [100 * rows[a.label]["test_acc_std"] for a in archs]} for lab, archs in fam]},
        {"xlabel": f"training images/s ({precision}, log scale)\n{base.repeats_note(repeats)}",
         "ylabel": f"test accuracy % ({base.seeds_note(seeds)})", "logx": True,
         "series": [{"label": lab, "x": [speed[a.label]["images_per_s_median"] for a in archs],
                     "xerr": [[speed[a.label]["images_per_s_median"] - speed[a.label]["images_per_s_min"]
                               for a in archs],
                              [speed[a.label]["images_per_s_max"] - speed[a.label]["images_per_s_median"]
                               for a in archs]],
                     "y": [100 * rows[a.label]["test_acc_mean"] for a in archs],
                     "yerr": [100 * rows[a.label]["test_acc_std"] for a in archs]} for lab, archs in by_speed]},
    ], "Idea b: growth rate doubling after each transition")


def _params_at_equal_flops(rows: dict[str, Any]) -> list[tuple[str, float, int, float]]:
    """(label, FLOPs, its params, constant growth's params at those FLOPs, log-log) for doubling networks."""
    const = [(rows[a.label]["flops"], math.log(rows[a.label]["params"])) for a in CONSTANT]
    out = []
    for a in DOUBLING:
        r = rows[a.label]
        ref = accuracy_at_cost(const, r["flops"])
        if ref is not None:
            out.append((a.label, r["flops"], r["params"], math.exp(ref)))
    return out


def _idea_b_reason(rows: dict[str, Any], speed: dict[str, Any], at_flops: dict[str, Interval],
                   at_time: dict[str, Interval], outside: dict[str, dict[str, Any]], precision: str,
                   repeats: int) -> str:
    text = (f"at equal forward FLOPs (constant growth read log-linearly between its sizes, seed by seed), doubling "
            f"minus constant growth: {_listed(at_flops)}. At equal measured training speed ({precision} images/s, "
            f"the median of {repeats} timing repeats, read the same way): {_listed(at_time)}.")
    for lab, o in outside.items():
        r = speed[o["ref"]]
        text += (f" {lab} ({speed[lab]['images_per_s_median']:.0f} images/s) lies outside the constant networks' "
                 f"median speeds, so no constant network runs at its speed; against the nearest, {o['ref']} (median "
                 f"{r['images_per_s_median']:.0f}, repeats {r['images_per_s_min']:.0f} to {r['images_per_s_max']:.0f}"
                 f"), its speed is {ratio_text(o['speed'])} (Welch interval on log images/s over the repeats) and "
                 f"its accuracy {base.ci(o['acc'])} pp: "
                 + (f"it {o['kind']} it, so it counts at equal speed." if o["kind"] else
                    "the speed or the accuracy difference is within its interval, so it is not compared."))
    params = _params_at_equal_flops(rows)
    if params and all(p > q for _, _, p, q in params):
        text += (" At equal FLOPs the doubling networks carry more parameters than constant growth: "
                 + "; ".join(f"{base.kilo(p)} against {base.kilo(q)} at {base.mega(fl)} FLOPs"
                             for _, fl, p, q in params)
                 + " (constant growth read log-log between its sizes).")
    return text + (" The idea holds if every doubling network compared is more accurate than constant growth beyond "
                   "the 95% interval both at equal FLOPs and at equal measured speed (a network outside the constant "
                   "family's speeds counts only when it is faster than the fastest beyond the speed interval and "
                   "more accurate beyond the accuracy interval), with at least one network compared each way; it "
                   "fails if every doubling network compared is less accurate beyond it at equal FLOPs or at equal "
                   "speed.")

"""Aggregation the tables and verdicts rest on: means over seeds, medians over timing repeats, matched costs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(records: Iterable[dict[str, Any]], by: Sequence[str],
              metrics: Sequence[str] = ("test_acc", "train_acc", "gap")) -> list[dict[str, Any]]:
    """Group records by the ``by`` fields (in first-seen order); mean and std of each metric.

    Each row keeps the ``by`` fields, ``family``, ``params`` and ``flops`` of its group, ``n`` (the
    number of seeds), ``<metric>_mean`` and ``<metric>_std``.
    """
    rows = []
    for row, members in _groups(records, by, ("family", "params", "flops")):
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_std"] = mean_std([r[m] for r in members])
        rows.append(row)
    return rows


def summarize_repeats(records: Iterable[dict[str, Any]], by: Sequence[str],
                      metrics: Sequence[str] = ("images_per_s",)) -> list[dict[str, Any]]:
    """Group timing records by the ``by`` fields (first-seen order); median, min and max of each metric.

    Timings on a shared machine are noisy and one slow or fast repeat can move a mean far, so
    repeats are summarised by their median, with the min-max range beside it. Each row keeps the
    ``by`` fields, ``family``, ``params``, ``flops`` and ``threads`` of its group, ``n`` (the number of
    repeats), ``<metric>_median``, ``<metric>_min`` and ``<metric>_max``.
    """
    rows = []
    for row, members in _groups(records, by, ("family", "params", "flops", "threads")):
        for m in metrics:
            values = [r[m] for r in members]
            row[f"{m}_median"], row[f"{m}_min"], row[f"{m}_max"] = statistics.median(values), min(values), max(values)
        rows.append(row)
    return rows


def _groups(records: Iterable[dict[str, Any]], by: Sequence[str],
            keep: Sequence[str]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Records grouped by the ``by`` fields, in first-seen order: (row, members) per group.

    The row starts with the ``by`` fields, those of ``keep`` the first member has, and ``n``.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(tuple(_hashable(r[k]) for k in by), []).append(r)
    out = []
    for members in groups.values():
        first = members[0]
        row = {k: first[k] for k in by} | {k: first[k] for k in keep if k in first}
        row["n"] = len(members)
        out.append((row, members))
    return out


def _hashable(value: Any) -> Any:
    return json_key(value) if isinstance(value, (list, dict)) else value


def json_key(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def seed_values(records: Iterable[dict[str, Any]], metric: str,
                by: Sequence[str]) -> dict[tuple, dict[int, float]]:
    """``metric`` of each record keyed by its ``by`` fields, then by seed: what the paired intervals take."""
    out: dict[tuple, dict[int, float]] = {}
    for r in records:
        out.setdefault(tuple(_hashable(r[k]) for k in by), {})[r["seed"]] = r[metric]
    return out


def frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, accuracy) points no cheaper point beats: sorted by cost, accuracy strictly rising."""
    out: list[tuple[float, float]] = []
    for cost, acc in sorted(points):
        if not out or acc > out[-1][1]:
            out.append((cost, acc))
    return out


def cost_at_accuracy(points: Sequence[tuple[float, float]], target: float) -> float | None:
    """The cost a family needs to reach ``target`` accuracy: log-linear between frontier points.

    None when the target lies outside the family's measured accuracy range (no extrapolation).
    """
    front = frontier(points)
    if not front or target < front[0][1] or target > front[-1][1]:
        return None
    costs, accs = zip(*front)  # accuracies strictly rising along the frontier
    return float(np.exp(np.interp(target, accs, np.log(costs))))


def accuracy_at_cost(points: Sequence[tuple[float, float]], cost: float) -> float | None:
    """A family's accuracy at ``cost``, linear in log(cost) between its points sorted by cost.

    None outside the family's measured cost range.
    """
    pts = sorted(points)
    if not pts or cost < pts[0][0] or cost > pts[-1][0]:
        return None
    costs, accs = zip(*pts)
    return float(np.interp(math.log(cost), np.log(costs), accs))


def matched_ratios(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]],
                   levels: int = 3) -> list[dict[str, float]]:
    """Cost of family ``a`` over family ``b`` at accuracies both reach.

    The accuracies are ``levels`` evenly spaced points across the overlap of the two families'
    frontier ranges (an empty list when they do not overlap).
    """
    fa, fb = frontier(a), frontier(b)
    if not fa or not fb:
        return []
    lo, hi = max(fa[0][1], fb[0][1]), min(fa[-1][1], fb[-1][1])
    if lo > hi:
        return []
    targets = [lo] if levels == 1 or hi == lo else [lo + (hi - lo) * i / (levels - 1) for i in range(levels)]
    out = []
    for t in targets:
        ca, cb = cost_at_accuracy(a, t), cost_at_accuracy(b, t)
        if ca is not None and cb is not None:
            out.append({"accuracy": t, "cost_a": ca, "cost_b": cb, "ratio": ca / cb})
    return out


def first_reaching(values: Sequence[float], costs: Sequence[float], target: float) -> tuple[int, float] | None:
    """(1-based position, cost there) of the first value at or above ``target``; None if none reaches it.

    E.g. per-epoch test accuracies with cumulative training seconds: the epoch and the seconds a run
    took to reach an accuracy.
    """
    for i, (value, cost) in enumerate(zip(values, costs)):
        if value >= target:
            return i + 1, cost
    return None

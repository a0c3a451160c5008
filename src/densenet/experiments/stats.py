"""95% intervals for the differences the verdicts rest on: paired or Welch t over seeds, and log-speed ratios.

Every accuracy comparison of the experiments sets two arms against each other that were trained
with the same seed indices on the same number of training images. A seed fixes the run's draw of
training images, its batch order and its initialization stream, so run ``s`` of one arm and run
``s`` of the other share their data: the per-seed differences are independent draws, and the
paired t-interval (``n - 1`` degrees of freedom) is the textbook interval. Where the seeds do not
pair up, Welch's interval with the Welch-Satterthwaite degrees of freedom is used instead.

Timings are repeats of the same measurement, with nothing to pair them: a speed difference is
Welch's interval on log images/s, read as a ratio (timing noise is multiplicative).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def t975(df: float) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (``df`` need not be whole).

    Solved by bisection on the t distribution function, itself Simpson's rule over the density
    (no scipy needed): 2.776 for df = 4, 4.303 for df = 2, tending to the normal 1.960.

    Raises:
        ValueError: ``df`` is below 1, where the interval is not defined here.
    """
    if df < 1:
        raise ValueError(f"a t-interval needs at least 1 degree of freedom, got {df}")
    lo, hi = 0.0, 13.0  # the quantile is 12.706 at df = 1 and falls as df grows
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_mass(mid, df) < 0.475 else (lo, mid)
    return (lo + hi) / 2


def _t_mass(x: float, df: float, steps: int = 2000) -> float:
    """The probability that a t variable with ``df`` degrees of freedom lies in [0, x] (Simpson's rule)."""
    grid = np.linspace(0.0, x, steps + 1)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    y = np.exp(log_c - (df + 1) / 2 * np.log1p(grid**2 / df))
    return float(x / steps / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum()))


@dataclass(frozen=True)
class Interval:
    """A difference of means with its 95% half-width: ``diff ± half``, ``df`` degrees of freedom."""

    diff: float
    half: float  # inf when there are too few values to estimate the noise
    df: float
    method: str  # "paired t", "Welch t"

    @property
    def above(self) -> bool:
        """The whole interval lies above zero: a positive difference beyond noise."""
        return self.diff - self.half > 0

    @property
    def below(self) -> bool:
        """The whole interval lies below zero: a negative difference beyond noise."""
        return self.diff + self.half < 0


def paired(a: Sequence[float], b: Sequence[float]) -> Interval:
    """The paired t-interval of ``mean(a - b)``: ``a[i]`` and ``b[i]`` come from the same seed."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    mean = statistics.fmean(d)
    if len(d) < 2:
        return Interval(mean, math.inf, 0.0, "paired t")
    return Interval(mean, t975(len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d)), len(d) - 1, "paired t")


def welch(a: Sequence[float], b: Sequence[float]) -> Interval:
    """Welch's t-interval of ``mean(a) - mean(b)`` for independent samples (Welch-Satterthwaite df)."""
    diff = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return Interval(diff, math.inf, 0.0, "Welch t")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return Interval(diff, 0.0, len(a) + len(b) - 2, "Welch t")
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return Interval(diff, t975(df) * math.sqrt(va + vb), df, "Welch t")


def by_seed(a: dict[int, float], b: dict[int, float]) -> Interval:
    """``a`` minus ``b`` (values keyed by seed): paired when both hold the same seeds, else Welch."""
    if set(a) == set(b):
        seeds = sorted(a)
        return paired([a[s] for s in seeds], [b[s] for s in seeds])
    return welch(list(a.values()), list(b.values()))


def log_ratio(a: Sequence[float], b: Sequence[float]) -> Interval:
    """Welch's interval of ``mean(log a) - mean(log b)``: ``exp`` of it is the speed ratio a/b and its bounds."""
    return welch([math.log(x) for x in a], [math.log(x) for x in b])


def ratio_text(iv: Interval) -> str:
    """A log-ratio interval as ``1.23x (95% 1.01x to 1.50x)``."""
    lo, hi = iv.diff - iv.half, iv.diff + iv.half
    return f"{math.exp(iv.diff):.2f}x (95% {_exp(lo):.2f}x to {_exp(hi):.2f}x)"


def _exp(x: float) -> float:
    return math.exp(x) if x < 700 else math.inf

"""What an experiment is, what it returns, and the networks the experiments share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from densenet.experiments.rules import VERDICTS
from densenet.experiments.stats import Interval
from densenet.experiments.sweep import Arch, BenchSpec, RunSpec, Sweep

DENSENET_BASE = "densenet_bc100_k12"  # cifar stem, bottleneck + compression 0.5; arguments override it
RESNET_BASE = "resnet20"  # cifar stem, basic blocks, zero-padding shortcuts


def densenet(k: int | Sequence[int], blocks: Sequence[int], bottleneck: bool = True) -> Arch:
    """A three-block CIFAR-style DenseNet with compression 0.5 and 2k initial features."""
    ks = [k] * len(blocks) if isinstance(k, int) else list(k)
    growth = f"k={ks[0]}" if len(set(ks)) == 1 else "k=" + "-".join(map(str, ks))
    label = f"DenseNet{'-BC' if bottleneck else '-C'} {growth}, " + "-".join(map(str, blocks))
    return Arch.make(label, "densenet", DENSENET_BASE, growth_rate=k if isinstance(k, int) else list(k),
                     block_config=list(blocks), num_init_features=2 * ks[0], bn_size=4 if bottleneck else None)


def resnet(layers: Sequence[int], width: int) -> Arch:
    """A CIFAR-style ResNet with basic blocks and widths (w, 2w, 4w)."""
    return Arch.make(f"ResNet {'-'.join(map(str, layers))}, w={width}", "resnet", RESNET_BASE,
                     layers=list(layers), widths=[width, 2 * width, 4 * width])


# The two families of claims 1 and 2, smallest first.
DENSENET_FAMILY = (densenet(8, (2, 2, 2)), densenet(12, (4, 4, 4)), densenet(16, (4, 4, 4)),
                   densenet(12, (8, 8, 8)))
RESNET_FAMILY = (resnet((1, 1, 1), 8), resnet((1, 1, 1), 16), resnet((2, 2, 2), 12), resnet((3, 3, 3), 16),
                 resnet((3, 3, 3), 24))
# The pair of claims 3 and 4: about 100k parameters each.
DENSENET_PAIR = densenet(12, (4, 4, 4))
RESNET_PAIR = resnet((2, 2, 2), 12)


@dataclass(frozen=True)
class Plan:
    """What an experiment measures: training runs, then timings (records come back in this order)."""

    runs: tuple[RunSpec, ...] = ()
    benches: tuple[BenchSpec, ...] = ()


@dataclass
class Outcome:
    """What an experiment found: a table, a verdict with its reason, and the data behind them."""

    columns: list[tuple[str, str]]  # (row key, header)
    rows: list[dict[str, Any]]  # formatted cells
    verdict: str  # one of VERDICTS
    reason: str
    records: list[dict[str, Any]] = field(default_factory=list)  # one per run or timing
    summary: dict[str, Any] = field(default_factory=dict)  # the figures the verdict rests on
    aggregation: str = ""  # how the table and figure summarise seeds or repeats, in one sentence
    headline: str = ""  # what the runs show, in one line, for the verdict tables

    def __post_init__(self) -> None:
        assert self.verdict in VERDICTS, self.verdict


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    question: str
    setup: str  # what runs, independent of scale; the conditions of the scale are added by the report
    plan: Callable[[Sweep, int], Plan]  # (sweep, seeds) -> the runs and timings it needs
    analyze: Callable[[Sweep, int, list[dict[str, Any]], str], Outcome]  # (sweep, seeds, records, plot) -> outcome
    short: str = ""  # the title in a few words, for the verdict tables

    def run(self, sweep: Sweep, seeds: int, plot: str) -> Outcome:
        """Train and time what the plan needs (reusing what exists), then analyze the records."""
        plan = self.plan(sweep, seeds)
        trained = sweep.train(list(plan.runs)) if plan.runs else []
        timed = sweep.bench(list(plan.benches)) if plan.benches else []
        return self.analyze(sweep, seeds, trained + timed, plot)


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def pm(mean: float, std: float, scale: float = 100.0, digits: int = 2) -> str:
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def seeds_note(seeds: int) -> str:
    """How accuracies are summarised, for axis labels and table notes."""
    return f"mean ± std over {seeds} seed{'s' if seeds != 1 else ''}"


def repeats_note(n: int) -> str:
    """How timings are summarised, for axis labels and table notes."""
    return f"median (min–max) of {n} timing repeat{'s' if n != 1 else ''}"


def med(row: dict[str, Any], metric: str, digits: int = 0) -> str:
    """``median (min–max)`` of a row from :func:`~densenet.experiments.analysis.summarize_repeats`."""
    return (f"{row[metric + '_median']:.{digits}f} ({row[metric + '_min']:.{digits}f}–"
            f"{row[metric + '_max']:.{digits}f})")


def ci(iv: Interval, scale: float = 100.0, digits: int = 2) -> str:
    """A difference with its 95% half-width, ``+1.23 ± 0.45`` (in percentage points by default)."""
    return f"{scale * iv.diff:+.{digits}f} ± {scale * iv.half:.{digits}f}"


def kilo(n: float) -> str:
    return f"{n / 1e3:,.0f}k" if n >= 1e4 else f"{n / 1e3:,.1f}k"


def mega(n: float) -> str:
    return f"{n / 1e6:,.1f}M"


def standard_runs(sweep: Sweep, archs: list[Any], seeds: int) -> tuple[RunSpec, ...]:
    """Every seed of each network on the scale's standard training set."""
    n = sweep.scale.train_size(sweep.dataset)
    return tuple(RunSpec(a, s, n) for a in archs for s in range(seeds))


def fast_precision(sweep: Sweep) -> str:
    """The fast path's precision on the sweep's device: fp16 on CUDA, bf16 on the CPU."""
    return "fp16" if sweep.device.startswith("cuda") else "bf16"


def cost_cells(r: dict[str, Any]) -> dict[str, Any]:
    """The cells of :data:`COST_COLS` for one aggregated row."""
    return {"label": r["label"], "params": kilo(r["params"]), "flops": mega(r["flops"]),
            "test": pm(r["test_acc_mean"], r["test_acc_std"])}


COST_COLS = [("label", "model"), ("params", "params"), ("flops", "forward FLOPs"), ("test", "test acc %")]

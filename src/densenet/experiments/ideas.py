"""The seed's four ideas for improving DenseNet, each as an experiment."""

from __future__ import annotations

from typing import Any

from densenet.experiments.analysis import aggregate, seed_values, summarize_repeats
from densenet.experiments.base import (
    COST_COLS,
    Experiment,
    Outcome,
    Plan,
    ci,
    cost_cells,
    densenet,
    fast_precision,
    kilo,
    med,
    mega,
    pm,
    repeats_note,
    seeds_note,
    standard_runs,
)
from densenet.experiments.idea_b import analyze_idea_b, plan_idea_b
from densenet.experiments.plots import series_plot
from densenet.experiments.rules import IDEA_D_LIMITS, idea_a_verdict, idea_c_verdict, idea_d_verdict
from densenet.experiments.stats import by_seed, log_ratio, ratio_text
from densenet.experiments.sweep import BenchSpec, Sweep

# Shallow to the paper's depth: the last pair is DenseNet-BC (L=100, k=12) and its -C twin.
BOTTLENECK_PAIRS = [(12, (4, 4, 4)), (8, (8, 8, 8)), (12, (16, 16, 16))]
SHAPES = [densenet(6, (12, 12, 12)), densenet(8, (8, 8, 8)), densenet(13, (4, 4, 4)), densenet(20, (2, 2, 2))]
WIDTHS = [densenet(k, (4, 4, 4)) for k in (4, 8, 12, 24, 48)]
NARROW_K = 12  # the paper's growth rate, compared against the widest


def _bottleneck_archs() -> list[Any]:
    return [densenet(k, b, bottleneck=bn) for k, b in BOTTLENECK_PAIRS for bn in (True, False)]


def plan_idea_a(sweep: Sweep, seeds: int) -> Plan:
    return Plan(standard_runs(sweep, _bottleneck_archs(), seeds))


def analyze_idea_a(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    rows = {r["label"]: r for r in aggregate(records, ["label"])}
    values = seed_values(records, "test_acc", ["label"])
    cells, notes, short, depths = [], [], [], []
    for k, b in BOTTLENECK_PAIRS:
        bc, c = rows[densenet(k, b).label], rows[densenet(k, b, bottleneck=False).label]
        cells += [cost_cells(bc), cost_cells(c)]
        acc = by_seed(values[(bc["label"],)], values[(c["label"],)])
        depths.append((bc["params"] < c["params"] and bc["flops"] < c["flops"], acc))
        change = (f"parameters {bc['params'] / c['params'] - 1:+.0%}, FLOPs {bc['flops'] / c['flops'] - 1:+.0%} and "
                  f"test accuracy {ci(acc)} pp")
        notes.append(f"at {'-'.join(map(str, b))} layers per block with k={k} the bottleneck changes {change}")
        short.append(f"{'-'.join(map(str, b))}: {change}")
    _idea_a_plot(plot, rows, seeds)
    reason = ("; ".join(notes) + f" (95% {depths[0][1].method} intervals over seeds). The idea holds if the "
              "bottleneck cuts both parameters and FLOPs (without lowering accuracy beyond the interval) at every "
              "depth tried, and fails if it does so at none. "
              "A layer's bottleneck maps its input to 4k channels before the 3x3 conv, so it only saves when the "
              "layer's input has more than about 4k channels, which needs deep blocks.")
    return Outcome(COST_COLS, cells, idea_a_verdict(depths), reason, records, {"rows": list(rows.values())},
                   f"Accuracies are {seeds_note(seeds)}.", "the bottleneck changes, by layers per block, "
                   + "; ".join(short))


def _idea_a_plot(plot: str, rows: dict[str, Any], seeds: int) -> None:
    variants = [("with the bottleneck (-BC)", True), ("without it (-C)", False)]
    axis = {"params": "parameters", "flops": "forward FLOPs"}
    series_plot(plot, [{"xlabel": f"{axis[key]} (log scale)", "ylabel": f"test accuracy % ({seeds_note(seeds)})",
                        "logx": True,
                        "series": [{"label": name,
                                    "x": [rows[densenet(k, b, bottleneck=bn).label][key] for k, b in BOTTLENECK_PAIRS],
                                    "y": [100 * rows[densenet(k, b, bottleneck=bn).label]["test_acc_mean"]
                                          for k, b in BOTTLENECK_PAIRS],
                                    "yerr": [100 * rows[densenet(k, b, bottleneck=bn).label]["test_acc_std"]
                                             for k, b in BOTTLENECK_PAIRS]} for name, bn in variants]}
                       for key in ("params", "flops")],
                "Idea a: with (-BC) and without (-C) the 1x1 bottleneck, "
                + ", ".join("-".join(map(str, b)) for _, b in BOTTLENECK_PAIRS) + " layers per block")


def plan_idea_c(sweep: Sweep, seeds: int) -> Plan:
    return Plan(standard_runs(sweep, SHAPES, seeds))


def analyze_idea_c(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    rows = [r for a in SHAPES for r in aggregate(records, ["label"]) if r["label"] == a.label]
    cells = [cost_cells(r) for r in rows]
    depth = [sum(a.kwargs["block_config"]) for a in SHAPES]
    series_plot(plot, [{"xlabel": "dense layers in all blocks (log scale)",
                        "ylabel": f"test accuracy % ({seeds_note(seeds)})",
                        "logx": True, "series": [{"label": "DenseNet-BC at about 120k parameters", "x": depth,
                                                  "y": [100 * r["test_acc_mean"] for r in rows],
                                                  "yerr": [100 * r["test_acc_std"] for r in rows]}]}],
                "Idea c: deep and narrow against shallow and wide")
    acc = [r["test_acc_mean"] for r in rows]
    values = seed_values(records, "test_acc", ["label"])
    versus = {(i, j): by_seed(values[(rows[i]["label"],)], values[(rows[j]["label"],)])
              for i in range(len(rows)) for j in range(len(rows)) if i != j}
    best = max(range(len(rows)), key=acc.__getitem__)
    extremes = (0, len(rows) - 1)
    best_mid = max((i for i in range(len(rows)) if i not in extremes), key=acc.__getitem__)
    shown = "; ".join(f"{rows[best_mid]['label']} is {ci(versus[(best_mid, e)])} pp against {rows[e]['label']}"
                      for e in extremes)
    reason = (f"the most accurate shape is {rows[best]['label']} "
              f"({pm(rows[best]['test_acc_mean'], rows[best]['test_acc_std'])}%); {shown} (95% "
              f"{versus[(0, 1)].method} intervals over seeds). The idea holds if a balanced shape (neither extreme) "
              "beats both the deepest-narrowest and the shallowest-widest beyond the interval, and fails if an "
              "extreme beats every balanced one beyond it.")
    headline = (f"{len(rows)} shapes of ~120k parameters reach {100 * min(acc):.2f}% to {100 * max(acc):.2f}%; the "
                f"best balanced one, {rows[best_mid]['label'].removeprefix('DenseNet-BC ')}, is "
                + " and ".join(f"{ci(versus[(best_mid, e)])} pp" for e in extremes) + " against the two extremes")
    return Outcome(COST_COLS, cells, idea_c_verdict(acc, versus), reason, records, {"rows": rows},
                   f"Accuracies are {seeds_note(seeds)}.", headline)


def plan_idea_d(sweep: Sweep, seeds: int) -> Plan:
    fast = fast_precision(sweep)
    return Plan(benches=tuple(BenchSpec(a, p, i) for a in WIDTHS for p in ("fp32", fast) for i in range(seeds)))


def analyze_idea_d(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    fast = fast_precision(sweep)
    rows = summarize_repeats(records, ["label", "precision"], metrics=("images_per_s", "achieved_gflops"))
    by = {(r["label"], r["precision"]): r for r in rows}
    ks = [a.kwargs["growth_rate"] for a in WIDTHS]
    repeats = rows[0]["n"]
    cols = [("k", "growth rate k"), ("params", "params"), ("flops", "forward FLOPs"),
            ("fp32", "fp32 GFLOP/s"), ("fast", f"{fast} GFLOP/s"), ("ips", f"{fast} images/s")]
    cells = []
    for k, a in zip(ks, WIDTHS):
        p32, pf = by[(a.label, "fp32")], by[(a.label, fast)]
        cells.append({"k": k, "params": kilo(pf["params"]), "flops": mega(pf["flops"]),
                      "fp32": med(p32, "achieved_gflops", 1), "fast": med(pf, "achieved_gflops", 1),
                      "ips": med(pf, "images_per_s")})
    device = "/".join(sorted({r["device"] for r in records}))
    threads = "/".join(str(t) for t in sorted({r["threads"] for r in records}))
    series_plot(plot, [{"xlabel": "growth rate k (layer width, log scale)",
                        "ylabel": f"achieved GFLOP/s in training\n{repeats_note(repeats)}", "logx": True,
                        "series": [{"label": p, "x": ks,
                                    "y": [by[(a.label, p)]["achieved_gflops_median"] for a in WIDTHS],
                                    "yerr": [[by[(a.label, p)]["achieved_gflops_median"]
                                              - by[(a.label, p)]["achieved_gflops_min"] for a in WIDTHS],
                                             [by[(a.label, p)]["achieved_gflops_max"]
                                              - by[(a.label, p)]["achieved_gflops_median"] for a in WIDTHS]]}
                                   for p in ("fp32", fast)]}],
                f"Idea d: throughput per FLOP against width on {device} ({threads} threads)")
    narrow = next(a for a in WIDTHS if a.kwargs["growth_rate"] == NARROW_K)
    ratios = {p: by[(narrow.label, p)]["achieved_gflops_median"] / by[(WIDTHS[-1].label, p)]["achieved_gflops_median"]
              for p in ("fp32", fast)}
    gflops = {(r["label"], r["precision"]): [] for r in records}
    for r in records:
        gflops[(r["label"], r["precision"])].append(r["achieved_gflops"])
    spans = {p: log_ratio(gflops[(narrow.label, p)], gflops[(WIDTHS[-1].label, p)]) for p in ("fp32", fast)}
    reason = (f"on {device} with {threads} threads, layers of the paper's width k={NARROW_K} reach "
              f"{ratio_text(spans[fast])} the GFLOP/s of k={ks[-1]} in {fast} and {ratio_text(spans['fp32'])} in fp32 "
              f"(geometric means of {repeats} timing repeats, 95% Welch interval on log GFLOP/s; the ratios of the "
              f"medians are {ratios[fast]:.2f}x and {ratios['fp32']:.2f}x). The idea (narrow layers may be efficient "
              f"on a CPU) holds if the interval of the narrow layers' GFLOP/s on the fast path lies at or above "
              f"{IDEA_D_LIMITS[0]}x the wide layers', and fails if it lies at or below {IDEA_D_LIMITS[1]}x. GFLOP/s "
              "counts forward plus backward as three forward passes.")
    spread = f"Every figure is the {repeats_note(repeats)}: the spread is over repeated timings of the same network, "
    headline = (f"k={NARROW_K} layers reach {ratio_text(spans[fast])} the GFLOP/s of k={ks[-1]} layers in {fast} "
                f"({ratio_text(spans['fp32'])} in fp32), over {repeats} timing repeats")
    return Outcome(cols, cells, idea_d_verdict(spans[fast]), reason, records,
                   {"rows": rows, "ratios": ratios, "log_ratios": spans}, spread + "not over seeds.", headline)


IDEAS = [
    Experiment(
        "idea-a-bottleneck", "Idea a: the 1x1 bottleneck cuts parameters and compute",
        "Does the 1x1 bottleneck (DenseNet-B) cut parameters and FLOPs without costing accuracy?",
        "Three DenseNets with compression 0.5, each trained with (-BC) and without (-C) the 4k-channel 1x1 "
        "bottleneck: " + ", ".join(f"k={k} with {'-'.join(map(str, b))} layers per block" for k, b in BOTTLENECK_PAIRS)
        + " (the last is the paper's DenseNet-BC, L=100, k=12).",
        plan_idea_a, analyze_idea_a, short="Idea a: the 1x1 bottleneck saves"),
    Experiment(
        "idea-b-growth-doubling", "Idea b: doubling the growth rate after each downsampling",
        "Is a DenseNet whose growth rate doubles after each transition more accurate per FLOP, and per measured "
        "second, than one with a constant growth rate?",
        "Constant growth k = 8, 12, 16 against doubling k = 6-12-24, 8-16-32, 10-20-40, all DenseNet-BC with "
        "4 layers per block; training throughput timed on the fast path (bf16 on CPU, fp16 on CUDA) after all "
        "training.",
        plan_idea_b, analyze_idea_b, short="Idea b: double the growth rate per stage"),
    Experiment(
        "idea-c-depth-width", "Idea c: depth and width should be balanced",
        "At equal parameters, is a balanced DenseNet more accurate than a very deep-narrow or a very shallow-wide one?",
        "DenseNet-BC shapes of about 120k parameters: " + ", ".join(a.label for a in SHAPES) + ".",
        plan_idea_c, analyze_idea_c, short="Idea c: balance depth and width"),
    Experiment(
        "idea-d-width-throughput", "Idea d: narrow layers on CPU",
        "Are narrow layers (small growth rate) as efficient per FLOP as wide ones on a CPU?",
        "DenseNet-BC with 4 layers per block at growth rates " + ", ".join(str(a.kwargs['growth_rate']) for a in WIDTHS)
        + "; training steps timed in fp32 and on the fast path (bf16 on CPU, fp16 on CUDA), eager, and converted to "
        "achieved GFLOP/s. No training runs.",
        plan_idea_d, analyze_idea_d, short="Idea d: narrow layers suit CPUs"),
]

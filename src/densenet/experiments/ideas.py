"""The seed's four ideas for improving DenseNet, each as an experiment."""

from __future__ import annotations

import math
from typing import Any

from densenet.experiments.analysis import accuracy_at_cost, aggregate, mean_std, noise, summarize_repeats
from densenet.experiments.base import (
    Experiment,
    Outcome,
    Plan,
    densenet,
    kilo,
    med,
    mega,
    pm,
    repeats_note,
    seeds_note,
)
from densenet.experiments.plots import series_plot
from densenet.experiments.sweep import BenchSpec, RunSpec, Sweep

# Shallow to the paper's depth: the last pair is DenseNet-BC (L=100, k=12) and its -C twin.
BOTTLENECK_PAIRS = [(12, (4, 4, 4)), (8, (8, 8, 8)), (12, (16, 16, 16))]
CONSTANT = [densenet(k, (4, 4, 4)) for k in (8, 12, 16)]
DOUBLING = [densenet((k, 2 * k, 4 * k), (4, 4, 4)) for k in (6, 8, 10)]
SHAPES = [densenet(6, (12, 12, 12)), densenet(8, (8, 8, 8)), densenet(13, (4, 4, 4)), densenet(20, (2, 2, 2))]
WIDTHS = [densenet(k, (4, 4, 4)) for k in (4, 8, 12, 24, 48)]
NARROW_K = 12  # the paper's growth rate, compared against the widest


def _standard(sweep: Sweep, archs: list[Any], seeds: int) -> tuple[RunSpec, ...]:
    n = sweep.scale.train_size(sweep.dataset)
    return tuple(RunSpec(a, s, n) for a in archs for s in range(seeds))


def _bottleneck_archs() -> list[Any]:
    return [densenet(k, b, bottleneck=bn) for k, b in BOTTLENECK_PAIRS for bn in (True, False)]


def plan_idea_a(sweep: Sweep, seeds: int) -> Plan:
    return Plan(_standard(sweep, _bottleneck_archs(), seeds))


def _cost_cells(r: dict[str, Any]) -> dict[str, Any]:
    return {"label": r["label"], "params": kilo(r["params"]), "flops": mega(r["flops"]),
            "test": pm(r["test_acc_mean"], r["test_acc_std"])}


COST_COLS = [("label", "model"), ("params", "params"), ("flops", "forward FLOPs"), ("test", "test acc %")]


def analyze_idea_a(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    rows = {r["label"]: r for r in aggregate(records, ["label"])}
    cells, notes, good, bad = [], [], 0, 0
    for k, b in BOTTLENECK_PAIRS:
        bc, c = rows[densenet(k, b).label], rows[densenet(k, b, bottleneck=False).label]
        cells += [_cost_cells(bc), _cost_cells(c)]
        band = noise(bc["test_acc_std"], c["test_acc_std"], bc["n"])
        dacc = bc["test_acc_mean"] - c["test_acc_mean"]
        cuts = bc["params"] < c["params"] and bc["flops"] < c["flops"]
        good += cuts and dacc >= -band
        bad += (not cuts) or dacc < -band
        notes.append(f"at {'-'.join(map(str, b))} layers per block with k={k} the bottleneck changes parameters "
                     f"{bc['params'] / c['params'] - 1:+.0%}, FLOPs {bc['flops'] / c['flops'] - 1:+.0%} and test "
                     f"accuracy {100 * dacc:+.2f} pp (noise band ±{100 * band:.2f})")
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
    depths = len(BOTTLENECK_PAIRS)
    verdict = "supported" if good == depths else "not supported" if bad == depths else "inconclusive at this scale"
    reason = ("; ".join(notes) + ". The idea holds if the bottleneck cuts both parameters and FLOPs (without "
              "lowering accuracy beyond the noise band, where trained) at every depth tried, and fails if it does "
              "so at none. "
              "A layer's bottleneck maps its input to 4k channels before the 3x3 conv, so it only saves when the "
              "layer's input has more than about 4k channels, which needs deep blocks.")
    return Outcome(COST_COLS, cells, verdict, reason, records, {"rows": list(rows.values())},
                   f"Accuracies are {seeds_note(seeds)}.")


def plan_idea_b(sweep: Sweep, seeds: int) -> Plan:
    precision = _fast_precision(sweep)
    return Plan(_standard(sweep, CONSTANT + DOUBLING, seeds),
                tuple(BenchSpec(a, precision, i) for a in CONSTANT + DOUBLING for i in range(seeds)))


def _at_equal_cost(rows: dict[str, Any], cost: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Each doubling network's accuracy minus constant growth's at its cost, with the noise band.

    Constant growth is read log-linearly between its sizes; a doubling network outside the constant
    family's cost range is left out (no extrapolation).
    """
    const = [(cost[a.label], rows[a.label]["test_acc_mean"]) for a in CONSTANT]
    const_std = mean_std([rows[a.label]["test_acc_std"] for a in CONSTANT])[0]
    out = {}
    for a in DOUBLING:
        r, ref = rows[a.label], accuracy_at_cost(const, cost[a.label])
        if ref is not None:
            out[a.label] = (r["test_acc_mean"] - ref, noise(r["test_acc_std"], const_std, r["n"]))
    return out


def _beyond_speed_range(rows: dict[str, Any], speed: dict[str, Any],
                        compared: dict[str, tuple[float, float]]) -> dict[str, tuple[str, str, float, float]]:
    """Doubling networks outside the constant family's measured speeds, set against its nearest end.

    A network faster than the fastest constant network and more accurate than it beyond the noise band
    beats it outright ("dominates"); one slower than the slowest and less accurate beyond it loses
    outright ("dominated"). Returns label -> (kind, constant label, accuracy difference, noise band);
    networks that neither dominate nor are dominated are left out.
    """
    ips = {lab: t["images_per_s_median"] for lab, t in speed.items()}
    fastest = max(CONSTANT, key=lambda a: ips[a.label]).label
    slowest = min(CONSTANT, key=lambda a: ips[a.label]).label
    out = {}
    for a in DOUBLING:
        if a.label in compared:
            continue
        ref = fastest if ips[a.label] > ips[fastest] else slowest
        r, c = rows[a.label], rows[ref]
        diff, band = r["test_acc_mean"] - c["test_acc_mean"], noise(r["test_acc_std"], c["test_acc_std"], r["n"])
        if ref == fastest and diff > band:
            out[a.label] = ("dominates", ref, diff, band)
        elif ref == slowest and diff < -band:
            out[a.label] = ("dominated", ref, diff, band)
    return out


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


def analyze_idea_b(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    trained = [r for r in records if "test_acc" in r]
    timings = [r for r in records if "images_per_s" in r]
    rows = {r["label"]: r for r in aggregate(trained, ["label"])}
    speed = {r["label"]: r for r in summarize_repeats(timings, ["label"])}
    precision, repeats = _fast_precision(sweep), speed[CONSTANT[0].label]["n"]
    at_flops = _at_equal_cost(rows, {lab: r["flops"] for lab, r in rows.items()})
    # Measured cost per image: seconds per training image, from the median of the timing repeats.
    at_time = _at_equal_cost(rows, {lab: 1 / t["images_per_s_median"] for lab, t in speed.items()})
    fastest = max(CONSTANT, key=lambda a: speed[a.label]["images_per_s_median"])
    slowest = min(CONSTANT, key=lambda a: speed[a.label]["images_per_s_median"])
    outright = _beyond_speed_range(rows, speed, at_time)

    def versus(found: dict[str, tuple[float, float]], label: str, outside: str) -> str:
        if label in found:
            return f"{100 * found[label][0]:+.2f} ± {100 * found[label][1]:.2f}"
        return "reference" if label in {a.label for a in CONSTANT} else outside

    def speed_outside(label: str) -> str:
        faster = speed[label]["images_per_s_median"] > speed[fastest.label]["images_per_s_median"]
        if label in outright:
            kind, ref, d, b = outright[label]
            return (f"{'faster' if faster else 'slower'} than every constant network and {100 * d:+.2f} ± "
                    f"{100 * b:.2f} against the {'fastest' if faster else 'slowest'}, {ref}: {kind} it")
        return f"not compared: {'faster' if faster else 'slower'} (median) than every constant network"

    cols = [*COST_COLS, ("ips", f"train images/s, {precision}: {repeats_note(repeats)}"),
            ("flops_vs", "vs constant growth at equal FLOPs, pp (± noise band)"),
            ("time_vs", "vs constant growth at equal measured speed, pp (± noise band)")]
    cells = [{**_cost_cells(rows[a.label]), "ips": med(speed[a.label], "images_per_s"),
              "flops_vs": versus(at_flops, a.label, "not compared: outside the constant networks' FLOPs"),
              "time_vs": versus(at_time, a.label, speed_outside(a.label))} for a in CONSTANT + DOUBLING]
    _idea_b_plot(plot, rows, speed, seeds, precision, repeats)
    # At equal speed, a network beyond the constant family's speeds counts when it beats or loses outright.
    timed = {**at_time, **{lab: (d, b) for lab, (_, _, d, b) in outright.items()}}
    verdict = _idea_b_verdict(at_flops, timed)
    reason = _idea_b_reason(rows, speed, at_flops, at_time, outright, fastest, slowest, precision, repeats)
    return Outcome(cols, cells, verdict, reason, records,
                   {"rows": list(rows.values()), "timings": list(speed.values()),
                    "at_equal_flops": at_flops, "at_equal_speed": at_time, "beyond_speed_range": outright,
                    "params_at_equal_flops": _params_at_equal_flops(rows)},
                   f"Accuracies are {seeds_note(seeds)}; throughput is the {repeats_note(repeats)} (timings on a "
                   "shared machine are noisy, so one fast or slow repeat does not move the figure); ± beside a "
                   "difference at equal cost is its noise band, two standard errors over seeds.")


def _idea_b_plot(plot: str, rows: dict[str, Any], speed: dict[str, Any], seeds: int, precision: str,
                 repeats: int) -> None:
    """Accuracy against FLOPs and against measured speed, one series per growth family."""
    fam = (("constant growth", CONSTANT), ("doubling per stage", DOUBLING))
    by_speed = [(lab, sorted(archs, key=lambda a: speed[a.label]["images_per_s_median"])) for lab, archs in fam]
    series_plot(plot, [
        {"xlabel": "forward FLOPs (log scale)", "ylabel": f"test accuracy % ({seeds_note(seeds)})", "logx": True,
         "series": [{"label": lab, "x": [rows[a.label]["flops"] for a in archs],
                     "y": [100 * rows[a.label]["test_acc_mean"] for a in archs],
                     "yerr": [100 * rows[a.label]["test_acc_std"] for a in archs]} for lab, archs in fam]},
        {"xlabel": f"training images/s ({precision}, log scale)\n{repeats_note(repeats)}",
         "ylabel": f"test accuracy % ({seeds_note(seeds)})", "logx": True,
         "series": [{"label": lab, "x": [speed[a.label]["images_per_s_median"] for a in archs],
                     "xerr": [[speed[a.label]["images_per_s_median"] - speed[a.label]["images_per_s_min"]
                               for a in archs],
                              [speed[a.label]["images_per_s_max"] - speed[a.label]["images_per_s_median"]
                               for a in archs]],
                     "y": [100 * rows[a.label]["test_acc_mean"] for a in archs],
                     "yerr": [100 * rows[a.label]["test_acc_std"] for a in archs]} for lab, archs in by_speed]},
    ], "Idea b: growth rate doubling after each transition")


def _idea_b_verdict(at_flops: dict[str, tuple[float, float]], timed: dict[str, tuple[float, float]]) -> str:
    """Supported when doubling wins every comparison at equal FLOPs and at equal speed beyond the noise band."""
    wins = {k: sum(d > b for d, b in f.values()) for k, f in (("flops", at_flops), ("time", timed))}
    losses = {k: sum(d < -b for d, b in f.values()) for k, f in (("flops", at_flops), ("time", timed))}
    if at_flops and timed and wins["flops"] == len(at_flops) and wins["time"] == len(timed):
        return "supported"
    if (at_flops and losses["flops"] == len(at_flops)) or (timed and losses["time"] == len(timed)):
        return "not supported"
    return "inconclusive at this scale"


def _idea_b_reason(rows: dict[str, Any], speed: dict[str, Any], at_flops: dict[str, tuple[float, float]],
                   at_time: dict[str, tuple[float, float]], outright: dict[str, tuple[str, str, float, float]],
                   fastest: Any, slowest: Any, precision: str, repeats: int) -> str:
    def listed(found: dict[str, tuple[float, float]]) -> str:
        return "; ".join(f"{lab} {100 * d:+.2f} pp (±{100 * b:.2f})" for lab, (d, b) in found.items()) or "none"

    outside = [a.label for a in DOUBLING if a.label not in at_time]
    lo, hi = speed[slowest.label]["images_per_s_median"], speed[fastest.label]["images_per_s_median"]
    f = speed[fastest.label]
    text = (f"at equal forward FLOPs (constant growth read log-linearly between its sizes), against constant "
            f"growth: {listed(at_flops)}. At equal measured training speed ({precision} images/s, the median of "
            f"{repeats} timing repeats, read the same way): {listed(at_time)}.")
    if outside:
        text += (" " + " and ".join(f"{lab} ({speed[lab]['images_per_s_median']:.0f} images/s)" for lab in outside)
                 + f" lie outside the constant networks' measured speeds ({lo:.0f} to {hi:.0f} images/s; the fastest,"
                 f" {fastest.label}, has repeats from {f['images_per_s_min']:.0f} to {f['images_per_s_max']:.0f}), "
                 "so no constant network runs at their speed and the equal-time comparison cannot be made for "
                 f"{'it' if len(outside) == 1 else 'them'}.")
        for lab, (kind, ref, d, b) in outright.items():
            faster = kind == "dominates"
            text += (f" {lab} is nonetheless {'faster' if faster else 'slower'} than {ref} and {100 * d:+.2f} pp "
                     f"(±{100 * b:.2f}) {'more' if faster else 'less'} accurate: it {kind} it, so it counts as "
                     f"{'better' if faster else 'worse'} at equal speed.")
    params = _params_at_equal_flops(rows)
    if params and all(p > q for _, _, p, q in params):
        text += (" At equal FLOPs the doubling networks carry more parameters than constant growth: "
                 + "; ".join(f"{kilo(p)} against {kilo(q)} at {mega(fl)} FLOPs" for _, fl, p, q in params)
                 + " (constant growth read log-log between its sizes).")
    return text + (" The idea holds if every doubling network inside the constant family's range is more accurate "
                   "than constant growth beyond the noise band both at equal FLOPs and at equal measured speed (a "
                   "network faster than every constant one counts when it is also more accurate than the fastest "
                   "beyond the band), with at least one network compared each way; it fails if every doubling "
                   "network compared is less accurate beyond it at equal FLOPs or at equal speed.")


def plan_idea_c(sweep: Sweep, seeds: int) -> Plan:
    return Plan(_standard(sweep, SHAPES, seeds))


def analyze_idea_c(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    rows = [r for a in SHAPES for r in aggregate(records, ["label"]) if r["label"] == a.label]
    cells = [_cost_cells(r) for r in rows]
    depth = [sum(a.kwargs["block_config"]) for a in SHAPES]
    series_plot(plot, [{"xlabel": "dense layers in all blocks (log scale)",
                        "ylabel": f"test accuracy % ({seeds_note(seeds)})",
                        "logx": True, "series": [{"label": "DenseNet-BC at about 120k parameters", "x": depth,
                                                  "y": [100 * r["test_acc_mean"] for r in rows],
                                                  "yerr": [100 * r["test_acc_std"] for r in rows]}]}],
                "Idea c: deep and narrow against shallow and wide")
    acc = [r["test_acc_mean"] for r in rows]

    def band(i: int, j: int) -> float:
        return noise(rows[i]["test_acc_std"], rows[j]["test_acc_std"], rows[i]["n"])

    best = max(range(len(rows)), key=acc.__getitem__)
    extremes = (0, len(rows) - 1)
    best_mid = max((i for i in range(len(rows)) if i not in extremes), key=acc.__getitem__)
    beats = [acc[best_mid] - acc[e] > band(best_mid, e) for e in extremes]
    if best not in extremes and all(beats):
        verdict = "supported"
    elif best in extremes and acc[best] - acc[best_mid] > band(best, best_mid):
        verdict = "not supported"
    else:
        verdict = "inconclusive at this scale"
    versus = "; ".join(f"{rows[best_mid]['label']} is {100 * (acc[best_mid] - acc[e]):+.2f} pp against "
                       f"{rows[e]['label']} (±{100 * band(best_mid, e):.2f})" for e in extremes)
    reason = (f"the most accurate shape is {rows[best]['label']} "
              f"({pm(rows[best]['test_acc_mean'], rows[best]['test_acc_std'])}%); {versus}. The idea holds if a "
              "balanced shape (neither extreme) beats both the deepest-narrowest and the shallowest-widest beyond "
              "the noise band, and fails if an extreme beats every balanced one beyond it.")
    return Outcome(COST_COLS, cells, verdict, reason, records, {"rows": rows}, f"Accuracies are {seeds_note(seeds)}.")


def _fast_precision(sweep: Sweep) -> str:
    return "fp16" if sweep.device.startswith("cuda") else "bf16"


def plan_idea_d(sweep: Sweep, seeds: int) -> Plan:
    fast = _fast_precision(sweep)
    return Plan(benches=tuple(BenchSpec(a, p, i) for a in WIDTHS for p in ("fp32", fast) for i in range(seeds)))


def analyze_idea_d(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    fast = _fast_precision(sweep)
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
    r = ratios[fast]
    verdict = "supported" if r >= 0.7 else "not supported" if r <= 0.5 else "inconclusive at this scale"
    reason = (f"on {device} with {threads} threads, layers of the paper's width k={NARROW_K} reach "
              f"{ratios[fast]:.2f}x the GFLOP/s of k={ks[-1]} in {fast} and {ratios['fp32']:.2f}x in fp32 (medians "
              f"of {repeats} timing repeats). The idea (narrow layers may be efficient on a CPU) holds if the narrow "
              "layers keep at least 0.7x the wide layers' GFLOP/s on the fast path, and fails at 0.5x or less. "
              "GFLOP/s counts forward plus backward as three forward passes.")
    spread = f"Every figure is the {repeats_note(repeats)}: the spread is over repeated timings of the same network, "
    return Outcome(cols, cells, verdict, reason, records, {"rows": rows, "ratios": ratios}, spread + "not over seeds.")


IDEAS = [
    Experiment(
        "idea-a-bottleneck", "Idea a: the 1x1 bottleneck cuts parameters and compute",
        "Does the 1x1 bottleneck (DenseNet-B) cut parameters and FLOPs without costing accuracy?",
        "Three DenseNets with compression 0.5, each trained with (-BC) and without (-C) the 4k-channel 1x1 "
        "bottleneck: " + ", ".join(f"k={k} with {'-'.join(map(str, b))} layers per block" for k, b in BOTTLENECK_PAIRS)
        + " (the last is the paper's DenseNet-BC, L=100, k=12).",
        plan_idea_a, analyze_idea_a),
    Experiment(
        "idea-b-growth-doubling", "Idea b: doubling the growth rate after each downsampling",
        "Is a DenseNet whose growth rate doubles after each transition more accurate per FLOP, and per measured "
        "second, than one with a constant growth rate?",
        "Constant growth k = 8, 12, 16 against doubling k = 6-12-24, 8-16-32, 10-20-40, all DenseNet-BC with "
        "4 layers per block; training throughput timed on the fast path (bf16 on CPU, fp16 on CUDA) after all "
        "training.",
        plan_idea_b, analyze_idea_b),
    Experiment(
        "idea-c-depth-width", "Idea c: depth and width should be balanced",
        "At equal parameters, is a balanced DenseNet more accurate than a very deep-narrow or a very shallow-wide one?",
        "DenseNet-BC shapes of about 120k parameters: " + ", ".join(a.label for a in SHAPES) + ".",
        plan_idea_c, analyze_idea_c),
    Experiment(
        "idea-d-width-throughput", "Idea d: narrow layers on CPU",
        "Are narrow layers (small growth rate) as efficient per FLOP as wide ones on a CPU?",
        "DenseNet-BC with 4 layers per block at growth rates " + ", ".join(str(a.kwargs['growth_rate']) for a in WIDTHS)
        + "; training steps timed in fp32 and on the fast path (bf16 on CPU, fp16 on CUDA), eager, and converted to "
        "achieved GFLOP/s. No training runs.",
        plan_idea_d, analyze_idea_d),
]

"""The seed's four ideas for improving DenseNet, each as an experiment."""

from __future__ import annotations

from typing import Any

from densenet.experiments.analysis import accuracy_at_cost, aggregate, mean_std, noise
from densenet.experiments.base import Experiment, Outcome, densenet, kilo, mega, pm
from densenet.experiments.plots import series_plot
from densenet.experiments.sweep import BenchSpec, RunSpec, Sweep

BOTTLENECK_PAIRS = [(12, (4, 4, 4)), (8, (8, 8, 8))]
COUNTED_PAIR = (12, (16, 16, 16))  # the paper's DenseNet-BC (L=100, k=12): costs counted, too slow to train here
CONSTANT = [densenet(k, (4, 4, 4)) for k in (8, 12, 16)]
DOUBLING = [densenet((k, 2 * k, 4 * k), (4, 4, 4)) for k in (6, 8, 10)]
SHAPES = [densenet(6, (12, 12, 12)), densenet(8, (8, 8, 8)), densenet(13, (4, 4, 4)), densenet(20, (2, 2, 2))]
WIDTHS = [densenet(k, (4, 4, 4)) for k in (4, 8, 12, 24, 48)]
NARROW_K = 12  # the paper's growth rate, compared against the widest


def _standard(sweep: Sweep, archs: list[Any], seeds: int) -> list[dict[str, Any]]:
    n = sweep.scale.train_size(sweep.dataset)
    return sweep.train([RunSpec(a, s, n) for a in archs for s in range(seeds)])


def _cost_cells(r: dict[str, Any]) -> dict[str, Any]:
    return {"label": r["label"], "params": kilo(r["params"]), "flops": mega(r["flops"]),
            "test": pm(r["test_acc_mean"], r["test_acc_std"])}


COST_COLS = [("label", "model"), ("params", "params"), ("flops", "forward FLOPs"), ("test", "test acc %")]


def run_idea_a(sweep: Sweep, seeds: int, plot: str) -> Outcome:
    archs = [densenet(k, b, bottleneck=bn) for k, b in BOTTLENECK_PAIRS for bn in (True, False)]
    records = _standard(sweep, archs, seeds)
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
    k, b = COUNTED_PAIR
    (pb, fb), (pc, fc) = sweep.cost(densenet(k, b)), sweep.cost(densenet(k, b, bottleneck=False))
    cells += [{"label": densenet(k, b).label, "params": kilo(pb), "flops": mega(fb), "test": "not trained"},
              {"label": densenet(k, b, bottleneck=False).label, "params": kilo(pc), "flops": mega(fc),
               "test": "not trained"}]
    notes.append(f"at the paper's depth ({'-'.join(map(str, b))}, k={k}; counted, not trained) it changes parameters "
                 f"{pb / pc - 1:+.0%} and FLOPs {fb / fc - 1:+.0%}")
    good += pb < pc and fb < fc
    bad += not (pb < pc and fb < fc)
    pairs = [(rows[densenet(k, b).label], rows[densenet(k, b, bottleneck=False).label]) for k, b in BOTTLENECK_PAIRS]
    series_plot(plot, [{"xlabel": "forward FLOPs (log scale)", "ylabel": "test accuracy % (mean ± std)", "logx": True,
                        "series": [{"label": f"{p[0]['label']} / -C", "x": [p[0]["flops"], p[1]["flops"]],
                                    "y": [100 * p[0]["test_acc_mean"], 100 * p[1]["test_acc_mean"]],
                                    "yerr": [100 * p[0]["test_acc_std"], 100 * p[1]["test_acc_std"]]}
                                   for p in pairs]}],
                "Idea a: with (-BC) and without (-C) the 1x1 bottleneck")
    depths = len(BOTTLENECK_PAIRS) + 1
    verdict = "supported" if good == depths else "not supported" if bad == depths else "inconclusive at this scale"
    reason = ("; ".join(notes) + ". The idea holds if the bottleneck cuts both parameters and FLOPs (without "
              "lowering accuracy beyond the noise band, where trained) at every depth tried, and fails if it does "
              "so at none. "
              "A layer's bottleneck maps its input to 4k channels before the 3x3 conv, so it only saves when the "
              "layer's input has more than about 4k channels, which needs deep blocks.")
    return Outcome(COST_COLS, cells, verdict, reason, records, {"rows": list(rows.values())})


def run_idea_b(sweep: Sweep, seeds: int, plot: str) -> Outcome:
    records = _standard(sweep, CONSTANT + DOUBLING, seeds)
    rows = {r["label"]: r for r in aggregate(records, ["label"])}
    precision = _fast_precision(sweep)
    timings = sweep.bench([BenchSpec(a, precision, i) for a in CONSTANT + DOUBLING for i in range(seeds)])
    speed = {r["label"]: r for r in aggregate(timings, ["label"], metrics=("images_per_s",))}
    cols = [*COST_COLS, ("ips", f"train images/s ({precision})")]
    cells = []
    for a in CONSTANT + DOUBLING:
        r, t = rows[a.label], speed[a.label]
        cells.append({**_cost_cells(r), "ips": f"{t['images_per_s_mean']:.0f} ± {t['images_per_s_std']:.0f}"})
    const = [(rows[a.label]["flops"], rows[a.label]["test_acc_mean"]) for a in CONSTANT]
    const_std = mean_std([rows[a.label]["test_acc_std"] for a in CONSTANT])[0]
    const_t = [(1 / speed[a.label]["images_per_s_mean"], rows[a.label]["test_acc_mean"]) for a in CONSTANT]
    notes, wins, losses, compared, tnotes = [], 0, 0, 0, []
    for a in DOUBLING:
        r = rows[a.label]
        ref = accuracy_at_cost(const, r["flops"])
        if ref is None:
            notes.append(f"{a.label} ({mega(r['flops'])} FLOPs) lies outside the constant-growth FLOPs range")
            continue
        compared += 1
        band = noise(r["test_acc_std"], const_std, r["n"])
        diff = r["test_acc_mean"] - ref
        wins += diff > band
        losses += diff < -band
        notes.append(f"{a.label} is {100 * diff:+.2f} pp against constant growth at its FLOPs (±{100 * band:.2f})")
        tref = accuracy_at_cost(const_t, 1 / speed[a.label]["images_per_s_mean"])
        if tref is not None:
            tnotes.append(f"{a.label} {100 * (r['test_acc_mean'] - tref):+.2f} pp")
    fam = (("constant growth", CONSTANT), ("doubling per stage", DOUBLING))
    series_plot(plot, [
        {"xlabel": "forward FLOPs (log scale)", "ylabel": "test accuracy % (mean ± std)", "logx": True,
         "series": [{"label": lab, "x": [rows[a.label]["flops"] for a in archs],
                     "y": [100 * rows[a.label]["test_acc_mean"] for a in archs],
                     "yerr": [100 * rows[a.label]["test_acc_std"] for a in archs]} for lab, archs in fam]},
        {"xlabel": f"measured training images/s ({precision}, log scale)", "ylabel": "test accuracy %", "logx": True,
         "series": [{"label": lab, "x": [speed[a.label]["images_per_s_mean"] for a in archs],
                     "y": [100 * rows[a.label]["test_acc_mean"] for a in archs],
                     "yerr": [100 * rows[a.label]["test_acc_std"] for a in archs]} for lab, archs in fam]},
    ], "Idea b: growth rate doubling after each transition")
    if compared and wins == compared:
        verdict = "supported"
    elif compared and losses == compared:
        verdict = "not supported"
    else:
        verdict = "inconclusive at this scale"
    reason = ("; ".join(notes) + ". The idea holds if every doubling network inside the constant family's FLOPs "
              "range is more accurate than constant growth at the same FLOPs (log-linear between constant-growth "
              "sizes) beyond the noise band, and fails if every one is less accurate beyond it. At the same "
              "measured training time per image instead of FLOPs: "
              + ("; ".join(tnotes) if tnotes else "no doubling network falls inside the constant family's range")
              + ".")
    return Outcome(cols, cells, verdict, reason, records + timings, {"rows": list(rows.values()),
                                                                      "timings": list(speed.values())})


def run_idea_c(sweep: Sweep, seeds: int, plot: str) -> Outcome:
    records = _standard(sweep, SHAPES, seeds)
    rows = [r for a in SHAPES for r in aggregate(records, ["label"]) if r["label"] == a.label]
    cells = [_cost_cells(r) for r in rows]
    depth = [sum(a.kwargs["block_config"]) for a in SHAPES]
    series_plot(plot, [{"xlabel": "dense layers in all blocks (log scale)", "ylabel": "test accuracy % (mean ± std)",
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
    return Outcome(COST_COLS, cells, verdict, reason, records, {"rows": rows})


def _fast_precision(sweep: Sweep) -> str:
    return "fp16" if sweep.device.startswith("cuda") else "bf16"


def run_idea_d(sweep: Sweep, seeds: int, plot: str) -> Outcome:
    fast = _fast_precision(sweep)
    timings = sweep.bench([BenchSpec(a, p, i) for a in WIDTHS for p in ("fp32", fast) for i in range(seeds)])
    rows = aggregate(timings, ["label", "precision"], metrics=("images_per_s", "achieved_gflops"))
    by = {(r["label"], r["precision"]): r for r in rows}
    ks = [a.kwargs["growth_rate"] for a in WIDTHS]
    cols = [("k", "growth rate k"), ("params", "params"), ("flops", "forward FLOPs"),
            ("fp32", "fp32 GFLOP/s"), ("fast", f"{fast} GFLOP/s"), ("ips", f"{fast} images/s")]
    cells = []
    for k, a in zip(ks, WIDTHS):
        p32, pf = by[(a.label, "fp32")], by[(a.label, fast)]
        cells.append({"k": k, "params": kilo(pf["params"]), "flops": mega(pf["flops"]),
                      "fp32": pm(p32["achieved_gflops_mean"], p32["achieved_gflops_std"], 1, 1),
                      "fast": pm(pf["achieved_gflops_mean"], pf["achieved_gflops_std"], 1, 1),
                      "ips": f"{pf['images_per_s_mean']:.0f}"})
    device = timings[0]["device"] if timings else sweep.device
    threads = timings[0]["threads"] if timings else 0
    series_plot(plot, [{"xlabel": "growth rate k (layer width, log scale)",
                        "ylabel": "achieved GFLOP/s in training (mean ± std)", "logx": True,
                        "series": [{"label": p, "x": ks,
                                    "y": [by[(a.label, p)]["achieved_gflops_mean"] for a in WIDTHS],
                                    "yerr": [by[(a.label, p)]["achieved_gflops_std"] for a in WIDTHS]}
                                   for p in ("fp32", fast)]}],
                f"Idea d: throughput per FLOP against width on {device} ({threads} threads)")
    narrow = next(a for a in WIDTHS if a.kwargs["growth_rate"] == NARROW_K)
    ratios = {p: by[(narrow.label, p)]["achieved_gflops_mean"] / by[(WIDTHS[-1].label, p)]["achieved_gflops_mean"]
              for p in ("fp32", fast)}
    r = ratios[fast]
    verdict = "supported" if r >= 0.7 else "not supported" if r <= 0.5 else "inconclusive at this scale"
    reason = (f"on {device} with {threads} threads, layers of the paper's width k={NARROW_K} reach "
              f"{ratios[fast]:.2f}x the GFLOP/s of k={ks[-1]} in {fast} and {ratios['fp32']:.2f}x in fp32. "
              "The idea (narrow layers may be efficient on a CPU) holds if the narrow layers keep at least 0.7x the "
              "wide layers' GFLOP/s on the fast path, and fails at 0.5x or less. GFLOP/s counts forward plus "
              "backward as three forward passes.")
    return Outcome(cols, cells, verdict, reason, timings, {"rows": rows, "ratios": ratios})


IDEAS = [
    Experiment(
        "idea-a-bottleneck", "Idea a: the 1x1 bottleneck cuts parameters and compute",
        "Does the 1x1 bottleneck (DenseNet-B) cut parameters and FLOPs without costing accuracy?",
        "Two DenseNets with compression 0.5, each trained with (-BC) and without (-C) the 4k-channel 1x1 "
        "bottleneck: " + ", ".join(f"k={k} with {'-'.join(map(str, b))} layers per block" for k, b in BOTTLENECK_PAIRS)
        + "; and the paper's DenseNet-BC (L=100, k=12) with and without it, costs counted only.",
        run_idea_a),
    Experiment(
        "idea-b-growth-doubling", "Idea b: doubling the growth rate after each downsampling",
        "Is a DenseNet whose growth rate doubles after each transition more accurate per FLOP, and per measured "
        "second, than one with a constant growth rate?",
        "Constant growth k = 8, 12, 16 against doubling k = 6-12-24, 8-16-32, 10-20-40, all DenseNet-BC with "
        "4 layers per block; training throughput timed on the fast path after all training, with nothing else "
        "running.",
        run_idea_b),
    Experiment(
        "idea-c-depth-width", "Idea c: depth and width should be balanced",
        "At equal parameters, is a balanced DenseNet more accurate than a very deep-narrow or a very shallow-wide one?",
        "DenseNet-BC shapes of about 120k parameters: " + ", ".join(a.label for a in SHAPES) + ".",
        run_idea_c),
    Experiment(
        "idea-d-width-throughput", "Idea d: narrow layers on CPU",
        "Are narrow layers (small growth rate) as efficient per FLOP as wide ones on a CPU?",
        "DenseNet-BC with 4 layers per block at growth rates " + ", ".join(str(a.kwargs['growth_rate']) for a in WIDTHS)
        + "; training steps timed in fp32 and on the fast path (bf16 on CPU, fp16 on CUDA), eager, and converted to "
        "achieved GFLOP/s. No training runs.",
        run_idea_d),
]

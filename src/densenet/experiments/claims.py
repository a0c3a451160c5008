"""The seed's four claims about DenseNet, each as an experiment."""

from __future__ import annotations

from typing import Any

from densenet.experiments.analysis import aggregate, matched_ratios, noise
from densenet.experiments.base import (
    DENSENET_FAMILY,
    DENSENET_PAIR,
    RESNET_FAMILY,
    RESNET_PAIR,
    Experiment,
    Outcome,
    Plan,
    kilo,
    mega,
    pm,
    seeds_note,
)
from densenet.experiments.plots import bar_plot, series_plot
from densenet.experiments.scales import dataset_train_size
from densenet.experiments.sweep import RunSpec, Sweep


def plan_families(sweep: Sweep, seeds: int) -> Plan:
    """Claims 1 and 2: both families on the standard training set."""
    n = sweep.scale.train_size(sweep.dataset)
    return Plan(tuple(RunSpec(a, s, n) for a in (*DENSENET_FAMILY, *RESNET_FAMILY) for s in range(seeds)))


def _family_table(rows: list[dict[str, Any]]) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    cols = [("label", "model"), ("params", "params"), ("flops", "forward FLOPs"), ("test", "test acc %"),
            ("train", "train acc %")]
    cells = [{"label": r["label"], "params": kilo(r["params"]), "flops": mega(r["flops"]),
              "test": pm(r["test_acc_mean"], r["test_acc_std"]), "train": pm(r["train_acc_mean"], r["train_acc_std"])}
             for r in rows]
    return cols, cells


def _matched(cost: str, seeds: int, sweep: Sweep, records: list[dict[str, Any]], plot: str, limit: float,
             fail: float, claim: str) -> Outcome:
    rows = aggregate(records, ["label"])
    dn = [(r[cost], r["test_acc_mean"]) for r in rows if r["family"] == "densenet"]
    rn = [(r[cost], r["test_acc_mean"]) for r in rows if r["family"] == "resnet"]
    ratios = matched_ratios(dn, rn)
    name = "parameters" if cost == "params" else "forward FLOPs"
    series = [{"label": fam, "x": [r[cost] for r in rows if r["family"] == key],
               "y": [100 * r["test_acc_mean"] for r in rows if r["family"] == key],
               "yerr": [100 * r["test_acc_std"] for r in rows if r["family"] == key]}
              for fam, key in (("DenseNet-BC", "densenet"), ("ResNet", "resnet"))]
    series_plot(plot, [{"xlabel": name + " (log scale)", "ylabel": f"test accuracy % ({seeds_note(seeds)})",
                        "logx": True, "series": series}], f"{claim}: accuracy against {name}")
    cols, cells = _family_table(rows)
    if not ratios:
        verdict, reason = "inconclusive at this scale", (
            "the two families' accuracy ranges do not overlap, so no accuracy is reached by both and the "
            f"{name} cannot be compared at matched accuracy.")
    else:
        shown = "; ".join(f"at {100 * m['accuracy']:.2f}% DenseNet needs {m['ratio']:.2f}x ResNet's {name}"
                          for m in ratios)
        worst, best = max(m["ratio"] for m in ratios), min(m["ratio"] for m in ratios)
        if worst <= limit:
            verdict = "supported"
        elif best >= fail:
            verdict = "not supported"
        else:
            verdict = "inconclusive at this scale"
        reason = (f"reading each family's best-accuracy-for-cost frontier (log-linear between its sizes), {shown}. "
                  f"The claim holds if the ratio is at most {limit} at every matched accuracy and fails if it "
                  f"is at least {fail} at every one; the ratios here range from {best:.2f} to {worst:.2f}.")
    reason += " " + _training_regime(sweep, rows)
    return Outcome(cols, cells, verdict, reason, records, {"ratios": ratios, "rows": rows},
                   f"Accuracies are {seeds_note(seeds)}.")


def analyze_claim1(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    return _matched("params", seeds, sweep, records, plot, limit=0.5, fail=0.75, claim="Claim 1")


def analyze_claim2(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    return _matched("flops", seeds, sweep, records, plot, limit=0.6, fail=0.8, claim="Claim 2")


def _training_regime(sweep: Sweep, rows: list[dict[str, Any]]) -> str:
    """A sentence on how far the runs trained: short runs compare learning speed as much as capacity."""
    n = sweep.scale.train_size(sweep.dataset)
    steps = sweep.scale.epochs_for(n) * -(-n // sweep.scale.batch_size)
    widest = max(abs(r["gap_mean"]) for r in rows)
    if widest < 0.02:
        return (f"Every network ends with its train accuracy within {100 * widest:.1f} pp of its test accuracy after "
                f"{steps} optimizer steps: none has fit its training set yet, so at this scale the comparison is of "
                "how much each network learns in a short, fixed budget, not of what it could reach.")
    return f"The runs take {steps} optimizer steps each."


def _fraction_sizes(sweep: Sweep) -> list[tuple[float, int]]:
    full = dataset_train_size(sweep.dataset)
    return [(f, max(1, round(f * full))) for f in sweep.scale.fractions]


def plan_claim3(sweep: Sweep, seeds: int) -> Plan:
    return Plan(tuple(RunSpec(a, s, n) for _, n in _fraction_sizes(sweep) for a in (DENSENET_PAIR, RESNET_PAIR)
                      for s in range(seeds)))


def analyze_claim3(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    sizes = _fraction_sizes(sweep)
    rows = aggregate(records, ["label", "train_images"])
    by = {(r["family"], r["train_images"]): r for r in rows}
    cols = [("fraction", "training data"), ("epochs", "epochs"), ("dn_test", "DenseNet test acc %"),
            ("rn_test", "ResNet test acc %"), ("dn_gap", "DenseNet gap (pp)"), ("rn_gap", "ResNet gap (pp)")]
    cells, small = [], []
    for f, n in sizes:
        d, r = by[("densenet", n)], by[("resnet", n)]
        cells.append({"fraction": f"{100 * f:g}% ({n:,} images)", "epochs": sweep.scale.epochs_for(n),
                      "dn_test": pm(d["test_acc_mean"], d["test_acc_std"]),
                      "rn_test": pm(r["test_acc_mean"], r["test_acc_std"]),
                      "dn_gap": pm(d["gap_mean"], d["gap_std"]), "rn_gap": pm(r["gap_mean"], r["gap_std"])})
        if f <= 0.05:
            small.append((f, n, d, r))
    xs = [n for _, n in sizes]
    fam = (("DenseNet", "densenet"), ("ResNet", "resnet"))
    series_plot(plot, [
        {"xlabel": "training images (log scale)", "ylabel": f"train acc - test acc, pp ({seeds_note(seeds)})",
         "logx": True,
         "series": [{"label": lab, "x": xs, "y": [100 * by[(k, n)]["gap_mean"] for n in xs],
                     "yerr": [100 * by[(k, n)]["gap_std"] for n in xs]} for lab, k in fam]},
        {"xlabel": "training images (log scale)", "ylabel": f"test accuracy % ({seeds_note(seeds)})", "logx": True,
         "series": [{"label": lab, "x": xs, "y": [100 * by[(k, n)]["test_acc_mean"] for n in xs],
                     "yerr": [100 * by[(k, n)]["test_acc_std"] for n in xs]} for lab, k in fam]},
    ], f"Claim 3: overfitting against training-set size ({DENSENET_PAIR.label} vs {RESNET_PAIR.label})")
    smaller_gap = lower_test = larger_gap = 0
    notes = []
    for f, _n, d, r in small:
        band = noise(d["gap_std"], r["gap_std"], d["n"])
        tband = noise(d["test_acc_std"], r["test_acc_std"], d["n"])
        diff, tdiff = d["gap_mean"] - r["gap_mean"], d["test_acc_mean"] - r["test_acc_mean"]
        smaller_gap += diff < -band
        larger_gap += diff > band
        lower_test += tdiff < -tband
        notes.append(f"at {100 * f:g}% DenseNet's gap is {100 * diff:+.2f} pp against ResNet's (noise band "
                     f"±{100 * band:.2f}) and its test accuracy {100 * tdiff:+.2f} pp (±{100 * tband:.2f})")
    if small and smaller_gap == len(small) and lower_test == 0:
        verdict = "supported"
    elif small and (larger_gap == len(small) or lower_test == len(small)):
        verdict = "not supported"
    else:
        verdict = "inconclusive at this scale"
    reason = ("; ".join(notes) + ". The claim holds if, with little data (at most 5% of the training set), "
              "DenseNet's train-test gap is smaller beyond the noise band (two standard errors over seeds) at every "
              "fraction without a lower test accuracy; it fails if its gap is larger, or its test accuracy lower, "
              "at every such fraction.")
    return Outcome(cols, cells, verdict, reason, records, {"rows": rows},
                   f"Accuracies and gaps are {seeds_note(seeds)}.")


def plan_claim4(sweep: Sweep, seeds: int) -> Plan:
    # The smallest fraction of claim 3: the networks overfit most there, so augmentation has most to prevent.
    _, n = _fraction_sizes(sweep)[0]
    return Plan(tuple(RunSpec(a, s, n, augment=aug) for a in (DENSENET_PAIR, RESNET_PAIR) for aug in (True, False)
                      for s in range(seeds)))


def analyze_claim4(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    _, n = _fraction_sizes(sweep)[0]
    rows = aggregate(records, ["label", "augment"])
    by = {(r["family"], r["augment"]): r for r in rows}
    drops = {}
    cols = [("label", "model"), ("aug", "with augmentation, test %"), ("plain", "without, test %"),
            ("drop", "drop without augmentation, pp (± combined std)")]
    cells = []
    for fam in ("densenet", "resnet"):
        a, p = by[(fam, True)], by[(fam, False)]
        drop = a["test_acc_mean"] - p["test_acc_mean"]
        drops[fam] = (drop, (a["test_acc_std"] ** 2 + p["test_acc_std"] ** 2) ** 0.5, a["n"])
        cells.append({"label": a["label"], "aug": pm(a["test_acc_mean"], a["test_acc_std"]),
                      "plain": pm(p["test_acc_mean"], p["test_acc_std"]),
                      "drop": f"{100 * drop:+.2f} ± {100 * drops[fam][1]:.2f}"})
    bar_plot(plot, [c["label"] for c in cells],
             [{"label": lab, "y": [100 * by[(fam, aug)]["test_acc_mean"] for fam in ("densenet", "resnet")],
               "yerr": [100 * by[(fam, aug)]["test_acc_std"] for fam in ("densenet", "resnet")]}
              for lab, aug in (("with augmentation", True), ("without", False))],
             f"test accuracy % ({seeds_note(seeds)})", f"Claim 4: augmentation on {n:,} training images")
    (dd, sd, k), (dr, sr, _) = drops["densenet"], drops["resnet"]
    band = noise(sd, sr, k)
    diff = dr - dd
    # Augmentation must help at least one network for "the drop without it" to mean anything.
    helps = dd > noise(sd, 0.0, k) or dr > noise(sr, 0.0, k)
    if not helps:
        verdict = "inconclusive at this scale"
    elif diff > band and dr > 0:
        verdict = "supported"
    elif diff < -band:
        verdict = "not supported"
    else:
        verdict = "inconclusive at this scale"
    reason = (f"on {n:,} training images, without augmentation (random crop with padding "
              f"{sweep.scale.augment_padding} and horizontal flips) DenseNet's test accuracy changes by "
              f"{-100 * dd:+.2f} pp and ResNet's by {-100 * dr:+.2f} pp; ResNet's drop minus DenseNet's is "
              f"{100 * diff:+.2f} pp, against a noise band of ±{100 * band:.2f} pp. The claim holds if ResNet drops "
              "more than DenseNet beyond the noise band, and fails if DenseNet drops more beyond it.")
    if not helps:
        reason += (" Here augmentation helps neither network beyond its own noise band, so there is no drop to "
                   "compare: at this budget the augmented images slow learning more than they prevent overfitting, "
                   "and the claim is not put to the test.")
    return Outcome(cols, cells, verdict, reason, records, {"rows": rows, "drops": drops},
                   f"Accuracies are {seeds_note(seeds)}; a drop's ± is the two arms' stds combined "
                   "(square root of the sum of squares).")


CLAIMS = [
    Experiment(
        "claim1-params", "Claim 1: DenseNet needs less than half of ResNet's parameters for the same accuracy",
        "At matched test accuracy, does a DenseNet have at most half the parameters of a ResNet?",
        "Four DenseNet-BC sizes (" + ", ".join(a.label for a in DENSENET_FAMILY) + ") and five ResNet sizes ("
        + ", ".join(a.label for a in RESNET_FAMILY) + "), all trained with the same recipe. Each family's "
        "accuracy-for-parameters frontier is read at three accuracies both families reach.",
        plan_families, analyze_claim1),
    Experiment(
        "claim2-flops", "Claim 2: DenseNet needs about half of ResNet's compute for the same accuracy",
        "At matched test accuracy, does a DenseNet need about half (at most 0.6x) the forward FLOPs of a ResNet?",
        "The same runs as claim 1, read against forward FLOPs per image (torch.utils.flop_counter, a "
        "multiply-add counting 2).",
        plan_families, analyze_claim2),
    Experiment(
        "claim3-overfitting", "Claim 3: DenseNet resists overfitting, especially with little training data",
        "With little training data, is DenseNet's train-test gap smaller than a ResNet's of similar size, "
        "without a lower test accuracy?",
        f"{DENSENET_PAIR.label} against {RESNET_PAIR.label} (about 100k parameters each), trained on the first "
        "1%, 5%, 20% and 100% of the training set; smaller sets get more epochs so that every run sees about "
        "the same number of images. The gap is the last epoch's running train accuracy minus the test accuracy.",
        plan_claim3, analyze_claim3),
    Experiment(
        "claim4-augmentation", "Claim 4: DenseNet generalizes better without data augmentation",
        "Without data augmentation, does ResNet lose more test accuracy than DenseNet?",
        f"{DENSENET_PAIR.label} and {RESNET_PAIR.label} on the smallest training fraction of claim 3 (1%: "
        "the networks overfit most there, so augmentation has the most to prevent), with and without random crops "
        "and horizontal flips. The seed's setting is CIFAR-100; at cpu scale it is Fashion-MNIST "
        "(`--scale full --dataset cifar-100` runs the seed's).",
        plan_claim4, analyze_claim4),
]

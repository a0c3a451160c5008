"""The seed's four claims about DenseNet, each as an experiment."""

from __future__ import annotations

from typing import Any

from densenet.experiments.analysis import aggregate, matched_ratios, seed_values
from densenet.experiments.base import (
    DENSENET_FAMILY,
    DENSENET_PAIR,
    RESNET_FAMILY,
    RESNET_PAIR,
    Experiment,
    Outcome,
    Plan,
    ci,
    kilo,
    mega,
    pm,
    seeds_note,
)
from densenet.experiments.plots import bar_plot, series_plot
from densenet.experiments.rules import (
    CLAIM1_LIMITS,
    CLAIM2_LIMITS,
    SMALL_DATA,
    claim3_verdict,
    claim4_fraction,
    matched_verdict,
    unanimous,
)
from densenet.experiments.scales import dataset_train_size
from densenet.experiments.stats import by_seed
from densenet.experiments.sweep import RunSpec, Sweep

FAMILIES = ("densenet", "resnet")


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


def _matched(cost: str, seeds: int, sweep: Sweep, records: list[dict[str, Any]], plot: str,
             limits: tuple[float, float], claim: str) -> Outcome:
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
        verdict, reason = matched_verdict([], limits), (
            "the two families' accuracy ranges do not overlap, so no accuracy is reached by both and the "
            f"{name} cannot be compared at matched accuracy.")
    else:
        shown = "; ".join(f"at {100 * m['accuracy']:.2f}% DenseNet needs {m['ratio']:.2f}x ResNet's {name}"
                          for m in ratios)
        worst, best = max(m["ratio"] for m in ratios), min(m["ratio"] for m in ratios)
        verdict = matched_verdict([m["ratio"] for m in ratios], limits)
        reason = (f"reading each family's best-accuracy-for-cost frontier (log-linear between its sizes), {shown}. "
                  f"The claim holds if the ratio is at most {limits[0]} at every matched accuracy and fails if it "
                  f"is at least {limits[1]} at every one; the ratios here range from {best:.2f} to {worst:.2f}.")
    reason += " " + _training_regime(sweep, rows)
    headline = (f"at matched accuracy DenseNet needs {best:.2f}x to {worst:.2f}x ResNet's {name}" if ratios
                else "the two families reach no common accuracy")
    return Outcome(cols, cells, verdict, reason, records, {"ratios": ratios, "rows": rows},
                   f"Accuracies are {seeds_note(seeds)}.", headline)


def analyze_claim1(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    return _matched("params", seeds, sweep, records, plot, CLAIM1_LIMITS, claim="Claim 1")


def analyze_claim2(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    return _matched("flops", seeds, sweep, records, plot, CLAIM2_LIMITS, claim="Claim 2")


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
    cells = [{"fraction": f"{100 * f:g}% ({n:,} images)", "epochs": sweep.scale.epochs_for(n),
              "dn_test": pm(by[("densenet", n)]["test_acc_mean"], by[("densenet", n)]["test_acc_std"]),
              "rn_test": pm(by[("resnet", n)]["test_acc_mean"], by[("resnet", n)]["test_acc_std"]),
              "dn_gap": pm(by[("densenet", n)]["gap_mean"], by[("densenet", n)]["gap_std"]),
              "rn_gap": pm(by[("resnet", n)]["gap_mean"], by[("resnet", n)]["gap_std"])} for f, n in sizes]
    _claim3_plot(plot, by, [n for _, n in sizes], seeds)
    small = [(f, n) for f, n in sizes if f <= SMALL_DATA]
    values = {m: seed_values(records, m, ["family", "train_images"]) for m in ("gap", "test_acc")}
    gaps = [by_seed(values["gap"][("densenet", n)], values["gap"][("resnet", n)]) for _, n in small]
    tests = [by_seed(values["test_acc"][("densenet", n)], values["test_acc"][("resnet", n)]) for _, n in small]
    verdict = claim3_verdict(gaps, tests)
    notes = [f"at {100 * f:g}% DenseNet's gap minus ResNet's is {ci(g)} pp and its test accuracy minus ResNet's "
             f"{ci(t)} pp" for (f, _), g, t in zip(small, gaps, tests)]
    reason = ("; ".join(notes) + f" (95% {gaps[0].method} intervals over seeds). " if notes else "") + (
        f"The claim holds if, with little data (at most {SMALL_DATA:.0%} of the training set), DenseNet's "
        "train-test gap is smaller beyond the 95% interval at every such fraction without a lower test accuracy; it "
        "fails if its gap is larger, or its test accuracy lower, at every such fraction.")
    (f0, n0) = sizes[0]
    headline = (f"on {n0:,} images the train-test gap is {100 * by[('densenet', n0)]['gap_mean']:.1f} pp (DenseNet) "
                f"vs {100 * by[('resnet', n0)]['gap_mean']:.1f} pp (ResNet); the difference is {ci(gaps[0])} pp"
                if small else "")
    return Outcome(cols, cells, verdict, reason, records, {"rows": rows, "gaps": gaps, "tests": tests},
                   f"Accuracies and gaps are {seeds_note(seeds)}.", headline)


def _claim3_plot(plot: str, by: dict[tuple[str, int], dict[str, Any]], xs: list[int], seeds: int) -> None:
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


def _claim4_sizes(sweep: Sweep) -> list[tuple[float, int]]:
    """Claim 3's little-data fractions: the networks overfit most there, so augmentation has most to prevent."""
    return [(f, n) for f, n in _fraction_sizes(sweep) if f <= SMALL_DATA]


def plan_claim4(sweep: Sweep, seeds: int) -> Plan:
    return Plan(tuple(RunSpec(a, s, n, augment=aug) for _, n in _claim4_sizes(sweep)
                      for a in (DENSENET_PAIR, RESNET_PAIR) for aug in (True, False) for s in range(seeds)))


def claim4_part(values: dict[tuple, dict[int, float]], n: int) -> dict[str, Any]:
    """One fraction of claim 4: each network's drop without augmentation, their difference, the verdict.

    Args:
        values: ``(family, train_images, augment)`` -> ``{seed: test accuracy}``.
        n: The fraction's training images.

    Returns:
        ``train_images``, ``helps`` (augmented minus plain per family, paired over seeds), ``diff``
        (ResNet's drop minus DenseNet's, paired over seeds) and the fraction's ``verdict``.
    """
    drops = {fam: {s: values[(fam, n, True)][s] - values[(fam, n, False)][s] for s in values[(fam, n, True)]
                   if s in values[(fam, n, False)]} for fam in ("densenet", "resnet")}
    helps = {fam: by_seed(values[(fam, n, True)], values[(fam, n, False)]) for fam in drops}
    diff = by_seed(drops["resnet"], drops["densenet"])
    verdict = claim4_fraction(list(helps.values()), helps["resnet"].diff, diff)
    return {"train_images": n, "helps": helps, "diff": diff, "verdict": verdict}


def analyze_claim4(sweep: Sweep, seeds: int, records: list[dict[str, Any]], plot: str) -> Outcome:
    sizes = _claim4_sizes(sweep)
    by = {(r["family"], r["train_images"], r["augment"]): r for r in aggregate(records, ["label", "train_images",
                                                                                        "augment"])}
    values = seed_values(records, "test_acc", ["family", "train_images", "augment"])
    parts = [claim4_part(values, n) for _, n in sizes]
    cols = [("fraction", "training data"), ("label", "model"), ("aug", "with augmentation, test %"),
            ("plain", "without, test %"), ("drop", "drop without augmentation, pp (± 95% paired interval)")]
    cells = [{"fraction": f"{100 * f:g}% ({n:,} images)", "label": by[(fam, n, True)]["label"],
              "aug": pm(by[(fam, n, True)]["test_acc_mean"], by[(fam, n, True)]["test_acc_std"]),
              "plain": pm(by[(fam, n, False)]["test_acc_mean"], by[(fam, n, False)]["test_acc_std"]),
              "drop": ci(part["helps"][fam])} for (f, n), part in zip(sizes, parts) for fam in ("densenet", "resnet")]
    bar_plot(plot, [f"{c['label']}\n{c['fraction']}" for c in cells],
             [{"label": lab, "y": [100 * by[(fam, n, aug)]["test_acc_mean"] for _, n in sizes for fam in FAMILIES],
               "yerr": [100 * by[(fam, n, aug)]["test_acc_std"] for _, n in sizes for fam in FAMILIES]}
              for lab, aug in (("with augmentation", True), ("without", False))],
             f"test accuracy % ({seeds_note(seeds)})",
             "Claim 4: augmentation on " + " and ".join(f"{n:,}" for _, n in sizes) + " training images")
    verdict = unanimous([p["verdict"] for p in parts])
    return Outcome(cols, cells, verdict, _claim4_reason(sweep, sizes, parts), records,
                   {"rows": list(by.values()), "fractions": parts},
                   f"Accuracies are {seeds_note(seeds)}; a drop's ± is the 95% paired t-interval over seeds of "
                   "augmented minus plain accuracy (same seed, same training images).",
                   "; ".join(f"at {100 * f:g}% dropping augmentation costs DenseNet {ci(p['helps']['densenet'])} pp "
                             f"and ResNet {ci(p['helps']['resnet'])} pp" for (f, _), p in zip(sizes, parts)))


def _claim4_reason(sweep: Sweep, sizes: list[tuple[float, int]], parts: list[dict[str, Any]]) -> str:
    notes = [f"on {n:,} training images ({100 * f:g}%) without augmentation DenseNet's test accuracy changes by "
             f"{-100 * p['helps']['densenet'].diff:+.2f} pp and ResNet's by {-100 * p['helps']['resnet'].diff:+.2f} "
             f"pp; ResNet's drop minus DenseNet's is {ci(p['diff'])} pp (this fraction: {p['verdict']}"
             + ("" if any(h.above for h in p["helps"].values()) else
                ": augmentation helps neither network beyond its interval, so there is no drop to compare") + ")"
             for (f, n), p in zip(sizes, parts)]
    return ("; ".join(notes) + f". Augmentation is random crops with padding {sweep.scale.augment_padding} and "
            "horizontal flips; every interval is a 95% paired t-interval over seeds. The claim holds if at every "
            f"fraction of at most {SMALL_DATA:.0%} ResNet drops more than DenseNet beyond the interval (with "
            "augmentation helping at least one of them), and fails if DenseNet drops more beyond it at every one.")


CLAIMS = [
    Experiment(
        "claim1-params", "Claim 1: DenseNet needs less than half of ResNet's parameters for the same accuracy",
        "At matched test accuracy, does a DenseNet have at most half the parameters of a ResNet?",
        "Four DenseNet-BC sizes (" + ", ".join(a.label for a in DENSENET_FAMILY) + ") and five ResNet sizes ("
        + ", ".join(a.label for a in RESNET_FAMILY) + "), all trained with the same recipe. Each family's "
        "accuracy-for-parameters frontier is read at three accuracies both families reach.",
        plan_families, analyze_claim1, short="Claim 1: half the parameters"),
    Experiment(
        "claim2-flops", "Claim 2: DenseNet needs about half of ResNet's compute for the same accuracy",
        "At matched test accuracy, does a DenseNet need about half (at most 0.6x) the forward FLOPs of a ResNet?",
        "The same runs as claim 1, read against forward FLOPs per image (torch.utils.flop_counter, a "
        "multiply-add counting 2).",
        plan_families, analyze_claim2, short="Claim 2: half the compute"),
    Experiment(
        "claim3-overfitting", "Claim 3: DenseNet resists overfitting, especially with little training data",
        "With little training data, is DenseNet's train-test gap smaller than a ResNet's of similar size, "
        "without a lower test accuracy?",
        f"{DENSENET_PAIR.label} against {RESNET_PAIR.label} (about 100k parameters each), trained on the first "
        "1%, 5%, 20% and 100% of the training set; smaller sets get more epochs so that every run sees about "
        "the same number of images. The gap is the last epoch's running train accuracy minus the test accuracy.",
        plan_claim3, analyze_claim3, short="Claim 3: resists overfitting"),
    Experiment(
        "claim4-augmentation", "Claim 4: DenseNet generalizes better without data augmentation",
        "Without data augmentation, does ResNet lose more test accuracy than DenseNet?",
        f"{DENSENET_PAIR.label} and {RESNET_PAIR.label} on claim 3's little-data fractions (1% and 5%: the "
        "networks overfit most there, so augmentation has the most to prevent), with and without random crops "
        "and horizontal flips. The seed's setting is CIFAR-100; at cpu scale it is Fashion-MNIST "
        "(`--scale full --dataset cifar-100` runs the seed's).",
        plan_claim4, analyze_claim4, short="Claim 4: better without augmentation"),
]

"""The verdict rules, fixed before the runs: one function per experiment, from the figures to a verdict.

Each function takes the aggregated figures an analysis computes (cost ratios, 95% intervals of
differences from :mod:`densenet.experiments.stats`) and returns one of :data:`VERDICTS`. The
sentences in :data:`RULES` state the same rules for the report's method section; tests build the
figures by hand and check every branch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from densenet.experiments.stats import Interval

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive at this scale"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)

CLAIM1_LIMITS = (0.5, 0.75)  # DenseNet/ResNet parameters at matched accuracy: supported at most, failed at least
CLAIM2_LIMITS = (0.6, 0.8)  # the same for forward FLOPs
SMALL_DATA = 0.05  # claims 3 and 4: "little data" is at most this fraction of the training set
IDEA_D_LIMITS = (0.7, 0.5)  # narrow (k=12) over wide GFLOP/s: supported at least, failed at most
TRANSFER_TARGET = 0.95  # transfer: the MNIST test accuracy whose time to reach is reported (not judged)

RULES = {
    "claim1-params": f"supported if DenseNet needs at most {CLAIM1_LIMITS[0]}x ResNet's parameters at every matched "
    f"accuracy, not supported if it needs at least {CLAIM1_LIMITS[1]}x at every one, inconclusive otherwise or when "
    "the families reach no common accuracy.",
    "claim2-flops": f"the same with forward FLOPs and the limits {CLAIM2_LIMITS[0]}x and {CLAIM2_LIMITS[1]}x.",
    "claim3-overfitting": f"at every fraction of at most {SMALL_DATA:.0%}, supported if DenseNet's train-test gap "
    "minus ResNet's is below zero beyond its 95% interval and at no such fraction is DenseNet's test accuracy lower "
    "beyond it; not supported if its gap is larger beyond the interval at every such fraction, or its test accuracy "
    "lower beyond it at every one; inconclusive otherwise.",
    "claim4-augmentation": f"at each fraction of at most {SMALL_DATA:.0%}, the drop without augmentation is each "
    "network's augmented minus plain accuracy. A fraction is inconclusive unless augmentation helps at least one "
    "network beyond its interval; then it supports the claim if ResNet's drop is positive and exceeds DenseNet's "
    "beyond the interval of the difference, and refutes it if DenseNet's drop exceeds ResNet's beyond it. The verdict "
    "is supported (not supported) if every fraction supports (refutes) it, inconclusive otherwise.",
    "idea-a-bottleneck": "supported if at every depth the bottleneck cuts both parameters and FLOPs and costs no "
    "accuracy beyond the 95% interval; not supported if at every depth it fails to cut one of them or costs accuracy "
    "beyond it; inconclusive otherwise.",
    "idea-b-growth-doubling": "each doubling network is compared with constant growth read log-linearly (per seed) "
    "at its FLOPs and at its median measured speed; a network outside the constant family's speeds counts only if it "
    "is faster (slower) than the nearest constant network beyond the 95% interval of the log-speed ratio and more "
    "(less) accurate beyond the accuracy interval. Supported if every comparison made is more accurate beyond its "
    "interval, with at least one each way; not supported if every comparison at equal FLOPs, or every one at equal "
    "speed, is less accurate beyond it; inconclusive otherwise.",
    "idea-c-depth-width": "supported if the most accurate shape is balanced (neither extreme) and the best balanced "
    "shape beats both extremes beyond the 95% interval; not supported if an extreme is most accurate and beats the "
    "best balanced shape beyond it; inconclusive otherwise.",
    "idea-d-width-throughput": f"with the 95% interval of the narrow-over-wide GFLOP/s ratio on the fast path: "
    f"supported if its lower end is at least {IDEA_D_LIMITS[0]}, not supported if its upper end is at most "
    f"{IDEA_D_LIMITS[1]}, inconclusive otherwise.",
    "transfer": "at each MNIST training-set size, the pretrained arm's test accuracy minus the scratch arm's with its "
    "95% interval: supported if at every size but the largest the pretrained arm is more accurate beyond the interval "
    "and at the largest it is not less accurate beyond it; not supported if at no size it is more accurate beyond "
    f"it; inconclusive otherwise. The training time to {TRANSFER_TARGET:.0%} test accuracy is reported beside it "
    "and does not enter the verdict.",
}


def matched_verdict(ratios: Sequence[float], limits: tuple[float, float]) -> str:
    """Claims 1 and 2: DenseNet's cost over ResNet's at each matched accuracy, against (supported, failed) limits."""
    if not ratios:
        return INCONCLUSIVE
    if max(ratios) <= limits[0]:
        return SUPPORTED
    if min(ratios) >= limits[1]:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def claim3_verdict(gaps: Sequence[Interval], tests: Sequence[Interval]) -> str:
    """Claim 3: DenseNet minus ResNet, train-test gap and test accuracy, at each small fraction."""
    if not gaps:
        return INCONCLUSIVE
    if all(g.below for g in gaps) and not any(t.below for t in tests):
        return SUPPORTED
    if all(g.above for g in gaps) or all(t.below for t in tests):
        return NOT_SUPPORTED
    return INCONCLUSIVE


def claim4_fraction(helps: Sequence[Interval], resnet_drop: float, diff: Interval) -> str:
    """Claim 4 at one fraction: augmented minus plain per network, ResNet's drop, ResNet's drop minus DenseNet's."""
    if not any(h.above for h in helps):
        return INCONCLUSIVE
    if diff.above and resnet_drop > 0:
        return SUPPORTED
    if diff.below:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def unanimous(verdicts: Sequence[str]) -> str:
    """Supported or not supported when every part agrees on it; inconclusive otherwise (or with no parts)."""
    if verdicts and all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if verdicts and all(v == NOT_SUPPORTED for v in verdicts):
        return NOT_SUPPORTED
    return INCONCLUSIVE


def idea_a_verdict(depths: Sequence[tuple[bool, Interval]]) -> str:
    """Idea a: per depth, (does the bottleneck cut params and FLOPs, BC minus C test accuracy)."""
    return unanimous([SUPPORTED if cuts and not acc.below else NOT_SUPPORTED for cuts, acc in depths])


def idea_b_verdict(at_flops: dict[str, Interval], timed: dict[str, Interval]) -> str:
    """Idea b: doubling minus constant growth, at equal FLOPs and at equal measured speed, per network."""
    if at_flops and timed and all(iv.above for iv in at_flops.values()) and all(iv.above for iv in timed.values()):
        return SUPPORTED
    if (at_flops and all(iv.below for iv in at_flops.values())) or (timed and all(iv.below for iv in timed.values())):
        return NOT_SUPPORTED
    return INCONCLUSIVE


def idea_c_verdict(means: Sequence[float], versus: dict[tuple[int, int], Interval]) -> str:
    """Idea c: mean accuracy per shape (deepest first), and ``versus[(i, j)]`` = shape i minus shape j."""
    extremes = (0, len(means) - 1)
    best = max(range(len(means)), key=means.__getitem__)
    mid = max((i for i in range(len(means)) if i not in extremes), key=means.__getitem__)
    if best not in extremes and all(versus[(mid, e)].above for e in extremes):
        return SUPPORTED
    if best in extremes and versus[(best, mid)].above:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def idea_d_verdict(log_ratio: Interval) -> str:
    """Idea d: the 95% interval of log(narrow GFLOP/s) - log(wide GFLOP/s) on the fast path."""
    if math.exp(log_ratio.diff - log_ratio.half) >= IDEA_D_LIMITS[0]:
        return SUPPORTED
    if math.exp(log_ratio.diff + log_ratio.half) <= IDEA_D_LIMITS[1]:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def transfer_verdict(sizes: Sequence[Interval]) -> str:
    """Transfer: pretrained minus scratch test accuracy per training-set size, smallest first (at least two)."""
    if len(sizes) < 2:
        return INCONCLUSIVE
    if all(iv.above for iv in sizes[:-1]) and not sizes[-1].below:
        return SUPPORTED
    if not any(iv.above for iv in sizes):
        return NOT_SUPPORTED
    return INCONCLUSIVE

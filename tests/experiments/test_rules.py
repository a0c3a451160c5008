"""Every verdict rule, each outcome from figures built by hand (none taken from docs/evidence)."""

import statistics

import pytest

from densenet.experiments.analysis import matched_ratios
from densenet.experiments.claims import claim4_part
from densenet.experiments.idea_b import CONSTANT, DOUBLING, at_equal_cost, beyond_speed_range
from densenet.experiments.rules import (
    CLAIM1_LIMITS,
    CLAIM2_LIMITS,
    claim3_verdict,
    idea_a_verdict,
    idea_b_verdict,
    idea_c_verdict,
    idea_d_verdict,
    matched_verdict,
    transfer_verdict,
    unanimous,
)
from densenet.experiments.stats import by_seed, log_ratio

S, N, INC = "supported", "not supported", "inconclusive at this scale"


def seeds(*values):
    """Per-seed values as the analyses hold them: {seed: value}."""
    return dict(enumerate(values))


# Claims 1 and 2: DenseNet's (cost, accuracy) points against ResNet's; ratio = DenseNet's cost / ResNet's.
RESNET = [(100, 0.80), (1000, 0.90)]


@pytest.mark.parametrize(("limits", "scale", "verdict"), [
    (CLAIM1_LIMITS, 0.5, S), (CLAIM1_LIMITS, 0.8, N), (CLAIM1_LIMITS, 0.6, INC),
    (CLAIM2_LIMITS, 0.55, S), (CLAIM2_LIMITS, 0.9, N), (CLAIM2_LIMITS, 0.7, INC),
])
def test_matched_cost_rules(limits, scale, verdict):
    dense = [(scale * c, a) for c, a in RESNET]
    ratios = [m["ratio"] for m in matched_ratios(dense, RESNET)]
    assert ratios == pytest.approx([scale] * 3)
    assert matched_verdict(ratios, limits) == verdict


def test_matched_cost_rules_are_inconclusive_without_a_common_accuracy():
    assert matched_ratios([(10, 0.5), (20, 0.6)], RESNET) == []
    assert matched_verdict([], CLAIM1_LIMITS) == INC
    assert matched_verdict([0.4, 0.9], CLAIM1_LIMITS) == INC  # passes at one accuracy, fails at another


# Claim 3: DenseNet minus ResNet at each small fraction, train-test gap and test accuracy, paired by seed.
SMALLER = by_seed(seeds(0.10, 0.12, 0.11), seeds(0.20, 0.23, 0.20))  # -0.10 (sd 0.01): beyond the interval
LARGER = by_seed(seeds(0.20, 0.23, 0.20), seeds(0.10, 0.12, 0.11))
ALIKE = by_seed(seeds(0.10, 0.15, 0.20), seeds(0.15, 0.10, 0.20))  # mean 0, sd 0.05
LOWER = by_seed(seeds(0.70, 0.71, 0.72), seeds(0.80, 0.80, 0.81))  # DenseNet's test accuracy lower


@pytest.mark.parametrize(("gaps", "tests", "verdict"), [
    ([SMALLER, SMALLER], [ALIKE, ALIKE], S),
    ([LARGER, LARGER], [ALIKE, ALIKE], N),
    ([ALIKE, ALIKE], [LOWER, LOWER], N),
    ([SMALLER, ALIKE], [ALIKE, ALIKE], INC),
    ([SMALLER, SMALLER], [ALIKE, LOWER], INC),  # a smaller gap bought with lower accuracy does not count
])
def test_claim3_rule(gaps, tests, verdict):
    assert claim3_verdict(gaps, tests) == verdict


# Claim 4: per-seed test accuracy by (family, training images, augmented), one fraction of 600 images.
def claim4_values(dn_aug, dn_plain, rn_aug, rn_plain, n=600):
    return {("densenet", n, True): seeds(*dn_aug), ("densenet", n, False): seeds(*dn_plain),
            ("resnet", n, True): seeds(*rn_aug), ("resnet", n, False): seeds(*rn_plain)}


BASE = (0.80, 0.81, 0.82)
CLAIM4 = {
    # ResNet drops 6 pp (sd 1), DenseNet 1 pp: the difference is +5 pp, beyond its paired interval.
    S: claim4_values(BASE, (0.79, 0.80, 0.81), BASE, (0.74, 0.76, 0.75)),
    # The other way round: DenseNet drops more.
    N: claim4_values(BASE, (0.74, 0.76, 0.75), BASE, (0.79, 0.80, 0.81)),
    # Both drop about 5 pp: the difference is within its interval.
    INC: claim4_values(BASE, (0.74, 0.76, 0.77), BASE, (0.75, 0.77, 0.76)),
}


@pytest.mark.parametrize("verdict", [S, N, INC])
def test_claim4_rule_at_one_fraction(verdict):
    part = claim4_part(CLAIM4[verdict], 600)
    assert part["helps"]["resnet"].method == "paired t" and part["diff"].df == 2
    assert part["verdict"] == verdict
    assert unanimous([part["verdict"]]) == verdict


def test_claim4_is_inconclusive_where_augmentation_helps_neither_network():
    # ResNet "drops" 6 pp more than DenseNet only because augmentation hurts DenseNet by 5 pp.
    values = claim4_values((0.75, 0.77, 0.76), BASE, (0.81, 0.81, 0.83), (0.80, 0.81, 0.82))
    part = claim4_part(values, 600)
    assert part["diff"].above and not any(h.above for h in part["helps"].values())
    assert part["verdict"] == INC


def test_claim4_needs_every_fraction_to_agree():
    assert unanimous([S, S]) == S and unanimous([N, N]) == N
    assert unanimous([S, INC]) == INC and unanimous([S, N]) == INC and unanimous([]) == INC


# Idea a: per depth, (the bottleneck cuts params and FLOPs, BC minus C test accuracy).
SAME = by_seed(seeds(0.80, 0.82, 0.81), seeds(0.81, 0.81, 0.81))
WORSE = by_seed(seeds(0.75, 0.76, 0.77), seeds(0.81, 0.81, 0.82))


@pytest.mark.parametrize(("depths", "verdict"), [
    ([(True, SAME), (True, SAME)], S),
    ([(False, SAME), (True, WORSE)], N),
    ([(False, SAME), (True, SAME)], INC),
])
def test_idea_a_rule(depths, verdict):
    assert idea_a_verdict(depths) == verdict


# Idea b: per-seed accuracies of every network, costs and timing repeats built by hand.
def idea_b_values(gain):
    """Constant growth at 0.80, 0.82, 0.84 (±0.005 by seed); doubling ``gain`` + 0.001 above the constant line."""
    noise = (-0.005, 0.0, 0.005)
    out = {(a.label,): seeds(*(0.80 + 0.02 * i + e for e in noise)) for i, a in enumerate(CONSTANT)}
    for i, a in enumerate(DOUBLING):
        out[(a.label,)] = seeds(*(0.81 + 0.01 * i + gain + e for e in (0.006, -0.004, 0.001)))
    return out


FLOPS = {**{a.label: f for a, f in zip(CONSTANT, (10e6, 20e6, 40e6))},
         **{a.label: f for a, f in zip(DOUBLING, (14.1e6, 20e6, 28.3e6))}}


@pytest.mark.parametrize(("gain", "verdict"), [(0.03, S), (-0.03, N), (0.0, INC)])
def test_idea_b_rule_at_equal_cost(gain, verdict):
    found = at_equal_cost(idea_b_values(gain), FLOPS)
    assert sorted(found) == sorted(a.label for a in DOUBLING)
    assert found[DOUBLING[1].label].diff == pytest.approx(gain + 0.001, abs=1e-9)  # at k=12's FLOPs
    assert idea_b_verdict(found, found) == verdict


def test_idea_b_needs_both_comparisons_to_support_it():
    wins = at_equal_cost(idea_b_values(0.03), FLOPS)
    assert idea_b_verdict(wins, {}) == INC and idea_b_verdict({}, wins) == INC


REPEATS = {CONSTANT[0].label: [980.0, 1000.0, 1370.0], CONSTANT[1].label: [700.0, 710.0, 690.0],
           CONSTANT[2].label: [500.0, 505.0, 495.0]}


@pytest.mark.parametrize(("fast", "verdict"), [
    ([2000.0, 2010.0, 1990.0], S),  # 2x k=8's speed, beyond the interval, and more accurate: dominates
    ([1500.0, 1510.0, 1490.0], INC),  # 1.4x k=8's median is still within the interval of its 980-1370 repeats
    ([1030.0, 1040.0, 1050.0], INC),  # faster than k=8's median, not beyond its 980-1370 spread: not compared
])
def test_idea_b_faster_needs_a_speed_interval(fast, verdict):
    values = idea_b_values(0.0)
    values[(DOUBLING[0].label,)] = seeds(0.84, 0.85, 0.86)  # 5 pp above k=8 (0.795, 0.80, 0.805)
    reps = {**REPEATS, DOUBLING[0].label: fast, DOUBLING[1].label: [600.0] * 3, DOUBLING[2].label: [550.0] * 3}
    outside = beyond_speed_range(values, reps, compared={a.label: None for a in DOUBLING[1:]})
    assert list(outside) == [DOUBLING[0].label] and outside[DOUBLING[0].label]["acc"].above
    counted = {lab: o["acc"] for lab, o in outside.items() if o["kind"]}
    assert idea_b_verdict({DOUBLING[0].label: outside[DOUBLING[0].label]["acc"]}, counted) == verdict


# Idea c: per-seed accuracy of four shapes, deepest first.
def idea_c(*shapes):
    values = [seeds(*s) for s in shapes]
    versus = {(i, j): by_seed(values[i], values[j]) for i in range(4) for j in range(4) if i != j}
    return [statistics.fmean(v.values()) for v in values], versus


@pytest.mark.parametrize(("shapes", "verdict"), [
    (((0.80, 0.81, 0.82), (0.85, 0.86, 0.88), (0.83, 0.84, 0.84), (0.79, 0.80, 0.82)), S),
    (((0.88, 0.89, 0.90), (0.83, 0.84, 0.86), (0.82, 0.84, 0.84), (0.79, 0.80, 0.82)), N),
    (((0.80, 0.85, 0.82), (0.83, 0.81, 0.84), (0.82, 0.84, 0.80), (0.81, 0.80, 0.84)), INC),
])
def test_idea_c_rule(shapes, verdict):
    assert idea_c_verdict(*idea_c(*shapes)) == verdict


# Idea d: GFLOP/s repeats of the narrow (k=12) and the wide layers on the fast path.
WIDE = [10.0, 10.2, 9.8]


@pytest.mark.parametrize(("narrow", "verdict"), [
    ([8.0, 8.1, 7.9], S),  # 0.80x, interval within [0.78x, 0.82x]
    ([3.0, 3.1, 2.9], N),  # 0.30x
    ([6.0, 6.1, 5.9], INC),  # 0.60x: between the limits
    ([5.0, 8.0, 12.0], INC),  # 0.78x by geometric mean, but the repeats spread from 0.5x to 1.2x
])
def test_idea_d_rule(narrow, verdict):
    assert idea_d_verdict(log_ratio(narrow, WIDE)) == verdict


# Transfer: pretrained minus scratch test accuracy per MNIST size, smallest first, paired by seed.
HELPS = by_seed(seeds(0.70, 0.72, 0.71), seeds(0.60, 0.61, 0.62))  # +10 pp, sd 1 pp: beyond the interval
EVEN = by_seed(seeds(0.98, 0.99, 0.985), seeds(0.985, 0.985, 0.985))  # mean 0
HURTS = by_seed(seeds(0.95, 0.951, 0.952), seeds(0.98, 0.981, 0.982))  # -3 pp, no spread in the difference


@pytest.mark.parametrize(("sizes", "verdict"), [
    ([HELPS, HELPS, EVEN], S),  # helps with little data, costs nothing with more
    ([HELPS, HELPS, HELPS], S),
    ([HELPS, HELPS, HURTS], INC),  # helps with little data but hurts with the most
    ([HELPS, EVEN, EVEN], INC),  # helps only at the smallest size
    ([EVEN, EVEN, HELPS], INC),  # helps only with the most data
    ([EVEN, EVEN, EVEN], N),
    ([HURTS, EVEN, HURTS], N),
    ([HELPS], INC),  # one size cannot show "with little data"
    ([], INC),
])
def test_transfer_rule(sizes, verdict):
    assert HELPS.above and not EVEN.above and not EVEN.below and HURTS.below
    assert transfer_verdict(sizes) == verdict

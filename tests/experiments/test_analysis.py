"""The aggregation behind the verdicts: frontiers, matched-accuracy costs, means and per-seed values."""

import math

import pytest

from densenet.experiments.analysis import (
    accuracy_at_cost,
    aggregate,
    cost_at_accuracy,
    frontier,
    matched_ratios,
    mean_std,
    seed_values,
)


def test_frontier_drops_points_a_cheaper_point_beats():
    points = [(300, 0.85), (100, 0.80), (200, 0.78), (1000, 0.90)]
    assert frontier(points) == [(100, 0.80), (300, 0.85), (1000, 0.90)]


def test_cost_at_accuracy_is_log_linear_between_frontier_points_and_never_extrapolates():
    points = [(100, 0.80), (10_000, 0.90)]
    assert cost_at_accuracy(points, 0.85) == pytest.approx(1000)  # halfway in log space
    assert cost_at_accuracy(points, 0.80) == pytest.approx(100)
    assert cost_at_accuracy(points, 0.79) is None
    assert cost_at_accuracy(points, 0.91) is None


def test_accuracy_at_cost_interpolates_in_log_cost():
    points = [(10, 0.5), (1000, 0.7)]
    assert accuracy_at_cost(points, 100) == pytest.approx(0.6)
    assert accuracy_at_cost(points, 5) is None and accuracy_at_cost(points, 2000) is None


def test_matched_ratios_find_a_family_at_half_the_cost():
    cheap = [(50, 0.80), (500, 0.90)]
    dear = [(100, 0.79), (100, 0.80), (1000, 0.90), (2000, 0.91)]
    ratios = matched_ratios(cheap, dear)
    assert [round(m["accuracy"], 3) for m in ratios] == [0.80, 0.85, 0.90]
    assert all(m["ratio"] == pytest.approx(0.5) for m in ratios)


def test_matched_ratios_are_empty_when_accuracy_ranges_do_not_overlap():
    assert matched_ratios([(10, 0.5), (20, 0.6)], [(10, 0.7), (20, 0.8)]) == []


def test_seed_values_key_each_metric_by_group_then_seed():
    records = [{"family": f, "augment": a, "seed": s, "test_acc": 0.1 * s + (0.5 if a else 0.0)}
               for f in ("densenet", "resnet") for a in (True, False) for s in (2, 0, 1)]
    values = seed_values(records, "test_acc", ["family", "augment"])
    assert sorted(values) == [("densenet", False), ("densenet", True), ("resnet", False), ("resnet", True)]
    assert values[("resnet", True)] == {2: pytest.approx(0.7), 0: 0.5, 1: pytest.approx(0.6)}


def test_aggregate_means_and_sample_std_per_group_in_first_seen_order():
    records = [{"label": "b", "family": "resnet", "params": 2, "flops": 20, "test_acc": x, "train_acc": 1.0,
                "gap": 1.0 - x} for x in (0.7, 0.8, 0.9)]
    records.insert(1, {"label": "a", "family": "densenet", "params": 1, "flops": 10, "test_acc": 0.5,
                       "train_acc": 0.6, "gap": 0.1})
    rows = aggregate(records, ["label"])
    assert [r["label"] for r in rows] == ["b", "a"]
    b = rows[0]
    assert b["n"] == 3 and b["family"] == "resnet" and b["params"] == 2
    assert b["test_acc_mean"] == pytest.approx(0.8) and b["test_acc_std"] == pytest.approx(0.1)
    assert rows[1]["test_acc_std"] == 0.0
    assert mean_std([1.0, 3.0]) == pytest.approx((2.0, math.sqrt(2)))

"""The intervals behind the verdicts, against textbook quantiles and hand-computed examples."""

import math

import pytest

from densenet.experiments.stats import Interval, by_seed, log_ratio, paired, ratio_text, t975, welch

# Two-sided 95% quantiles of Student's t, from any statistics textbook's table.
TEXTBOOK = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 10: 2.228, 20: 2.086, 30: 2.042, 120: 1.980}


@pytest.mark.parametrize("df", sorted(TEXTBOOK))
def test_t975_matches_the_textbook_table(df):
    assert t975(df) == pytest.approx(TEXTBOOK[df], abs=6e-4)


def test_t975_between_whole_degrees_of_freedom_and_towards_the_normal():
    assert TEXTBOOK[3] < t975(2.5) < TEXTBOOK[2]
    assert t975(1e7) == pytest.approx(1.95996, abs=1e-4)
    with pytest.raises(ValueError, match="at least 1 degree"):
        t975(0.5)


def test_paired_interval_is_t_with_n_minus_1_df_on_the_differences():
    iv = paired([0.80, 0.83, 0.85], [0.78, 0.80, 0.81])  # differences 0.02, 0.03, 0.04: mean 0.03, sd 0.01
    assert iv.method == "paired t" and iv.df == 2
    assert iv.diff == pytest.approx(0.03)
    assert iv.half == pytest.approx(4.303 * 0.01 / math.sqrt(3), rel=1e-3)
    assert iv.above and not iv.below


def test_welch_interval_uses_welch_satterthwaite_df():
    iv = welch([1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0])  # variances 1 and 0: df = n_a - 1 = 2
    assert iv.df == pytest.approx(2.0) and iv.diff == pytest.approx(1.0)
    assert iv.half == pytest.approx(4.303 / math.sqrt(3), rel=1e-3)
    equal = welch([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])  # equal variances and sizes: df = 2n - 2 = 4
    assert equal.df == pytest.approx(4.0) and equal.half == pytest.approx(2.776 * math.sqrt(2 / 3), rel=1e-3)
    assert not equal.above and not equal.below


def test_by_seed_pairs_matching_seeds_and_falls_back_to_welch():
    assert by_seed({0: 0.8, 1: 0.9, 2: 0.7}, {2: 0.6, 0: 0.7, 1: 0.8}).method == "paired t"
    assert by_seed({0: 0.8, 1: 0.9, 2: 0.7}, {0: 0.7, 1: 0.8, 3: 0.6}).method == "Welch t"


def test_a_single_value_gives_no_interval_and_decides_nothing():
    iv = paired([0.9], [0.1])
    assert iv.half == math.inf and not iv.above and not iv.below


def test_log_ratio_reads_as_a_speed_ratio_with_bounds():
    iv = log_ratio([200.0, 200.0, 200.0], [100.0, 100.0, 100.0])
    assert math.exp(iv.diff) == pytest.approx(2.0) and iv.half == 0.0 and iv.above
    assert ratio_text(Interval(math.log(2.0), math.log(1.25), 4, "Welch t")) == "2.00x (95% 1.60x to 2.50x)"

"""Statistics checked against hand-computed values."""

import math

import pytest

from xpubench.measure import stats
from xpubench.measure.median_ci import median_ci


def test_summary_of_fixed_samples():
    xs = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 6.0, 8.0, 7.0, 9.0]
    s = stats.summarize(xs)
    assert s.median == 5.5
    assert s.mean == 5.5
    assert s.min == 1.0 and s.max == 10.0
    # numpy-style linear interpolation: q1 at position 2.25 -> 3.25, q3 at 6.75 -> 7.75
    assert s.q1 == pytest.approx(3.25)
    assert s.q3 == pytest.approx(7.75)
    assert s.iqr == pytest.approx(4.5)
    assert s.stdev == pytest.approx(math.sqrt(sum((x - 5.5) ** 2 for x in xs) / 9))
    # the CI is the autocorrelation-aware one over the rounds in the order taken
    c = median_ci(xs)
    assert s.ci95 == (c.low, c.high) and s.confidence == c.confidence
    assert s.n_eff == pytest.approx(c.n_eff, abs=0.01) and s.tau == pytest.approx(c.tau, abs=0.001)
    assert s.rounds == 10
    assert s.rel_ci == pytest.approx(c.relative_half_width(5.5))


def test_independent_rounds_keep_the_exact_order_statistic_interval():
    xs = [1.0 + 0.01 * ((i * 7919) % 101) / 101 for i in range(100)]  # a shuffled ramp: no autocorrelation
    s = stats.summarize(xs)
    lo, hi = stats.median_ci_ranks(100)
    ordered = sorted(xs)
    assert s.confidence == 0.95
    assert ordered[lo - 3] <= s.ci95[0] <= ordered[lo] and ordered[hi] <= s.ci95[1] <= ordered[hi + 3]


def test_significant_drift_needs_non_overlapping_thirds():
    steady = [1.0 + 0.01 * ((i * 37) % 11) / 11 for i in range(60)]
    assert not stats.significant_drift(steady)
    assert stats.significant_drift([1.0 + 0.001 * (i % 3) for i in range(30)] + [1.1 + 0.001 * (i % 3) for i in range(30)])
    assert not stats.significant_drift([1.0, 2.0] * 3)  # too few rounds to say


@pytest.mark.parametrize("n,expected", [(5, (0, 4)), (6, (0, 5)), (10, (1, 8)), (20, (5, 14)), (100, (39, 60))])
def test_median_ci_ranks_match_binomial_tables(n, expected):
    # Reference ranks from the exact binomial (e.g. n=20 -> x(6)..x(15), n=100 -> x(40)..x(61)).
    assert stats.median_ci_ranks(n) == expected


def test_large_n_uses_normal_approximation_symmetrically():
    lo, hi = stats.median_ci_ranks(10_000)
    assert 4890 <= lo <= 4905 and 5095 <= hi <= 5110


def test_drift_compares_first_and_last_third():
    xs = [1.0] * 10 + [1.1] * 10 + [1.2] * 10
    assert stats.drift(xs) == pytest.approx(0.2)
    assert stats.drift([1.0] * 5) is None


def test_empty_samples_rejected():
    with pytest.raises(ValueError):
        stats.summarize([])

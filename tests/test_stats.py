"""Statistics checked against hand-computed values."""

import math

import pytest

from xpubench.measure import stats


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
    # n=10, 95%: order statistics 2 and 9 (1-based) bound the median
    assert s.ci95 == (2.0, 9.0)
    assert s.rounds == 10
    assert s.rel_ci == pytest.approx(3.5 / 5.5)


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

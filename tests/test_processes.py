"""Process-level figures: the geometric mean and t interval of process medians, Welch's test on logs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from xpubench.measure.processes import compare_processes, process_level


def test_process_level_is_the_geometric_mean_with_a_t_interval():
    pl = process_level([1.0, 2.0, 4.0])
    assert pl.estimate == pytest.approx(2.0)
    sd = math.log(2.0)
    half = sps.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert pl.ci95 == pytest.approx((2.0 * math.exp(-half), 2.0 * math.exp(half)))
    assert pl.processes == 3 and pl.spread == pytest.approx(sd)


def test_one_process_is_not_a_process_level_figure():
    with pytest.raises(ValueError):
        process_level([1.0])


def test_the_interval_covers_the_true_figure_under_process_noise():
    """Random-effects simulation: each process has its own level (5% spread) plus round noise."""
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(2000):
        medians = np.exp(rng.normal(0.0, 0.05, size=3))
        lo, hi = process_level(medians).ci95
        hits += lo <= 1.0 <= hi
    assert 0.93 <= hits / 2000 <= 0.97


def test_welch_on_logs_matches_scipy():
    base, new = [1.0, 1.05, 0.97], [1.12, 1.09, 1.15, 1.1]
    t = compare_processes(base, new)
    ref = sps.ttest_ind(np.log(new), np.log(base), equal_var=False)
    assert t.p_value == pytest.approx(ref.pvalue)
    assert t.ratio == pytest.approx(math.exp(np.mean(np.log(new)) - np.mean(np.log(base))))
    assert t.ci95[0] < t.ratio < t.ci95[1]


def test_identical_sides_are_no_change():
    t = compare_processes([1.0, 1.0], [1.0, 1.0])
    assert t.ratio == 1.0 and t.p_value == 1.0

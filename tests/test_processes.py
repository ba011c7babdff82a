"""Process-level figures: the geometric trimmed mean and trimmed t interval of process medians,
Yuen's test on logs."""

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


def test_yuen_on_logs_matches_scipy():
    base, new = [1.0, 1.05, 0.97, 1.02, 0.99, 3.1], [1.12, 1.09, 1.15, 1.1, 1.13, 1.11, 1.08]
    t = compare_processes(base, new)
    ref = sps.ttest_ind(np.log(new), np.log(base), equal_var=False, trim=0.2)
    assert t.p_value == pytest.approx(ref.pvalue) and t.dof == pytest.approx(ref.df)
    ci = ref.confidence_interval(0.95)
    assert t.ci95 == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert t.ratio == pytest.approx(math.exp(sps.trim_mean(np.log(new), 0.2) - sps.trim_mean(np.log(base), 0.2)))
    assert t.ci95[0] < t.ratio < t.ci95[1]


def test_with_few_processes_nothing_is_trimmed():
    pl = process_level([1.0, 2.0, 4.0, 8.0])
    assert pl.estimate == pytest.approx(math.sqrt(8.0))
    base, new = [1.0, 1.05, 0.97], [1.12, 1.09, 1.15, 1.1]
    ref = sps.ttest_ind(np.log(new), np.log(base), equal_var=False)
    assert compare_processes(base, new).p_value == pytest.approx(ref.pvalue)


def test_one_slow_process_does_not_hide_a_change():
    """12 + 12 processes as the LayerNorm cases measured them: within 10%, and one process 4x slower."""
    rng = np.random.default_rng(5)
    base = list(np.exp(rng.normal(0.0, 0.07, 12)))
    new = list(1.2 * np.exp(rng.normal(0.0, 0.07, 12)))
    base[3] *= 4.0
    t = compare_processes(base, new)
    assert t.p_value < 0.01 and 1.1 < t.ratio < 1.3
    welch = sps.ttest_ind(np.log(new), np.log(base), equal_var=False)
    assert welch.pvalue > 0.05  # what the plain mean made of it
    assert process_level(base).estimate < 1.15  # nor does it move the figure much


@pytest.mark.parametrize("k", [5, 12, 25])
def test_false_alarms_stay_at_alpha_when_some_processes_are_slow(k):
    """Seeded A/A simulation: both sides from one heavy-tailed law (10% of processes 2-5x slower)."""
    rng = np.random.default_rng(k)

    def side():
        x = np.exp(rng.normal(0.0, 0.08, k))
        slow = rng.random(k) < 0.1
        return list(x * np.where(slow, rng.uniform(2, 5, k), 1.0))

    alarms = sum(compare_processes(side(), side()).p_value < 0.05 for _ in range(2000))
    assert alarms / 2000 <= 0.065


def test_the_trimmed_interval_covers_the_true_figure_with_slow_processes():
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(2000):
        x = np.exp(rng.normal(0.0, 0.05, 12))
        x[rng.random(12) < 0.08] *= 3.0
        lo, hi = process_level(x).ci95
        hits += lo <= 1.0 <= hi
    assert hits / 2000 >= 0.9


def test_identical_sides_are_no_change():
    t = compare_processes([1.0, 1.0], [1.0, 1.0])
    assert t.ratio == 1.0 and t.p_value == 1.0
    assert t.se_log == 0.0 and math.isfinite(t.dof)  # a detectable change of 0, not nan

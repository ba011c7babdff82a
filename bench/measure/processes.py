"""One figure from several fresh processes: the spread between processes, not only within one.

On a shared VM two processes of the same build differ far more than the rounds of
one process do (GroupNorm forward+backward measured 1.35 to 5.39 ms per step in six
processes whose own rounds agreed within 3%). A measurement repeated in K fresh
processes is therefore summarised at the process level, on the logarithms of the K
process medians, which holds whatever the within-process CIs claim. With one
process, the within-process figures are all there is and are kept.

Where BASE's and NEW's processes measured in pairs taking turns (the confirmation,
xpubench.run.paired), the test is on the pairs' log ratios instead
(:func:`compare_paired`).

The figures are 20%-trimmed (Yuen): the central figure is the geometric trimmed mean
and the test is Welch's on trimmed means with winsorized variances. The spread
between processes is not normal: most processes of a case agree within about 10%,
and now and then one runs 2-5x slower (12 + 12 processes of the four LayerNorm cases:
log sd 0.35-0.48 with such a process, 0.07-0.10 without), so one slow process made a
plain mean and sd blind to a 20% change that 12 + 12 processes show plainly
(Welch p 0.06-0.42, Yuen p 0.006-0.01; docs/verdicts.md). With K <= 4 nothing is
trimmed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

from scipy import stats as sps

TRIM = 0.2  # share trimmed from each end of the log process medians (Yuen's usual 20%)


@dataclass(frozen=True)
class ProcessLevel:
    """The process-level summary of K >= 2 process medians (seconds per step)."""

    estimate: float  # geometric trimmed mean of the process medians
    ci95: tuple[float, float]
    processes: int
    spread: float  # standard deviation of log(process median): about the relative spread between processes

    @property
    def rel_ci(self) -> float:
        lo, hi = self.ci95
        return max(self.estimate - lo, hi - self.estimate) / self.estimate


def trimmed_mean_se(logs: Sequence[float], trim: float = TRIM) -> tuple[float, float, int]:
    """The ``trim``-trimmed mean of ``logs``, its standard error from the winsorized variance, and
    its h - 1 degrees of freedom (as scipy's ``ttest_ind(trim=)`` computes them per side: g =
    floor(trim * k) from each end, h = k - 2g); needs k >= 2 values."""
    k = len(logs)
    centre = float(sps.trim_mean(logs, trim))
    g = int(trim * k)
    h = k - 2 * g
    xs = sorted(logs)
    wins = [min(max(x, xs[g]), xs[k - 1 - g]) for x in logs]
    se = math.sqrt((k - 1) * statistics.variance(wins) / (h * (h - 1)))
    return centre, se, h - 1


def process_level(medians: Sequence[float], confidence: float = 0.95) -> ProcessLevel:
    """Geometric trimmed mean of the process medians and its trimmed t interval (needs K >= 2
    positive medians); ``spread`` is the plain sd of their logs, outliers included."""
    logs = [math.log(m) for m in medians if m and m > 0]
    k = len(logs)
    if k < 2:
        raise ValueError("a process-level figure needs at least two processes")
    mean = sum(logs) / k
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (k - 1))
    centre, se, dof = trimmed_mean_se(logs)
    half = float(sps.t.ppf(0.5 + confidence / 2, dof)) * se
    return ProcessLevel(math.exp(centre), (math.exp(centre - half), math.exp(centre + half)), k, sd)


@dataclass(frozen=True)
class ProcessTest:
    """A change between two sets of process medians: ratio new/base, its CI and a p-value."""

    ratio: float
    ci95: tuple[float, float]
    p_value: float
    base_processes: int
    new_processes: int
    se_log: float  # standard error of the log ratio (Yuen's)
    dof: float  # its degrees of freedom (Welch-Satterthwaite on the trimmed samples)
    left_out: int = 0  # pairs at a level of their own, not tested (compare_paired)
    far_off: float = 0.0  # the ratio off the pairs' median beyond which a pair was left out


def compare_processes(base: Sequence[float], new: Sequence[float], confidence: float = 0.95) -> ProcessTest:
    """Yuen's test (Welch's on 20%-trimmed means, scipy) on log process medians; each side needs
    >= 2 processes. Logs make the test about ratios; trimming keeps one slow process from
    hiding a change (module docstring)."""
    lb = [math.log(m) for m in base if m and m > 0]
    ln = [math.log(m) for m in new if m and m > 0]
    if len(lb) < 2 or len(ln) < 2:
        raise ValueError("a process-level test needs at least two processes on each side")
    diff = float(sps.trim_mean(ln, TRIM) - sps.trim_mean(lb, TRIM))
    if max(lb) == min(lb) and max(ln) == min(ln):  # no spread on either side: nothing to test
        p = 0.0 if diff != 0 else 1.0
        return ProcessTest(math.exp(diff), (math.exp(diff), math.exp(diff)), p, len(lb), len(ln), 0.0,
                           len(lb) + len(ln) - 2)
    res = sps.ttest_ind(ln, lb, equal_var=False, trim=TRIM)
    ci = res.confidence_interval(confidence)
    dof = float(res.df)
    se = (float(ci.high) - float(ci.low)) / (2 * float(sps.t.ppf(0.5 + confidence / 2, dof)))
    return ProcessTest(math.exp(diff), (math.exp(float(ci.low)), math.exp(float(ci.high))), float(res.pvalue),
                       len(lb), len(ln), se, dof)


# Below this many pairs the paired test trims nothing: a 20% trim of 5 pairs leaves 2 degrees
# of freedom, too few to decide at the confirmation's alpha per look (a pair far off is left
# out before, by far_off_pairs).
PAIRED_TRIM_FROM = 10
# A pair at a level of its own. On a 2-core VM one process of a pair now and then runs 2-5x
# slower, or 2x faster, for its whole life: in one confirmation of JAX LayerNorm forward, 6 of
# 19 pairs' log ratios lay at +-0.86..1.34 while the other 13 lay within -0.05..+0.15, and
# those 6 (past what a 20% trim removes) made an injected 10% read "cannot resolve < 166%".
# Such a pair says nothing about the change, so it is left out where its log ratio lies
# farther from the pairs' median than log(FAR_OFF), or than FAR_OFF_SPREADS robust standard
# deviations (1.4826 MAD) where the pairs spread wider. The cut is centred on the median, so
# a real change moves it along; at most FAR_OFF_SHARE of the pairs go, the farthest first.
# Seeded simulation (log ratio sd 0.06, 0-30% of pairs shifted by +-0.7..1.4, 5-20 pairs): the
# false-alarm rate at alpha 0.005 stayed 0.002-0.007, and the power for a 10% change rose from
# 0.03-0.89 to 0.08-0.96 (tests/test_paired.py).
FAR_OFF = 1.5
FAR_OFF_SPREADS = 4.0
FAR_OFF_FROM = 5  # fewer pairs give no median to trust
FAR_OFF_SHARE = 1 / 3  # the most left out: with no such cap, 5 pairs at 30% shifted gave 2.5x alpha


def far_off_pairs(logs: Sequence[float]) -> tuple[list[bool], float]:
    """Which of the pairs' log ratios lie at a level of their own (see FAR_OFF), and the cut
    (as a ratio off the pairs' median); none from fewer than FAR_OFF_FROM pairs."""
    if len(logs) < FAR_OFF_FROM:
        return [False] * len(logs), 0.0
    centre = statistics.median(logs)
    mad = statistics.median(abs(x - centre) for x in logs)
    cut = max(math.log(FAR_OFF), FAR_OFF_SPREADS * 1.4826 * mad)
    # the farthest first, at most FAR_OFF_SHARE of the pairs
    farthest = sorted(range(len(logs)), key=lambda i: -abs(logs[i] - centre))[:int(FAR_OFF_SHARE * len(logs))]
    out = {i for i in farthest if abs(logs[i] - centre) > cut}
    return [i in out for i in range(len(logs))], math.exp(cut)


def compare_paired(pairs: Sequence[tuple[float, float]], confidence: float = 0.95) -> ProcessTest:
    """A change from K pairs of (base, new) process medians whose rounds took turns
    (xpubench.run.paired): the t test of the mean log ratio over the pairs, leaving out
    pairs at a level of their own (:func:`far_off_pairs`), then 20%-trimmed from
    ``PAIRED_TRIM_FROM`` pairs on. What the two processes of a pair shared (the machine's
    seconds) cancels in their ratio; what remains is each process's own level."""
    every = [math.log(n / b) for b, n in pairs if b and n and b > 0 and n > 0]
    if len(every) < 2:
        raise ValueError("a paired test needs at least two pairs")
    far, cut = far_off_pairs(every)
    logs = [x for x, f in zip(every, far) if not f]
    k, left_out = len(logs), len(every) - len(logs)
    centre, se, dof = trimmed_mean_se(logs, TRIM if k >= PAIRED_TRIM_FROM else 0.0)
    if se == 0:  # every pair gave the same ratio: nothing to test
        p = 0.0 if centre != 0 else 1.0
        return ProcessTest(math.exp(centre), (math.exp(centre), math.exp(centre)), p, k, k, 0.0, dof, left_out, cut)
    p = float(2 * sps.t.sf(abs(centre) / se, dof))
    half = float(sps.t.ppf(0.5 + confidence / 2, dof)) * se
    return ProcessTest(math.exp(centre), (math.exp(centre - half), math.exp(centre + half)), p, k, k, se, dof,
                       left_out, cut)

"""One figure from several fresh processes: the spread between processes, not only within one.

On a shared VM two processes of the same build differ far more than the rounds of
one process do (GroupNorm forward+backward measured 1.35 to 5.39 ms per step in six
processes whose own rounds agreed within 3%). A measurement repeated in K fresh
processes is therefore summarised at the process level: the central figure is the
geometric mean of the K process medians, and its CI is a t interval over their
logarithms (K - 1 degrees of freedom), which holds whatever the within-process CIs
claim. With one process, the within-process figures are all there is and are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy import stats as sps


@dataclass(frozen=True)
class ProcessLevel:
    """The process-level summary of K >= 2 process medians (seconds per step)."""

    estimate: float  # geometric mean of the process medians
    ci95: tuple[float, float]
    processes: int
    spread: float  # standard deviation of log(process median): about the relative spread between processes

    @property
    def rel_ci(self) -> float:
        lo, hi = self.ci95
        return max(self.estimate - lo, hi - self.estimate) / self.estimate


def process_level(medians: Sequence[float], confidence: float = 0.95) -> ProcessLevel:
    """Geometric mean and t interval of the log process medians (needs K >= 2 positive medians)."""
    logs = [math.log(m) for m in medians if m and m > 0]
    k = len(logs)
    if k < 2:
        raise ValueError("a process-level figure needs at least two processes")
    mean = sum(logs) / k
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (k - 1))
    half = float(sps.t.ppf(0.5 + confidence / 2, k - 1)) * sd / math.sqrt(k)
    return ProcessLevel(math.exp(mean), (math.exp(mean - half), math.exp(mean + half)), k, sd)


@dataclass(frozen=True)
class ProcessTest:
    """A change between two sets of process medians: ratio new/base, its CI and a p-value."""

    ratio: float
    ci95: tuple[float, float]
    p_value: float
    base_processes: int
    new_processes: int


def compare_processes(base: Sequence[float], new: Sequence[float], confidence: float = 0.95) -> ProcessTest:
    """Welch's t test on log process medians (each side needs >= 2 processes).

    Logs make the test about ratios, and a process median is close to normal across
    processes even when rounds within one are skewed.
    """
    lb = [math.log(m) for m in base if m and m > 0]
    ln = [math.log(m) for m in new if m and m > 0]
    if len(lb) < 2 or len(ln) < 2:
        raise ValueError("a process-level test needs at least two processes on each side")
    mb, mn = sum(lb) / len(lb), sum(ln) / len(ln)
    vb = sum((x - mb) ** 2 for x in lb) / (len(lb) - 1) / len(lb)
    vn = sum((x - mn) ** 2 for x in ln) / (len(ln) - 1) / len(ln)
    diff = mn - mb
    se = math.sqrt(vb + vn)
    if se == 0:
        p = 0.0 if diff != 0 else 1.0
        return ProcessTest(math.exp(diff), (math.exp(diff), math.exp(diff)), p, len(lb), len(ln))
    # Welch-Satterthwaite degrees of freedom
    dof = (vb + vn) ** 2 / (vb**2 / (len(lb) - 1) + vn**2 / (len(ln) - 1))
    t = diff / se
    p = float(2 * sps.t.sf(abs(t), dof))
    half = float(sps.t.ppf(0.5 + confidence / 2, dof)) * se
    return ProcessTest(math.exp(diff), (math.exp(diff - half), math.exp(diff + half)), p, len(lb), len(ln))

"""Statistics over per-round samples (seconds per step).

The confidence interval of the median is distribution-free: it comes from order
statistics and the binomial distribution, so it holds for the skewed, heavy-tailed
timings that real machines produce; the rounds of one process are autocorrelated,
so the number of rounds it counts is the effective one
(:func:`xpubench.measure.median_ci.median_ci`), and it says the confidence it
reaches when rounds are too few for 95%.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist


def quantile(sorted_xs: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method) of sorted data."""
    if not sorted_xs:
        raise ValueError("quantile of no samples")
    pos = (len(sorted_xs) - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    frac = pos - lo
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * frac


def binomial_lower_rank(m: int, confidence: float = 0.95) -> int:
    """Largest k with P(Binom(m, 1/2) < k) <= alpha/2: the median's CI is [x_(k), x_(m-k+1)]
    (1-based); k = 0 when even [min, max] misses the requested confidence.

    Exact for m <= 1000, the normal approximation above.
    """
    alpha = 1.0 - confidence
    if m > 1000:
        z = NormalDist().inv_cdf(1 - alpha / 2)
        return max(0, math.floor(m / 2 - z * math.sqrt(m) / 2))
    cdf = 0.0
    k = 0
    total = 2.0**m
    for i in range(m):
        nxt = cdf + math.comb(m, i) / total
        if nxt > alpha / 2:
            break
        cdf = nxt
        k = i + 1
    return k


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based ranks (lo, hi) of the order statistics bounding the median's CI.

    Exact binomial for n <= 1000, normal approximation above. With too few samples
    for the requested confidence the full range [0, n-1] is returned (conservative).
    """
    if n <= 0:
        raise ValueError("no samples")
    alpha = 1.0 - confidence
    if n > 1000:
        z = NormalDist().inv_cdf(1 - alpha / 2)
        half = z * math.sqrt(n) / 2
        lo = max(0, math.floor(n / 2 - half) - 1)
        hi = min(n - 1, math.ceil(n / 2 + half))
        return lo, hi
    # CI = [x_(k), x_(n-k+1)] (1-based) for the binomial lower rank k
    k = binomial_lower_rank(n, confidence)
    if k == 0:
        return 0, n - 1
    return k - 1, n - k


@dataclass
class TimeStats:
    median: float
    mean: float
    min: float
    max: float
    stdev: float
    q1: float
    q3: float
    iqr: float
    ci95: tuple[float, float]
    rounds: int
    # half-width of the CI relative to the median: the stopping criterion's number
    rel_ci: float = field(default=0.0)
    confidence: float = 0.95  # what ``ci95`` reaches: below 0.95 only when rounds are too few
    n_eff: float | None = None  # rounds counted as independent ones (rounds / tau)
    tau: float | None = None  # integrated autocorrelation time of the rounds (1 = independent)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        return d


def summarize(samples: list[float], confidence: float = 0.95) -> TimeStats:
    if not samples:
        raise ValueError("cannot summarize zero samples")
    xs = sorted(samples)
    n = len(xs)
    med = quantile(xs, 0.5)
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
    q1, q3 = quantile(xs, 0.25), quantile(xs, 0.75)
    from xpubench.measure.median_ci import median_ci  # numpy: loaded when a run measures, not for --help

    ci = median_ci(samples, confidence)  # in the order taken: it reads their autocorrelation
    rel = ci.relative_half_width(med)
    return TimeStats(
        median=med, mean=mean, min=xs[0], max=xs[-1], stdev=math.sqrt(var),
        q1=q1, q3=q3, iqr=q3 - q1, ci95=(ci.low, ci.high), rounds=n, rel_ci=rel,
        confidence=ci.confidence, n_eff=round(ci.n_eff, 2), tau=round(ci.tau, 3),
    )


def relative_median_ci(samples: list[float], confidence: float = 0.95) -> float:
    """Half-width of the independent-rounds CI of the median, relative to it (cheap: one sort).

    A lower bound on the autocorrelation-aware one (which counts fewer effective
    rounds): the stop rule skips the costly CI while this one is still too wide.
    """
    xs = sorted(samples)
    med = quantile(xs, 0.5)
    lo_r, hi_r = median_ci_ranks(len(xs), confidence)
    return max(med - xs[lo_r], xs[hi_r] - med) / med if med > 0 else math.inf


def drift(samples: list[float]) -> float | None:
    """Relative change of the median from the first third of rounds to the last third.

    Machines drift, not only jitter: a tight CI inside one window can hide it.
    """
    n = len(samples)
    if n < 6:
        return None
    third = n // 3
    early = sorted(samples[:third])
    late = sorted(samples[-third:])
    e = quantile(early, 0.5)
    return (quantile(late, 0.5) - e) / e if e > 0 else None


def significant_drift(samples: list[float], confidence: float = 0.95) -> bool:
    """The first and last thirds of the rounds have medians whose CIs do not overlap.

    Each third's CI is the autocorrelation-aware one, so a slow stretch that lasts
    a few rounds is not taken for drift; a machine that changed state is.
    """
    from xpubench.measure.median_ci import median_ci

    n = len(samples)
    if n < 12:
        return False
    third = n // 3
    early, late = median_ci(samples[:third], confidence), median_ci(samples[-third:], confidence)
    return early.high < late.low or late.high < early.low

"""The confidence interval of a median over rounds that are not independent.

Rounds of one process are autocorrelated (a slow stretch of the machine lasts several
rounds), so the order-statistic CI that assumes independent rounds is too narrow:
simulated at lag-1 autocorrelation 0.6 it covers about 72% instead of 95%. What the
sample median's spread depends on is the autocorrelation of the indicator series
``x_t <= median`` (the median's Bahadur representation), so this module estimates the
integrated autocorrelation time ``tau`` of that indicator (Geyer's initial positive
sequence), treats the ``n`` rounds as ``n / tau`` independent ones, and picks the
order statistics from the binomial distribution for that effective count. With too
few effective rounds for the requested confidence the interval is ``[min, max]`` and
the confidence it does reach is reported (never a "95%" that is really 75%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from xpubench.measure.stats import binomial_lower_rank


@dataclass(frozen=True)
class MedianCI:
    """The interval, the effective number of independent rounds, and the confidence reached."""

    low: float
    high: float
    n: int
    n_eff: float
    tau: float  # integrated autocorrelation time of the indicator (1 = independent rounds)
    confidence: float  # what the interval reaches (below the requested level only when rounds are too few)

    def relative_half_width(self, median: float) -> float:
        if median <= 0:
            return math.inf
        return max(median - self.low, self.high - median) / median


def autocorrelations(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelations rho_0..rho_max_lag of a series (FFT, biased estimator)."""
    n = len(x)
    centred = x - x.mean()
    var = float(centred @ centred) / n
    if var <= 0 or n < 2:
        return np.zeros(max_lag + 1)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(centred, size)
    acov = np.fft.irfft(f * np.conjugate(f), size)[: max_lag + 1] / n
    return acov / acov[0]


def normal_scores(x: np.ndarray) -> np.ndarray:
    """Rank-based normal scores: the series' dependence without its outliers' weight."""
    n = len(x)
    # tied rounds (a coarse clock, a constant fake) share their average rank: ordinal
    # ranks would turn a run of equal values into a false trend (numpy, not scipy.stats:
    # its import costs a worker about a second)
    _, where, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[where.reshape(-1)]
    dist = NormalDist()
    return np.array([dist.inv_cdf((r - 0.5) / n) for r in ranks])


def integrated_autocorrelation_time(x: np.ndarray, *, indicator_of_median: bool = False) -> float:
    """Geyer's initial positive sequence estimate of 1 + 2 * sum(rho_k), at least 1.

    Pairs ``rho_{2m} + rho_{2m+1}`` are summed while they stay positive, and each
    pair is capped by the one before (initial monotone sequence), which keeps the
    estimate stable for the short series a benchmark produces.
    """
    n = len(x)
    if n < 4:
        return 1.0
    rho = autocorrelations(np.asarray(x, dtype=float), n - 1)
    if indicator_of_median:
        # x are normal scores: the indicator x <= median of a Gaussian series with
        # correlations rho has correlations (2 / pi) * asin(rho).
        rho = (2 / math.pi) * np.arcsin(np.clip(rho, -1.0, 1.0))
    total = -1.0  # tau = -rho_0 + 2 * sum of pairs, with rho_0 = 1 inside the first pair
    prev = math.inf
    for m in range(0, (n - 1) // 2):
        pair = rho[2 * m] + rho[2 * m + 1]
        if pair <= 0:
            break
        pair = min(pair, prev)
        total += 2 * pair
        prev = pair
    return float(min(max(total, 1.0), n))


def ar1_indicator_tau(scores: np.ndarray) -> float:
    """tau of the median indicator for an AR(1) fitted to normal scores, lag-1 bias corrected.

    Short series underestimate autocorrelation (by about (1 + 3 phi) / n for AR(1));
    Geyer's sum inherits that bias, so the larger of the two estimates is used.
    """
    n = len(scores)
    phi = float(autocorrelations(scores, 1)[1])
    phi = min(max(phi + (1 + 3 * phi) / n, 0.0), 0.99)
    k = np.arange(1, n)
    return float(1 + 2 * np.sum((2 / math.pi) * np.arcsin(phi**k)))


def median_ci(samples: list[float] | np.ndarray, confidence: float = 0.95) -> MedianCI:
    """CI of the median of ``samples`` (in the order they were taken) that holds under autocorrelation."""
    xs = np.asarray(samples, dtype=float)
    n = len(xs)
    if n == 0:
        raise ValueError("no samples")
    ordered = np.sort(xs)
    tau = 1.0
    if n >= 4:
        scores = normal_scores(xs)
        tau = min(float(n), max(integrated_autocorrelation_time(scores, indicator_of_median=True),
                                ar1_indicator_tau(scores)))
    n_eff = n / tau
    m = max(1, math.floor(n_eff))
    k = binomial_lower_rank(m, confidence)
    if k == 0:
        # [min, max] of m independent rounds misses the median with probability 2 / 2^m
        reached = max(0.0, 1.0 - 2.0 ** (1 - m))
        return MedianCI(float(ordered[0]), float(ordered[-1]), n, n_eff, tau, min(reached, confidence))
    # The k-th of m effective rounds sits at level k/m; take the order statistic of the
    # n real rounds at that level, rounded outwards (conservative).
    lo_index = max(0, math.floor(k / m * n) - 1) if tau > 1.0 else k - 1
    hi_index = min(n - 1, n - 1 - lo_index)
    return MedianCI(float(ordered[lo_index]), float(ordered[hi_index]), n, n_eff, tau, confidence)

"""Tests and intervals for two sets of per-round samples: Mann-Whitney U, bootstrap and log-space ratio CIs."""

from __future__ import annotations

import functools
import math
from typing import Sequence

BOOTSTRAP_RESAMPLES = 2000


@functools.lru_cache(maxsize=256)
def _exact_u_tail(n: int, m: int) -> tuple[float, ...]:
    """``tail[u] = P(U >= u)`` under H0 without ties, from the exact distribution of U."""
    # Number of arrangements with each U: coefficients of the Gaussian binomial
    # [n+m choose n]_q, built by multiplying the factors (1 - q^(m+i)) / (1 - q^i).
    size = n * m + 1
    poly = [0] * size
    poly[0] = 1
    for i in range(1, n + 1):
        k = m + i
        for j in range(size - 1, k - 1, -1):  # times (1 - q^k)
            poly[j] -= poly[j - k]
        for j in range(i, size):  # divided by (1 - q^i): exact, a running sum
            poly[j] += poly[j - i]
    total = math.comb(n + m, n)
    tail, acc = [0.0] * (size + 1), 0
    for u in range(size - 1, -1, -1):
        acc += poly[u]
        tail[u] = acc / total
    return tuple(tail)


def exact_u_sf(u: float, n: int, m: int) -> float:
    """P(U >= u) under H0 without ties."""
    tail = _exact_u_tail(n, m)
    k = max(0, math.ceil(u - 1e-9))
    return tail[k] if k < len(tail) else 0.0


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (exact when small and tie-free)."""
    import numpy as np

    x = np.asarray(a, dtype=float)
    y = np.sort(np.asarray(b, dtype=float))
    n, m = x.size, y.size
    if n == 0 or m == 0:
        return 1.0
    # U of x: pairs with x_i > y_j, ties counting one half
    u = float((np.searchsorted(y, x, "left") + np.searchsorted(y, x, "right")).sum()) / 2.0
    both = np.sort(np.concatenate((x, y)))
    same = both[1:] == both[:-1]
    if n * m <= 400 and not same.any():
        big = max(u, n * m - u)
        return min(1.0, 2.0 * exact_u_sf(big, n, m))
    tie_term = 0.0
    if same.any():
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        counts = np.diff(np.concatenate((starts, [both.size]))).astype(float)
        tie_term = float((counts**3 - counts).sum())
    total = n + m
    var = n * m / 12.0 * ((total + 1) - tie_term / (total * (total - 1)))
    if var <= 0:
        return 1.0
    z = (abs(u - n * m / 2.0) - 0.5) / math.sqrt(var)
    return 1.0 if z <= 0 else min(1.0, math.erfc(z / math.sqrt(2.0)))


def min_mann_whitney_p(n: int, m: int) -> float:
    """The smallest two-sided p the test can give for these sample sizes."""
    if n == 0 or m == 0:
        return 1.0
    # log space: comb(n + m, n) overflows a float past a few hundred samples
    log_comb = math.lgamma(n + m + 1) - math.lgamma(n + 1) - math.lgamma(m + 1)
    return min(1.0, math.exp(math.log(2.0) - log_comb))


def bootstrap_ratio_ci(base: Sequence[float], new: Sequence[float], *, confidence: float = 0.95,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of median(new) / median(base)."""
    import numpy as np

    a = np.asarray(base, dtype=float)
    b = np.asarray(new, dtype=float)
    # bound the work for very long sample lists (pytest-benchmark keeps thousands)
    reps = max(200, min(resamples, int(4_000_000 // max(a.size, b.size, 1))))
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, size=(reps, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, size=(reps, b.size))], axis=1)
    ratios = mb / ma
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(ratios, [tail, 100.0 - tail])
    return float(lo), float(hi)


def log_ci_ratio(base_ci: tuple[float, float], new_ci: tuple[float, float], base_med: float,
                 new_med: float) -> tuple[float, float]:
    """CI of new_med / base_med from the two medians' CIs, their half-widths combined in log space."""
    hb = max(math.log(base_ci[1] / base_med), math.log(base_med / base_ci[0]))
    hn = max(math.log(new_ci[1] / new_med), math.log(new_med / new_ci[0]))
    h = math.hypot(hb, hn)
    r = new_med / base_med
    return r * math.exp(-h), r * math.exp(h)

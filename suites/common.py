"""Small helpers shared by suite modules (framework-neutral)."""

from __future__ import annotations

import math


def numel(*dims: int) -> int:
    return math.prod(int(d) for d in dims)


def rel_l2(a, b) -> float:
    """Relative L2 error of ``a`` against the reference ``b`` (numpy arrays)."""
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denom = float(np.linalg.norm(b))
    diff = float(np.linalg.norm(a - b))
    return diff / denom if denom > 0 else diff


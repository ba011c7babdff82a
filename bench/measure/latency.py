"""Latency percentiles (p50, p90, p99) from per-call timings.

A latency case times every call on its own (one iteration per round, the device
waited on after each), so each sample is one call's latency. The record's
``latency_s`` block: ``{"p50", "p90", "p99", "calls"}`` in seconds, quantiles by
linear interpolation between order statistics (numpy's default method). With few
calls the tail is thin: p99 of 200 calls rests on the two slowest; ``calls`` says
how many there were.
"""

from __future__ import annotations

from typing import Sequence

from xpubench.measure.stats import quantile

PERCENTILES = (50, 90, 99)


def percentiles(samples: Sequence[float], ps: Sequence[float] = PERCENTILES) -> dict[str, float]:
    """``{"p50": ..., "p90": ..., "p99": ...}`` of ``samples`` (seconds per call)."""
    if not samples:
        raise ValueError("latency percentiles of no calls")
    xs = sorted(samples)
    return {f"p{p:g}": quantile(xs, p / 100.0) for p in ps}


def latency_block(samples: Sequence[float]) -> dict[str, float | int]:
    """The record's ``latency_s`` block."""
    return {**percentiles(samples), "calls": len(samples)}

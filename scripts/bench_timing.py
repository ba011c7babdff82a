#!/usr/bin/env python3
"""The timing loop on a real clock: a busy-wait of known length measures as that length.

A spin ends when the clock passes its target, so its duration is defined by the
clock itself; preemption only adds outliers, which the median ignores. Prints the
measured median of each spin against its length, with the CI and the rounds, and
exits 1 when a median is more than --tolerance off (a timing threshold belongs in a
script that prints its figures, not in a unit test: on a loaded machine it is the
machine that fails).

    .venv/bin/python scripts/bench_timing.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main(argv: list[str] | None = None) -> int:
    from xpubench.measure.timing import TimingConfig, measure

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tolerance", type=float, default=0.05, help="allowed relative error of a median")
    args = ap.parse_args(argv)
    worst = 0.0
    print(f"load average {os.getloadavg()[0]:.1f}")
    for length in (0.0002, 0.002, 0.02):
        def run_block(n: int, length: float = length) -> float:
            t0 = time.perf_counter()
            for _ in range(n):
                spin(length)
            return time.perf_counter() - t0

        r = measure(run_block, TimingConfig(time_budget_s=0.5, warmup_max_s=0.2))
        err = r.stats.median / length - 1
        worst = max(worst, abs(err))
        lo, hi = r.stats.ci95
        print(f"spin {length * 1e3:7.2f} ms: median {r.stats.median * 1e3:8.4f} ms ({err:+.2%}), "
              f"CI [{lo * 1e3:.4f}, {hi * 1e3:.4f}] ms, {r.stats.rounds} rounds, stop {r.stop_reason}")
    ok = worst <= args.tolerance
    print(f"worst error {worst:.2%}: {'within' if ok else 'beyond'} {args.tolerance:.0%}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

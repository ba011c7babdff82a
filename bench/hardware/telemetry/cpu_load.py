"""How busy the CPUs were over a window: the whole machine and this process.

Feeds the CPU power estimate and the "machine was busy" warning.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

# Other processes using more than this share of all CPUs make a busy window.
BUSY_OTHER_SHARE = 0.25


def _system_times() -> tuple[float, float] | None:
    """(busy, total) CPU seconds summed over all CPUs since boot."""
    try:
        import psutil  # noqa: PLC0415

        t = psutil.cpu_times()
    except Exception:
        return None
    total = sum(t)
    idle = t.idle + getattr(t, "iowait", 0.0)
    return total - idle, total


def _process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system  # all threads of this process


@dataclass
class CpuLoad:
    system_util: float | None   # 0..1 of all logical CPUs, every process
    process_util: float | None  # 0..1 of all logical CPUs, this process
    window_s: float

    @property
    def other_util(self) -> float | None:
        if self.system_util is None or self.process_util is None:
            return None
        return max(0.0, self.system_util - self.process_util)

    def busy_warning(self) -> str | None:
        other = self.other_util
        if other is not None and other > BUSY_OTHER_SHARE:
            return (f"machine busy: other processes used ~{other:.0%} of all CPUs during the window; "
                    "times may be disturbed")
        return None

    def as_dict(self) -> dict:
        r = lambda x: None if x is None else round(x, 4)  # noqa: E731
        return {"system_util": r(self.system_util), "process_util": r(self.process_util)}


class CpuLoadProbe:
    def __init__(self, clock: Callable[[], float] = time.perf_counter, logical_cpus: int | None = None) -> None:
        self.clock = clock
        self.logical_cpus = logical_cpus or os.cpu_count() or 1
        self._start: tuple[float, float, tuple[float, float] | None] | None = None

    def start(self) -> None:
        self._start = (self.clock(), _process_cpu_s(), _system_times())

    def stop(self) -> CpuLoad:
        if self._start is None:
            raise RuntimeError("CpuLoadProbe.stop() called before start()")
        t0, p0, s0 = self._start
        t1, p1, s1 = self.clock(), _process_cpu_s(), _system_times()
        self._start = None
        wall = t1 - t0
        proc = (p1 - p0) / (wall * self.logical_cpus) if wall > 0 else None
        system = None
        if s0 is not None and s1 is not None and s1[1] > s0[1]:
            cpu_seconds = s1[1] - s0[1]  # = wall x CPUs, by the kernel's own clock
            system = (s1[0] - s0[0]) / cpu_seconds
            proc = (p1 - p0) / cpu_seconds  # same basis, so other = system - process holds
        clamp = lambda x: None if x is None else min(1.0, max(0.0, x))  # noqa: E731
        return CpuLoad(clamp(system), clamp(proc), wall)

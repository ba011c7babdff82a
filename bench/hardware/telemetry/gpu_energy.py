"""GPU energy through NVML.

* ``nvml-counter``: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the
  driver loaded; Volta and newer), read at both window edges.
* ``nvml-power``: where that counter is not supported, a daemon thread samples
  ``nvmlDeviceGetPowerUsage`` (mW) and integrates with the trapezoid rule.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from xpubench.hardware.telemetry.energy import EnergyReading
from xpubench.hardware.telemetry.nvml import NvmlSession, describe_error
from xpubench.hardware.telemetry.poller import Poller

# The counter updates every ~10-100 ms depending on the GPU; 20 updates of the
# slowest make 2 s, and a 1 s floor covers the rest.
COUNTER_MIN_WINDOW_S = 2.0
# nvmlDeviceGetPowerUsage is a ~1 s moving average on Ampere and newer, which
# smears the window edges by up to a second: ask for a longer window.
POWER_MIN_WINDOW_S = 5.0
POWER_SAMPLE_INTERVAL_S = 0.02


# Cache of inferred counter update periods, per NVML index, for this process.
_PERIOD_CACHE: dict[int, float | None] = {}


def infer_counter_period(read_mj: Callable[[], int], *, clock: Callable[[], float] = time.perf_counter,
                         budget_s: float = 0.3, changes: int = 4) -> float | None:
    """Shortest interval between counter changes seen in a short busy poll.

    Returns None when the counter did not change often enough within the
    budget (then the default window floor applies).
    """
    t_end = clock() + budget_s
    last = read_mj()
    stamps: list[float] = []
    while clock() < t_end and len(stamps) < changes + 1:
        value = read_mj()
        if value != last:
            stamps.append(clock())
            last = value
        time.sleep(0.0005)
    gaps = [b - a for a, b in zip(stamps, stamps[1:]) if b > a]
    return min(gaps) if gaps else None


def counter_min_window_s(period_s: float | None) -> float:
    """max(1 s, 20 x update period), capped at 5 s; the default when unknown."""
    if period_s is None:
        return COUNTER_MIN_WINDOW_S
    return min(5.0, max(1.0, 20.0 * period_s))


class NvmlCounterMeter:
    method = "nvml-counter"

    def __init__(self, session: NvmlSession, handle: Any, nvml_index: int, *,
                 infer_period: bool = False, scope: str = "gpu-device") -> None:
        self.session = session
        self.handle = handle
        self.source = f"nvml:{nvml_index}"
        self.scope = scope  # "mig-parent-gpu": the whole GPU a MIG slice belongs to
        self._start_mj: int | None = None
        self.update_period_s: float | None = None
        if infer_period:
            if nvml_index not in _PERIOD_CACHE:
                try:
                    _PERIOD_CACHE[nvml_index] = infer_counter_period(self.read_mj)
                except session.error:
                    _PERIOD_CACHE[nvml_index] = None
            self.update_period_s = _PERIOD_CACHE[nvml_index]
        self.min_window_s = counter_min_window_s(self.update_period_s)

    def read_mj(self) -> int:
        """One counter read; raises the NVML error (NotSupported decides the method)."""
        return int(self.session.mod.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def start(self) -> None:
        self._start_mj = None
        self._start_error: str | None = None
        try:
            self._start_mj = self.read_mj()
        except self.session.error as exc:
            self._start_error = describe_error(exc)

    def stop(self) -> EnergyReading:
        reading = EnergyReading(self.method, self.source, self.scope)
        if self._start_mj is None:
            reading.reason = f"energy counter unreadable at window start ({self._start_error})"
            return reading
        try:
            end_mj = self.read_mj()
        except self.session.error as exc:
            reading.reason = f"energy counter unreadable at window end ({describe_error(exc)})"
            return reading
        delta = end_mj - self._start_mj
        reading.details = {"counter_mj": {"start": self._start_mj, "stop": end_mj},
                           "counter_update_period_s": self.update_period_s}
        if delta < 0:
            # The counter restarts from 0 when the driver reloads: the window is void.
            reading.notes.append("counter_reset")
            reading.reason = "NVML energy counter went backwards (driver reload / counter reset); window invalid"
            return reading
        reading.joules = delta / 1000.0  # 0.0 is flagged as zero_delta by energy_block
        return reading

    def close(self) -> None:
        pass


class NvmlPowerMeter:
    """Trapezoid integral of sampled board power over the window."""

    method = "nvml-power"
    min_window_s = POWER_MIN_WINDOW_S

    def __init__(self, session: NvmlSession, handle: Any, nvml_index: int, *,
                 clock: Callable[[], float] = time.perf_counter,
                 interval_s: float = POWER_SAMPLE_INTERVAL_S, start_thread: bool = True,
                 scope: str = "gpu-device") -> None:
        self.session = session
        self.handle = handle
        self.source = f"nvml:{nvml_index}"
        self.scope = scope
        self.clock = clock
        self.interval_s = interval_s
        self.start_thread = start_thread
        self._samples: list[tuple[float, float]] = []  # (t, watts)
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self._poller = Poller(self.sample, self.interval_s, "xpubench-nvml-power")

    def read_w(self) -> float:
        return self.session.mod.nvmlDeviceGetPowerUsage(self.handle) / 1000.0

    def sample(self) -> None:
        """Take one (time, power) sample; the thread calls it, tests may too."""
        t = self.clock()
        try:
            w = self.read_w()
        except self.session.error as exc:
            with self._lock:
                if len(self._errors) < 3:
                    self._errors.append(describe_error(exc))
            return
        with self._lock:
            self._samples.append((t, w))

    def start(self) -> None:
        self._poller.stop()
        with self._lock:
            self._samples = []
            self._errors = []
        self.sample()
        if self.start_thread:
            self._poller.start()

    def stop(self) -> EnergyReading:
        self._poller.stop()
        self.sample()
        with self._lock:
            samples = sorted(self._samples)
            errors = list(self._errors)
        reading = EnergyReading(self.method, self.source, self.scope)
        reading.notes.append("power is NVML's reported (often ~1 s averaged) board power, integrated")
        if errors:
            reading.notes.append(f"{len(errors)}+ failed power reads: {errors[0]}")
        if len(samples) < 2:
            reading.reason = "fewer than two power samples in the window"
            return reading
        joules = 0.0
        for (t0, w0), (t1, w1) in zip(samples, samples[1:]):
            joules += 0.5 * (w0 + w1) * (t1 - t0)
        span = samples[-1][0] - samples[0][0]
        reading.joules = joules if span > 0 else None
        if span <= 0:
            reading.reason = "power samples span no time"
        reading.details = {"power_samples": len(samples),
                           "power_w": {"min": min(w for _, w in samples), "max": max(w for _, w in samples)}}
        return reading

    def close(self) -> None:
        self._poller.stop()

"""GPU clocks, temperature, power limit and clock-event (throttle) reasons.

Read at both window edges, and polled in between by a light daemon thread so
a throttle that starts and ends inside the window is still seen.  Memory
used is NVML's device-wide figure (CUDA context, other processes, allocator
pools included), so it is recorded as information only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from xpubench.hardware.telemetry.nvml import NvmlSession
from xpubench.hardware.telemetry.poller import Poller

# nvmlClocksEventReason* bits (nvml.h); names are ours, snake_case.
CLOCK_EVENT_BITS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "power_brake",
    0x100: "display_clock_setting",
}
# Reasons that mean "the GPU ran slower than it could because of power or heat".
THROTTLE_REASONS = ("sw_power_cap", "hw_slowdown", "sw_thermal", "hw_thermal", "power_brake")


def decode_clock_event_reasons(mask: int | None) -> list[str]:
    """Bitmask -> names in bit order; unknown bits appear as ``bit_0x...``."""
    if mask is None:
        return []
    names = [name for bit, name in CLOCK_EVENT_BITS.items() if mask & bit]
    unknown = mask & ~sum(CLOCK_EVENT_BITS)
    bit = 1
    while unknown:
        if unknown & bit:
            names.append(f"bit_{bit:#x}")
            unknown &= ~bit
        bit <<= 1
    return names


# Tried in order on any NVML error: the binding has both names, but a pre-R535 driver
# lacks the C symbol of the first (NVML_ERROR_FUNCTION_NOT_FOUND); the second is
# deprecated and goes with CUDA 14.
CLOCK_REASON_CALLS = ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
# nvmlDeviceGetTemperature is deprecated in favour of ...TemperatureV (newer drivers only).
TEMPERATURE_CALLS = ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature")


def read_clock_event_reasons(session: NvmlSession, handle: Any) -> tuple[int | None, str | None]:
    """(reasons bitmask, None), or (None, why no call answered): unknown, never 0."""
    value, why = session.call_first(CLOCK_REASON_CALLS, handle)
    return (int(value), None) if value is not None else (None, why)


def read_temperature(session: NvmlSession, handle: Any) -> Any:
    sensor = getattr(session.mod, "NVML_TEMPERATURE_GPU", 0)
    return session.call_first(TEMPERATURE_CALLS, handle, sensor)[0]


def snapshot(session: NvmlSession, handle: Any) -> dict:
    """One reading of the device's state; fields NVML cannot give are None."""
    mod = session.mod
    sm = getattr(mod, "NVML_CLOCK_SM", 1)
    mem = getattr(mod, "NVML_CLOCK_MEM", 2)
    limit_mw = session.call("nvmlDeviceGetEnforcedPowerLimit", handle)
    meminfo = session.call("nvmlDeviceGetMemoryInfo", handle)
    mask, why = read_clock_event_reasons(session, handle)
    return {
        "sm_clock_mhz": session.call("nvmlDeviceGetClockInfo", handle, sm),
        "mem_clock_mhz": session.call("nvmlDeviceGetClockInfo", handle, mem),
        "temperature_c": read_temperature(session, handle),
        "power_limit_w": limit_mw / 1000.0 if isinstance(limit_mw, (int, float)) else None,
        "clock_event_reasons": mask,
        "clock_event_names": decode_clock_event_reasons(mask) if mask is not None else None,
        "clock_event_error": why,
        "nvml_used_bytes_info": int(meminfo.used) if meminfo is not None else None,
    }


@dataclass
class GpuStateMonitor:
    """Edges plus a poll of reasons/temperature/SM clock in between."""

    session: NvmlSession
    handle: Any
    nvml_index: int
    index_notes: list[str] = field(default_factory=list)
    mig_note: str | None = None  # set when the framework device is a MIG slice of this GPU
    poll_interval_s: float = 0.25
    start_thread: bool = True

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._poller = Poller(self.poll, self.poll_interval_s, "xpubench-gpu-state")
        self._start: dict | None = None
        self._mask_seen = 0
        self._mask_reads = 0  # readings that gave a reasons mask (0 = throttling unknown)
        self._mask_error: str | None = None
        self._max_temp: int | None = None
        self._min_sm: int | None = None
        self._polls = 0

    def start(self) -> None:
        self._poller.stop()
        self._start = snapshot(self.session, self.handle)
        self._mask_seen = self._mask_reads = 0
        self._mask_error = self._start["clock_event_error"]
        self._max_temp = self._min_sm = None
        self._polls = 0
        self._absorb(self._start["clock_event_reasons"], self._start["temperature_c"],
                     self._start["sm_clock_mhz"])
        if self.start_thread:
            self._poller.start()

    def poll(self) -> None:
        """Take one in-window reading (the thread calls this; tests call it directly)."""
        mask, _ = read_clock_event_reasons(self.session, self.handle)
        temp = read_temperature(self.session, self.handle)
        sm = self.session.call("nvmlDeviceGetClockInfo", self.handle, getattr(self.session.mod, "NVML_CLOCK_SM", 1))
        self._absorb(mask, temp, sm)
        with self._lock:
            self._polls += 1

    def stop(self) -> tuple[dict, list[str]]:
        """Return (device_state block, warnings)."""
        if self._start is None:
            raise RuntimeError("GpuStateMonitor.stop() called before start()")
        self._poller.stop()
        end = snapshot(self.session, self.handle)
        self._absorb(end["clock_event_reasons"], end["temperature_c"], end["sm_clock_mhz"])
        with self._lock:
            known = self._mask_reads > 0
            seen = decode_clock_event_reasons(self._mask_seen) if known else None
            state = {
                "nvml_index": self.nvml_index,
                "index_notes": list(self.index_notes),
                "mig_slice_note": self.mig_note,
                "start": self._start,
                "stop": end,
                "clock_event_names_seen": seen,
                # None = no reading of the reasons answered: unknown, not "not throttled"
                "throttled": any(r in THROTTLE_REASONS for r in seen) if known else None,
                "max_temperature_c": self._max_temp,
                "min_sm_clock_mhz": self._min_sm,
                "polls": self._polls,
            }
            why_unknown = None if known else (self._mask_error or end["clock_event_error"])
        self._start = None
        warnings = []
        if why_unknown:
            warnings.append(f"GPU {self.nvml_index} throttle reasons unreadable ({why_unknown}); "
                            "'throttled' is unknown (null)")
        if self.mig_note:
            warnings.append(self.mig_note)
        throttle = [r for r in seen or [] if r in THROTTLE_REASONS]
        if throttle:
            warnings.append(f"GPU {self.nvml_index} was throttled during the window "
                            f"({', '.join(throttle)}); times and energy are not at full clocks")
        return state, warnings

    def close(self) -> None:
        self._poller.stop()

    # -- internals
    def _absorb(self, mask: int | None, temp: Any, sm: Any) -> None:
        with self._lock:
            if mask is not None:
                self._mask_seen |= mask
                self._mask_reads += 1
            if isinstance(temp, (int, float)):
                self._max_temp = temp if self._max_temp is None else max(self._max_temp, temp)
            if isinstance(sm, (int, float)):
                self._min_sm = sm if self._min_sm is None else min(self._min_sm, sm)

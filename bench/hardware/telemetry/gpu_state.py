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


def read_clock_event_reasons(session: NvmlSession, handle: Any) -> int | None:
    # ...ThrottleReasons is deprecated (gone in CUDA 14); use it only on old bindings
    for name in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
        if hasattr(session.mod, name):
            value = session.call(name, handle)
            return int(value) if value is not None else None
    return None


def snapshot(session: NvmlSession, handle: Any) -> dict:
    """One reading of the device's state; fields NVML cannot give are None."""
    mod = session.mod
    sm = getattr(mod, "NVML_CLOCK_SM", 1)
    mem = getattr(mod, "NVML_CLOCK_MEM", 2)
    limit_mw = session.call("nvmlDeviceGetEnforcedPowerLimit", handle)
    meminfo = session.call("nvmlDeviceGetMemoryInfo", handle)
    mask = read_clock_event_reasons(session, handle)
    return {
        "sm_clock_mhz": session.call("nvmlDeviceGetClockInfo", handle, sm),
        "mem_clock_mhz": session.call("nvmlDeviceGetClockInfo", handle, mem),
        "temperature_c": session.call("nvmlDeviceGetTemperature", handle,
                                      getattr(mod, "NVML_TEMPERATURE_GPU", 0)),
        "power_limit_w": limit_mw / 1000.0 if isinstance(limit_mw, (int, float)) else None,
        "clock_event_reasons": mask,
        "clock_event_names": decode_clock_event_reasons(mask),
        "nvml_used_bytes_info": int(meminfo.used) if meminfo is not None else None,
    }


@dataclass
class GpuStateMonitor:
    """Edges plus a poll of reasons/temperature/SM clock in between."""

    session: NvmlSession
    handle: Any
    nvml_index: int
    index_notes: list[str] = field(default_factory=list)
    poll_interval_s: float = 0.25
    start_thread: bool = True

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._poller = Poller(self.poll, self.poll_interval_s, "xpubench-gpu-state")
        self._start: dict | None = None
        self._mask_seen = 0
        self._max_temp: int | None = None
        self._min_sm: int | None = None
        self._polls = 0

    def start(self) -> None:
        self._poller.stop()
        self._start = snapshot(self.session, self.handle)
        self._mask_seen = 0
        self._max_temp = self._min_sm = None
        self._polls = 0
        self._absorb(self._start["clock_event_reasons"], self._start["temperature_c"],
                     self._start["sm_clock_mhz"])
        if self.start_thread:
            self._poller.start()

    def poll(self) -> None:
        """Take one in-window reading (the thread calls this; tests call it directly)."""
        mod = self.session.mod
        mask = read_clock_event_reasons(self.session, self.handle)
        temp = self.session.call("nvmlDeviceGetTemperature", self.handle,
                                 getattr(mod, "NVML_TEMPERATURE_GPU", 0))
        sm = self.session.call("nvmlDeviceGetClockInfo", self.handle, getattr(mod, "NVML_CLOCK_SM", 1))
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
            seen = decode_clock_event_reasons(self._mask_seen)
            state = {
                "nvml_index": self.nvml_index,
                "index_notes": list(self.index_notes),
                "start": self._start,
                "stop": end,
                "clock_event_names_seen": seen,
                "throttled": any(r in THROTTLE_REASONS for r in seen),
                "max_temperature_c": self._max_temp,
                "min_sm_clock_mhz": self._min_sm,
                "polls": self._polls,
            }
        self._start = None
        warnings = []
        throttle = [r for r in seen if r in THROTTLE_REASONS]
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
            if isinstance(temp, (int, float)):
                self._max_temp = temp if self._max_temp is None else max(self._max_temp, temp)
            if isinstance(sm, (int, float)):
                self._min_sm = sm if self._min_sm is None else min(self._min_sm, sm)

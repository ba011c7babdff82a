"""Peak host (CPU) memory of this process over a window.

Best method (Linux): writing ``5`` to /proc/self/clear_refs resets the
resident-set high-water mark (VmHWM, and ru_maxrss with it), so the VmHWM read
at the end is the peak *of this window*, in the same process, with no
sampling gap.  Elsewhere:

* ``ru_maxrss-not-reset``: the lifetime peak cannot be reset; it is still the
  window's peak whenever it rose during the window, and that is the only case
  where we use it.
* ``psutil-sampled``: otherwise a background thread samples RSS; it misses
  spikes shorter than its period.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from xpubench.hardware.telemetry.poller import Poller

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESET_HWM = "5"  # CLEAR_REFS_MM_HIWATER_RSS (Linux >= 4.0)


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status, in bytes."""
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            parts = line.split()
            try:
                return int(parts[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def _ru_maxrss_bytes() -> int | None:
    if resource is None:
        return None
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # kilobytes on Linux, bytes on macOS
    return int(value) if sys.platform == "darwin" else int(value) * 1024


def _rss_bytes() -> int | None:
    rss = _status_kib("VmRSS")
    if rss is not None:
        return rss
    try:
        import psutil  # noqa: PLC0415

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return None


def release_free_memory() -> None:
    """Give back what earlier cases freed, so a baseline taken now is what the process holds.

    Python's garbage first, then glibc's free lists (``malloc_trim``): freed heap
    memory would otherwise stay resident and hide the next case's own allocations.
    """
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        pass


def reset_peak_rss() -> bool:
    """Reset VmHWM; True when the kernel accepted it."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write(_RESET_HWM)
        return True
    except OSError:
        return False


@dataclass
class HostPeak:
    host_peak_bytes: int | None
    host_peak_delta_bytes: int | None
    host_method: str

    def as_dict(self) -> dict:
        return {"host_peak_bytes": self.host_peak_bytes,
                "host_peak_delta_bytes": self.host_peak_delta_bytes,
                "host_method": self.host_method}

    def as_case_dict(self) -> dict:
        """The record's host figures when the meter ran over a whole case: ``host_peak_bytes``
        is the case's own peak above its baseline; the process's whole RSS peak beside it."""
        return {"host_peak_bytes": self.host_peak_delta_bytes, "host_rss_peak_bytes": self.host_peak_bytes,
                "host_method": f"{self.host_method}; above the case's baseline (taken before its build)"}


class HostPeakMeter:
    """Peak RSS of this process between ``start()`` and ``stop()``.

    ``host_peak_delta_bytes`` = peak - RSS at start: what the window added on
    top of what the process already held (model, inputs, framework).
    """

    def __init__(self, *, sample_interval_s: float = 0.005, allow_reset: bool = True) -> None:
        self.sample_interval_s = sample_interval_s
        self.allow_reset = allow_reset  # False: tests of the fallbacks
        self._method: str | None = None
        self._rss_start: int | None = None
        self._ru_start: int | None = None
        self._sampled_max = 0
        self._sampler = Poller(self._sample_once, self.sample_interval_s, "xpubench-rss")

    def start(self, release_first: bool = False) -> None:
        """Begin the window; ``release_first`` hands freed memory back first (a case's baseline)."""
        self._stop_sampler()
        if release_first:
            release_free_memory()
        self._rss_start = _rss_bytes()
        if self.allow_reset and _status_kib("VmHWM") is not None and reset_peak_rss():
            self._method = "vmhwm-reset"
            # RSS read after the reset: VmHWM restarts from the current RSS
            self._rss_start = _rss_bytes()
            return
        self._ru_start = _ru_maxrss_bytes()
        self._method = "fallback"
        self._sampled_max = self._rss_start or 0
        self._sampler.start()

    def stop(self) -> HostPeak:
        if self._method is None:
            raise RuntimeError("HostPeakMeter.stop() called before start()")
        method, self._method = self._method, None
        if method == "vmhwm-reset":
            peak = _status_kib("VmHWM")
            return self._result(peak, method)
        self._sample_once()
        self._stop_sampler()
        ru_now = _ru_maxrss_bytes()
        if ru_now is not None and self._ru_start is not None and ru_now > self._ru_start:
            # the lifetime peak rose inside the window, so it *is* the window's peak
            return self._result(ru_now, "ru_maxrss-not-reset")
        if self._sampled_max:
            return self._result(self._sampled_max, "psutil-sampled")
        return HostPeak(None, None, "unavailable")

    def close(self) -> None:
        self._stop_sampler()

    # -- internals
    def _result(self, peak: int | None, method: str) -> HostPeak:
        if peak is None:
            return HostPeak(None, None, "unavailable")
        delta = None if self._rss_start is None else max(0, peak - self._rss_start)
        return HostPeak(peak, delta, method)

    def _sample_once(self) -> None:
        rss = _rss_bytes()
        if rss is not None and rss > self._sampled_max:
            self._sampled_max = rss

    def _stop_sampler(self) -> None:
        self._sampler.stop(join_timeout=1.0)

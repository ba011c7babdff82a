"""Host peak memory over a window, on this machine's real kernel."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from xpubench.hardware.telemetry import HostPeakMeter, open_window

MIB = 2**20
SIZE = 256 * MIB


def _allocate_and_free() -> None:
    a = np.ones(SIZE // 8)  # np.ones touches every page, np.empty would not
    assert a[-1] == 1.0
    del a


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM reset is Linux-only")
def test_vmhwm_reset_sees_a_freed_256mib_peak():
    meter = HostPeakMeter()
    meter.start()
    _allocate_and_free()  # the peak is gone before stop(): only a high-water mark sees it
    peak = meter.stop()
    assert peak.host_method == "vmhwm-reset"
    assert peak.host_peak_delta_bytes == pytest.approx(SIZE, rel=0.03)
    assert peak.host_peak_bytes >= peak.host_peak_delta_bytes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM reset is Linux-only")
def test_reset_gives_a_per_window_peak():
    meter = HostPeakMeter()
    meter.start()
    _allocate_and_free()
    meter.stop()
    meter.start()  # a second, smaller window after a big one
    # 64 MiB: above glibc's largest mmap threshold (32 MiB), so it gets fresh pages
    # even when earlier tests left freed, still-resident heap behind.
    small = np.ones(64 * MIB // 8)
    peak = meter.stop()
    del small
    assert peak.host_peak_delta_bytes == pytest.approx(64 * MIB, rel=0.1)


def test_fallback_without_reset_reports_its_method():
    meter = HostPeakMeter(allow_reset=False)
    meter.start()
    a = np.ones(SIZE // 8)
    peak = meter.stop()
    del a
    meter.close()
    assert peak.host_method in ("ru_maxrss-not-reset", "psutil-sampled")
    assert peak.host_peak_delta_bytes == pytest.approx(SIZE, rel=0.03)


def test_stop_before_start_is_a_bug():
    with pytest.raises(RuntimeError, match="before start"):
        HostPeakMeter().stop()


def test_window_host_memory_block():
    win = open_window("tpu")
    win.start()
    _allocate_and_free()
    res = win.stop(steps=1)
    win.close()
    hm = res["host_memory"]
    assert set(hm) == {"host_peak_bytes", "host_peak_delta_bytes", "host_method"}
    if hm["host_method"] == "vmhwm-reset":
        assert hm["host_peak_delta_bytes"] == pytest.approx(SIZE, rel=0.03)


def test_window_lifecycle_errors():
    win = open_window("tpu")
    with pytest.raises(RuntimeError, match="before start"):
        win.stop(steps=1)
    win.start()
    with pytest.raises(RuntimeError, match="already started"):
        win.start()
    win.stop(steps=1)
    win.start()  # a window may be reused for the next measurement
    win.stop(steps=1)
    win.close()
    with pytest.raises(RuntimeError, match="closed"):
        win.start()

"""The shared background poller of the telemetry meters."""

from __future__ import annotations

import threading

import pytest

from xpubench.hardware.telemetry.poller import Poller


def _counting_poller(calls_wanted: int) -> tuple[Poller, list[int], threading.Event]:
    calls: list[int] = []
    enough = threading.Event()

    def fn() -> None:
        calls.append(1)
        if len(calls) >= calls_wanted:
            enough.set()

    return Poller(fn, 0.001, "test-poller"), calls, enough


def test_calls_repeatedly_then_stops():
    poller, calls, enough = _counting_poller(3)
    assert not poller.running
    poller.start()
    assert poller.running
    # generous wait: only a hang fails this, not a slow machine
    assert enough.wait(timeout=30.0), "poller did not call the function 3 times"
    poller.stop(join_timeout=30.0)
    assert not poller.running
    after_stop = len(calls)
    assert after_stop >= 3
    # the thread is joined, so nothing can call fn any more
    assert all(t.name != "test-poller" for t in threading.enumerate())
    assert len(calls) == after_stop


def test_thread_is_a_named_daemon():
    poller, _, _ = _counting_poller(1)
    poller.start()
    try:
        threads = [t for t in threading.enumerate() if t.name == "test-poller"]
        assert len(threads) == 1 and threads[0].daemon
    finally:
        poller.stop()


def test_stop_is_idempotent_and_safe_before_start():
    poller, _, _ = _counting_poller(1)
    poller.stop()  # never started: no-op
    poller.start()
    poller.stop()
    poller.stop()
    assert not poller.running


def test_restart_after_stop_runs_a_new_thread():
    poller, calls, enough = _counting_poller(1)
    poller.start()
    poller.stop(join_timeout=30.0)
    calls.clear()
    enough.clear()
    poller.start()
    assert enough.wait(timeout=30.0)
    poller.stop(join_timeout=30.0)
    assert calls and not poller.running


def test_start_twice_without_stop_is_a_bug():
    poller, _, _ = _counting_poller(1)
    poller.start()
    try:
        with pytest.raises(RuntimeError, match="started twice"):
            poller.start()
    finally:
        poller.stop()


def test_stop_wakes_a_long_interval_promptly():
    # a 1-hour interval: stop() must wake the wait, not sleep it out
    poller = Poller(lambda: None, 3600.0, "test-poller-slow")
    poller.start()
    poller.stop(join_timeout=30.0)
    assert all(t.name != "test-poller-slow" for t in threading.enumerate())

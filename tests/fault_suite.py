"""A test-only suite whose cases misbehave on purpose, mixed with good ones.

Loaded into worker processes through XPUBENCH_SUITE_MODULES=tests.fault_suite.
Builders are plain Python: no framework needed to misbehave.
"""

from __future__ import annotations

import os
import signal
import time

from xpubench.backends.base import Step
from xpubench.spec.registry import Work, workload

SIZES = {"smoke": {"n": 1}, "default": {"n": 1}}


def _declare(name, build):
    w = workload(suite="faults", name=name, modes=("forward",), unit="calls", sizes=SIZES,
                 work=lambda p, m: Work(1), precisions=("fp32",))
    w.builder("torch")(build)
    return w


def _spin(seconds=2e-4):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


good_a = _declare("good_a", lambda ctx, p, mode: Step(run=_spin))


def _hang(ctx, p, mode):
    def run():
        time.sleep(3600)
    return Step(run=run)


hang = _declare("hang", _hang)


def _raise(ctx, p, mode):
    def run():
        raise ValueError("the layer exploded\nsecond line of detail")
    return Step(run=run)


raises = _declare("raises", _raise)
good_b = _declare("good_b", lambda ctx, p, mode: Step(run=_spin))
nan_loss = _declare("nan_loss", lambda ctx, p, mode: Step(run=_spin, finite=lambda: False))


def _abort(ctx, p, mode):
    def run():
        os.abort()
    return Step(run=run)


aborts = _declare("aborts", _abort)


def _hog(ctx, p, mode):
    def run():
        # far past the worker's address-space limit: MemoryError in the worker
        return bytearray(8 << 30)
    return Step(run=run)


hog = _declare("hog", _hog)


def _killed(ctx, p, mode):
    def run():
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does
    return Step(run=run)


killed = _declare("killed", _killed)
good_c = _declare("good_c", lambda ctx, p, mode: Step(run=_spin))

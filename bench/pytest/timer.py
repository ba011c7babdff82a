"""pytest-benchmark's timer and stats, plugged into the one measuring loop as its block timer.

The loop (``xpubench.measure.step.measure_step``) warms up, calibrates and decides
how many rounds to time; :class:`BenchmarkTimer` times every block with
pytest-benchmark's clock (``--benchmark-timer``), waiting for the device before the
clock stops, and records each timed round into ``benchmark.stats`` exactly as the
loop counted it. pytest-benchmark's terminal table, ``--benchmark-json``, autosave,
``--benchmark-compare(-fail)`` and the histogram then show our rounds; there is no
second warm-up or calibration. With ``--benchmark-disable`` the step runs once.
"""

from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from xpubench.backends.base import Backend, Step


@dataclass(frozen=True)
class DeviceWait:
    """How a timed block waits for the device (mirrors each backend's time_block).

    ``fn(out)`` waits for the work behind ``out``; None = the device is synchronous.
    ``each_call``: wait after every call (XLA:CPU may overlap independent calls),
    otherwise once per block, after its last call (accelerator streams run in
    order, so the last output done means the block is done).
    """

    method: str
    fn: Callable[[Any], Any] | None = None
    each_call: bool = False


def device_wait(backend: "Backend") -> DeviceWait:
    """The backend's own rule for waiting on the device (see Backend.wait)."""
    if not backend.waits:
        return DeviceWait("perf_counter")  # the step returns when its work is done
    return DeviceWait(f"perf_counter+{backend.wait_name}", backend.wait, each_call=backend.wait_each_call)


def timed_block(run: Callable[[], Any], n: int, wait: DeviceWait, clock: Callable[[], float]) -> float:
    """``n`` calls of ``run`` between two reads of ``clock``; the device is waited on first."""
    fn = wait.fn
    if fn is None:
        t0 = clock()
        for _ in range(n):
            run()
        return clock() - t0
    if wait.each_call:
        t0 = clock()
        for _ in range(n):
            fn(run())
        return clock() - t0
    out = None
    t0 = clock()
    for _ in range(n):
        out = run()
    fn(out)
    return clock() - t0


@contextlib.contextmanager
def _gc_off(disable: bool) -> Iterator[None]:
    """``--benchmark-disable-gc``: no garbage collection inside a timed block."""
    was_on = gc.isenabled()
    if disable:
        gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


class BenchmarkTimer:
    """A BlockTimer (xpubench.measure.step) over pytest-benchmark's ``benchmark`` fixture.

    Use it as a context manager around the measuring: it marks the fixture used, and
    a failure marks the benchmark as errored, as pytest-benchmark's ``pedantic`` does.
    """

    def __init__(self, benchmark: Any, backend: "Backend"):
        from pytest_benchmark.fixture import PauseInstrumentation

        self.benchmark = benchmark
        self.wait = device_wait(backend)
        self.method = self.wait.method
        self.disabled = bool(getattr(benchmark, "disabled", False))
        self.untimed_result: Any = None  # what the one untimed call returned (--benchmark-disable)
        self._pause = PauseInstrumentation  # no tracer or profiler (coverage) inside timed blocks
        self._stats: Any = None

    def __enter__(self) -> "BenchmarkTimer":
        self.benchmark._mode = "xpubench"  # pytest-benchmark's once-per-test guard: the fixture is used
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.benchmark.has_error = True

    def time_block(self, step: "Step", n: int) -> float:
        with self._pause(), _gc_off(self.benchmark._disable_gc):
            return timed_block(step.run, n, self.wait, self.benchmark._timer)

    def window_started(self, iterations_per_round: int) -> None:
        self._stats = self.benchmark._make_stats(iterations_per_round)  # what its reports read

    def round_timed(self, seconds_per_step: float) -> None:
        self._stats.stats.update(seconds_per_step)

    def run_once(self, step: "Step") -> Any:
        out = step.run()
        if self.wait.fn is not None:
            self.wait.fn(out)
        self.untimed_result = out
        return out

"""The one function that measures a step: the timing loop, the meters over its window, memory, warnings.

Every caller measures through :func:`measure_step`: the CLI worker (through
``xpubench.measure.case``), the built-in pytest items, the ``xpu_backend`` fixture
and ``xpubench probe``. What differs between them is only the :class:`BlockTimer`:
how a block of n calls is timed and who else is told about each timed round. The
default asks the backend (device timers, or a host clock after waiting on the
device); the pytest plugin plugs in pytest-benchmark's timer and stats
(``xpubench.pytest.timer``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from xpubench.measure.timing import OnRound, TimingConfig, TimingResult, Turn, measure

if TYPE_CHECKING:
    from xpubench.backends.base import Backend, Step
    from xpubench.hardware.telemetry.host_memory import HostPeakMeter
    from xpubench.options import RunOptions


class BlockTimer(Protocol):
    """How the loop's blocks are timed, and who is told of the timed rounds."""

    method: str  # the record's timing_method
    disabled: bool  # True: run the step once, untimed (pytest --benchmark-disable)

    def time_block(self, step: "Step", n: int) -> float:
        """Run ``step`` n times; seconds, ending after the device finished."""

    def window_started(self, iterations_per_round: int) -> None:
        """Calibration is done: timed rounds of this many iterations follow."""

    def round_timed(self, seconds_per_step: float) -> None:
        """One timed round, as the loop counts it."""

    def run_once(self, step: "Step") -> Any:
        """One untimed call (only when ``disabled``)."""


class BackendTimer:
    """The backend's own ``time_block``: device timers where it has them."""

    disabled = False

    def __init__(self, backend: "Backend"):
        self.backend = backend
        self.method = backend.timing_method

    def time_block(self, step: "Step", n: int) -> float:
        return self.backend.time_block(step, n)

    def window_started(self, iterations_per_round: int) -> None:
        pass

    def round_timed(self, seconds_per_step: float) -> None:
        pass

    def run_once(self, step: "Step") -> Any:
        self.backend.time_block(step, 1)


@dataclass
class StepMeasurement:
    """What measuring one step saw: timing (None when run untimed), meters, memory."""

    timing: TimingResult | None
    timing_method: str
    time_budget_s: float
    compile_s: float | None
    units_per_step: float | None
    memory: dict[str, Any] = field(default_factory=dict)
    energy: dict[str, Any] | None = None
    device_state: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def median_s(self) -> float | None:
        return self.timing.stats.median if self.timing else None

    @property
    def throughput_per_s(self) -> float | None:
        med = self.median_s
        return self.units_per_step / med if (self.units_per_step and med) else None


def open_telemetry(backend: "Backend", options: "RunOptions", host_memory: bool = True) -> tuple[Any, str]:
    """A telemetry window for the backend's device, or (None, why not).

    ``host_memory``: False when the caller meters host memory over the whole case."""
    from xpubench.measure.record import one_line

    if not options.telemetry:
        return None, "telemetry off (--no-telemetry)"
    try:
        from xpubench.hardware.telemetry import open_window

        return open_window(backend.device_kind, backend.spec.device_index, device_uuid=backend.device_uuid(),
                           cpu_tdp_w=options.cpu_tdp_w, energy_estimate=options.energy_estimate,
                           host_memory=host_memory), ""
    except Exception as exc:  # a meter that cannot open must not lose the timing
        return None, f"telemetry failed to open: {one_line(exc)}"


def spread_warnings(timing: TimingResult, target_rel_ci: float) -> list[str]:
    """Drift, a wide spread, an unsettled warm-up, too few rounds for 95%: said in the record, not hidden in it."""
    out: list[str] = []
    drift, med, iqr = timing.drift, timing.stats.median, timing.stats.iqr
    if drift is not None and abs(drift) > max(0.05, 3 * target_rel_ci):
        out.append(f"drift: median moved {drift:+.1%} from first to last third of rounds")
    if med > 0 and iqr / med > 0.10:
        out.append(f"noisy: IQR is {iqr / med:.0%} of the median")
    if not timing.warmup.settled:
        out.append(f"warm-up did not settle: the step time still moved after {timing.warmup.warmup_s:.2f} s")
    if timing.stats.confidence < 0.95:
        out.append(f"few rounds: {timing.stats.rounds} rounds count as {timing.stats.n_eff:.1f} independent ones; "
                   f"the CI [min, max] reaches {timing.stats.confidence:.0%}, not 95%")
    return out


def measure_step(backend: "Backend", step: "Step", options: "RunOptions", *,
                 timer: BlockTimer | None = None, on_round: OnRound | None = None,
                 units_per_step: float | None = None, timing: TimingConfig | None = None,
                 host: "HostPeakMeter | None" = None, turn: Turn | None = None) -> StepMeasurement:
    """Warm up, calibrate and time ``step`` under ``options``; meters run over the timed rounds.

    The caller has activated the backend, reset its peak memory and built the step
    (so the peak is this step's own). ``timing`` replaces the options' timing profile
    (the probe has its own); ``on_round(rounds, seconds_per_step)`` sees each timed round.
    ``host``: a host-memory meter the caller started before building the case; without
    one, host memory is metered over the timed rounds only (and the method says so).
    ``turn``: the timed rounds take turns with another worker's (xpubench.measure.timing).
    """
    timer = timer or BackendTimer(backend)
    cfg = replace(timing or options.timing_config())  # a copy: the window may lengthen it
    m = StepMeasurement(timing=None, timing_method=timer.method, time_budget_s=cfg.time_budget_s,
                        compile_s=step.compile_s, units_per_step=units_per_step)
    if timer.disabled:
        timer.run_once(step)
        return m
    window, why_not = open_telemetry(backend, options, host_memory=host is None)
    if window is not None:
        cfg.min_window_s = max(cfg.min_window_s, window.min_window_s)  # energy needs a long enough window

    def window_started(iterations_per_round: int) -> None:
        timer.window_started(iterations_per_round)
        if window is not None:
            window.start()  # the device is idle: the last block ended with a wait

    def round_timed(rounds: int, seconds_per_step: float) -> None:
        timer.round_timed(seconds_per_step)
        if on_round is not None:
            on_round(rounds, seconds_per_step)

    tele = None
    try:
        m.timing = measure(lambda n: timer.time_block(step, n), cfg, on_round=round_timed,
                           on_window_start=window_started, turn=turn)
        if window is not None:
            steps = m.timing.iterations_per_round * len(m.timing.samples)
            tele = window.stop(steps=steps, units_per_step=units_per_step)
    finally:
        if window is not None:
            window.close()
    _read_meters(m, backend, tele, why_not)
    if host is not None:
        m.memory.update(host.stop().as_case_dict())
        m.memory["method"] = f"device: {m.memory.get('device_method')}; host: {m.memory.get('host_method')}"
    m.warnings += spread_warnings(m.timing, cfg.target_rel_ci)
    return m


def _read_meters(m: StepMeasurement, backend: "Backend", tele: dict | None, why_not: str) -> None:
    """Memory (the backend's device peak, the window's host peak), energy and device state."""
    memory: dict[str, Any] = {"host_peak_bytes": None, "host_method": "not measured"}
    memory.update(backend.peak_memory())
    if tele:
        memory.update(tele.get("host_memory") or {})
        m.energy = tele.get("energy")
        m.device_state = tele.get("device_state") or None
        m.warnings += tele.get("warnings") or []
    else:
        m.energy = {"joules_per_step": None, "avg_power_w": None, "method": "unavailable", "reason": why_not}
    # one line naming both sources, as the results contract asks for memory.method
    memory["method"] = f"device: {memory.get('device_method')}; host: {memory.get('host_method')}"
    m.memory = memory

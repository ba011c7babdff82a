"""Measuring through pytest-benchmark: our calibration, pytest-benchmark's timer.

The pytest plugin runs cases in the pytest process itself. For each one:

1. our warm-up and calibration (``xpubench.measure.timing``) pick iterations per round N and
   a number of rounds R from the step time and the time budget;
2. ``benchmark.pedantic(target, rounds=R, iterations=N)`` times the rounds with
   pytest-benchmark's own timer, so its table, JSON, autosave and compare work
   unchanged; ``target`` runs one step and waits for the device, so every round
   pytest-benchmark times ends after the device finished its work;
3. telemetry, memory, accuracy and the work done go into ``extra_info`` under the
   names the results file uses.

Nothing here imports a framework at import time.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import pytest

if TYPE_CHECKING:
    from xpubench.backends.base import Backend, Step
    from xpubench.spec.registry import Case
    from xpubench.measure.timing import TimingConfig



# --------------------------------------------------------------------- options
@dataclass
class XpuOptions:
    """What the command line asked for (see xpubench.pytest.plugin for the flags)."""

    enabled: bool = False  # --xpubench: collect the built-in cases
    backends: list[str] = field(default_factory=list)  # --xpu-backend (empty = defaults)
    suites: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)  # name globs, as `xpubench run --case`
    size: str = "default"
    time_budget_s: float | None = None
    min_rounds: int | None = None
    threads: int | None = None
    telemetry: bool = True
    accuracy: bool = True

    def timing_config(self) -> "TimingConfig":
        from xpubench.run.worker import RunOptions

        return RunOptions(size=self.size, time_budget_s=self.time_budget_s,
                          min_rounds=self.min_rounds).timing_config()


def parse_specs(texts: list[str]) -> list[str]:
    """Validated, normalized, de-duplicated backend specs (UserError on a bad one)."""
    from xpubench.backends.base import BackendSpec

    out: list[str] = []
    for text in texts:
        spec = str(BackendSpec.parse(text))
        if spec not in out:
            out.append(spec)
    return out


def default_specs() -> list[str]:
    """The specs a plain ``xpubench run`` would use here, that this machine can run."""
    from xpubench.backends.base import default_specs as defaults, make_backend

    return [str(s) for s in defaults() if make_backend(s).availability().ok]


# --------------------------------------------------------------- session state
class SessionState:
    """Per-pytest-session state: options, selected cases, backends set up once."""

    def __init__(self, options: XpuOptions):
        self.options = options
        self.used = options.enabled  # set when a case or the xpu_backend fixture ran
        self._specs: list[str] | None = None
        self._cases: dict[str, "Case"] | None = None
        self._backends: dict[str, "Backend | str"] = {}  # spec -> backend, or why not
        self._fingerprint: dict | None = None

    # selection ------------------------------------------------------------
    def specs(self) -> list[str]:
        if self._specs is None:
            self._specs = parse_specs(self.options.backends) if self.options.backends else default_specs()
        return self._specs

    def cases(self) -> dict[str, "Case"]:
        """Selected cases by full name (``suite/case_id:mode``), in suite order."""
        if self._cases is None:
            from xpubench.spec.registry import select

            o = self.options
            self._cases = {c.full_name: c for c in select(o.suites or None, o.cases or None, o.size)}
        return self._cases

    def case_params(self) -> list[Any]:
        """``pytest.param(case, backend)`` for every case x backend; skips carry their reason.

        Cases are the outer loop, so the backends of one case run back to back: slow
        drift of the machine then hits every backend of a case alike.
        """
        from xpubench.backends.base import make_backend

        backends = {spec: make_backend(spec) for spec in self.specs()}
        why_not = {spec: b.availability() for spec, b in backends.items()}
        params = []
        for name, case in self.cases().items():
            for spec, backend in backends.items():
                avail = why_not[spec]
                reason = avail.reason if not avail.ok else backend.skip_reason(case)
                marks = [pytest.mark.skip(reason=f"{spec}: {reason}")] if reason else []
                params.append(pytest.param(name, spec, id=f"{name}-{spec}", marks=marks))
        return params

    def case(self, full_name: str) -> "Case":
        return self.cases()[full_name]

    # backends -------------------------------------------------------------
    def backend(self, spec: str) -> "Backend":
        """The backend for ``spec``, set up on first use; a pytest skip when it cannot run."""
        got = self._backends.get(spec)
        if got is None:
            got = self._backends[spec] = self._setup(spec)
        if isinstance(got, str):
            pytest.skip(f"{spec}: {got}")
        return got

    def _setup(self, spec: str) -> "Backend | str":
        from xpubench.backends.base import make_backend
        from xpubench.run.worker import one_line

        backend = make_backend(spec)
        avail = backend.availability()
        if not avail.ok:
            return avail.reason
        try:
            backend.setup(self.options.threads)
        except Exception as exc:  # the device is not usable here: every item of it skips
            return f"setup failed: {one_line(exc)}"
        return backend

    def fingerprint(self) -> dict:
        if self._fingerprint is None:
            from xpubench.hardware.fingerprint import fingerprint

            self._fingerprint = fingerprint()
        return self._fingerprint


# ------------------------------------------------------------ device waiting
@dataclass(frozen=True)
class DeviceWait:
    """How a timed call waits for the device (mirrors each backend's time_block).

    ``fn(out)`` waits for the work behind ``out``; None = the device is synchronous.
    ``each_call``: wait after every call (XLA:CPU may overlap independent calls),
    otherwise once per round, after the round's last call (accelerator streams run
    in order, so the last output done means the round is done).
    """

    method: str
    fn: Callable[[Any], Any] | None = None
    each_call: bool = False


def device_wait(backend: "Backend") -> DeviceWait:
    """The backend's own rule for waiting on the device (see Backend.wait)."""
    if not backend.waits:
        return DeviceWait("perf_counter")  # the step returns when its work is done
    return DeviceWait(f"perf_counter+{backend.wait_name}", backend.wait, each_call=backend.wait_each_call)


def round_target(run: Callable[[], Any], wait: DeviceWait, every: int) -> Callable[[], Any]:
    """The callable pytest-benchmark times: one step, plus the device wait.

    pytest-benchmark calls it ``every`` times between two reads of its clock; the
    ``every``-th call of each round waits for the device, so the clock stops only
    after the device finished the round's work.
    """
    fn = wait.fn
    if fn is None:
        return run
    if wait.each_call or every <= 1:
        def target_each() -> Any:
            out = run()
            fn(out)
            return out

        return target_each
    count = 0

    def target() -> Any:
        nonlocal count
        out = run()
        count += 1
        if count == every:
            count = 0
            fn(out)
        return out

    return target


# ------------------------------------------------------------------ measuring
def open_telemetry(backend: "Backend") -> tuple[Any, str | None]:
    """A telemetry window for the backend's device, or (None, why not)."""
    try:
        from xpubench.hardware.telemetry import open_window
    except ImportError as exc:  # the telemetry package is optional at this layer
        return None, f"telemetry unavailable: {exc}"
    try:
        return open_window(backend.device_kind, backend.spec.device_index,
                           device_uuid=backend.device_uuid()), None
    except Exception as exc:  # a meter that cannot open must not lose the timing
        from xpubench.run.worker import one_line

        return None, f"telemetry failed to open: {one_line(exc)}"


def rounds_for(step_s: float, iterations: int, budget_s: float, cfg: "TimingConfig") -> int:
    """Rounds that fill the time budget, within [min_rounds, max_rounds]."""
    per_round = max(step_s * iterations, 1e-9)
    return max(cfg.min_rounds, min(cfg.max_rounds, math.ceil(budget_s / per_round)))


def measure_step(benchmark: Any, backend: "Backend", step: "Step", cfg: "TimingConfig", *,
                 units_per_step: float | None, telemetry: bool) -> dict[str, Any]:
    """Time ``step`` through ``benchmark.pedantic``; return the extra_info fields.

    The caller has activated the backend and reset its peak memory.
    """
    from xpubench.measure import stats as st
    from xpubench.measure.timing import iterations_per_round, measure_overhead, warm_up

    wait = device_wait(backend)
    out: dict[str, Any] = {"timing_method": wait.method}
    if getattr(benchmark, "disabled", False):
        # --benchmark-disable: run the step once, as a test, with no calibration.
        result = benchmark.pedantic(round_target(step.run, wait, 1), rounds=1, iterations=1)
        out.update(benchmark_disabled=True, compile_s=step.compile_s)
        out["result"] = result
        return out

    def run_block(n: int) -> float:
        return backend.time_block(step, n)

    wu = warm_up(run_block, cfg)
    overhead = measure_overhead(run_block)
    n = iterations_per_round(wu.estimate_s, overhead, cfg)
    window, why_no_window = open_telemetry(backend) if telemetry else (None, "telemetry off (--xpu-no-telemetry)")
    budget = cfg.time_budget_s
    if window is not None:
        budget = max(budget, window.min_window_s)  # energy needs a long enough window
    rounds = rounds_for(wu.estimate_s, n, budget, cfg)
    target = round_target(step.run, wait, n)
    tele = None
    try:
        if window is not None:
            window.start()  # the device is idle: time_block ended with a wait
        t0 = time.perf_counter()
        result = benchmark.pedantic(target, rounds=rounds, iterations=n, warmup_rounds=0)
        if wait.fn is not None:
            wait.fn(result)  # pedantic's extra call after a looped run may still be running
        window_s = time.perf_counter() - t0
        # pedantic makes one extra call after looped rounds, to return its result
        steps = rounds * n + (1 if n > 1 else 0)
        if window is not None:
            tele = window.stop(steps=steps, units_per_step=units_per_step)
    finally:
        if window is not None:
            window.close()

    samples = list(benchmark.stats.stats.data)  # seconds per step, one per round
    summary = st.summarize(samples)
    med = summary.median
    out.update(
        rounds=rounds,
        iterations_per_round=n,
        timer_overhead_s=overhead,
        overhead_fraction=overhead / (med * n) if med > 0 else None,
        first_call_s=wu.first_call_s,
        warmup_s=wu.warmup_s,
        warmup_iterations=wu.iterations,
        warmup_settled=wu.settled,
        window_s=window_s,
        time_budget_s=budget,
        median_ci95=list(summary.ci95),
        drift=st.drift(samples),
        compile_s=step.compile_s,
        throughput_per_s=(units_per_step / med) if (units_per_step and med > 0) else None,
    )
    from xpubench.run.worker import telemetry_fields

    fields = telemetry_fields(backend, tele, why_no_window, out["drift"], med, summary.iqr, cfg.target_rel_ci)
    warnings = fields.pop("warnings")
    out.update(fields)
    if warnings:
        out["warnings"] = warnings
    out["result"] = result
    return out


def plain(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python numbers, tuples to lists, NaN/Inf to None."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    item = getattr(obj, "item", None)  # numpy scalar
    if callable(item):
        try:
            return plain(item())
        except (TypeError, ValueError):
            pass
    return str(obj)


# ------------------------------------------------------------------ one case
@contextlib.contextmanager
def recorded_warnings(into: list[str]) -> Any:
    """Note each distinct warning (framework notes say something about a measurement, as
    in the results file's ``warnings``), then re-issue them so pytest's filters and
    summary still see them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # once per location: cheap inside timed loops
        try:
            yield
        finally:
            into.extend(sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:300]}"
                                for w in caught}))
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def run_case(config: Any, full_name: str, spec: str, benchmark: Any) -> None:
    """Body of the built-in ``test_suite`` item: one case on one backend."""
    from xpubench.errors import SkipCase
    from xpubench.run.worker import accuracy_vs_fp32, base_record, record_step_notes

    state = get_state(config)
    case = state.case(full_name)
    backend = state.backend(spec)
    reason = backend.skip_reason(case)  # re-checked now that the device is known
    if reason:
        pytest.skip(f"{spec}: {reason}")
    if benchmark.group is None:
        benchmark.group = full_name  # one table per case: its backends side by side
    info = base_record(case, backend.spec)
    cfg = state.options.timing_config()
    diverged = False
    seen: list[str] = []
    try:
        with recorded_warnings(seen):
            backend.activate()
            backend.reset_peak_memory()
            try:
                step = backend.build(case)
            except SkipCase as e:
                pytest.skip(f"{spec}: {e}")
            record_step_notes(info, step)
            m = measure_step(benchmark, backend, step, cfg, units_per_step=info["units_per_step"],
                             telemetry=state.options.telemetry)
            m.pop("result", None)
            info.update(m)
            info["error_vs_fp32"] = None
            if step.finite is not None and not step.finite():
                info.update(status="diverged", reason="loss became NaN or Inf")
                diverged = True
            elif (state.options.accuracy and backend.spec.precision != "fp32" and step.check is not None
                  and not info.get("benchmark_disabled")):
                err, detail = accuracy_vs_fp32(backend, case, step)
                info["error_vs_fp32"] = err
                info["error_vs_fp32_detail"] = detail
    finally:
        if seen:
            info["warnings"] = list(info.get("warnings") or []) + seen
        benchmark.extra_info.update(plain(info))
        try:
            backend.release()
        except Exception:
            pass
    if diverged:
        pytest.fail(f"{full_name} on {spec}: the loss became NaN or Inf (recorded status 'diverged')")


# -------------------------------------------------------------------- state key
STATE_KEY = pytest.StashKey[SessionState]()


def get_state(config: Any) -> SessionState:
    state = config.stash.get(STATE_KEY, None)
    if state is None:  # the plugin was not configured (e.g. module used directly)
        state = config.stash[STATE_KEY] = SessionState(XpuOptions())
    return state


__all__ = ["DeviceWait", "SessionState", "XpuOptions", "device_wait", "get_state",
           "measure_step", "parse_specs", "plain", "round_target", "rounds_for", "run_case"]

"""Measuring one case on one backend, inside a worker process.

``measure_case`` turns (backend, case) into one results-file record. ``worker_main``
is the worker process's loop: the parent (xpubench.run.supervisor) sends case keys, the worker
answers with progress messages and one record per case.
"""

from __future__ import annotations

import math
import os
import resource
import signal
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from xpubench.spec import registry as specmod
from xpubench.errors import SkipCase
from xpubench.measure.timing import TimingConfig, measure


@dataclass
class RunOptions:
    size: str = "default"
    time_budget_s: float | None = None  # None = the size's default
    target_rel_ci: float = 0.01
    min_rounds: int | None = None
    case_timeout_s: float = 600.0
    threads: int | None = None
    telemetry: bool = True
    cpu_tdp_w: float | None = None
    accuracy: bool = True  # error_vs_fp32 for reduced precisions
    cold_cache: bool = False  # CUDA: flush L2 before each timed call
    memory_limit_bytes: int | None = None  # address space a worker may add after setup (tests)
    extra: dict[str, Any] = field(default_factory=dict)

    def timing_config(self) -> TimingConfig:
        cfg = TimingConfig.smoke() if self.size == "smoke" else TimingConfig()
        if self.time_budget_s is not None:
            cfg.time_budget_s = self.time_budget_s
        if self.min_rounds is not None:
            cfg.min_rounds = self.min_rounds
        cfg.target_rel_ci = self.target_rel_ci
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)


OOM_MARKERS = ("out of memory", "resource_exhausted", "resource exhausted", "cannot allocate memory")


def classify_exception(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "oom"
    name = type(exc).__name__.lower()
    text = str(exc).lower()
    if "outofmemory" in name or any(m in text for m in OOM_MARKERS):
        return "oom"
    return "error"


def one_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:500]


def base_record(case: specmod.Case, backend_spec) -> dict[str, Any]:
    work = case.work
    return {
        "suite": case.suite, "case": case.case_id, "name": case.name, "params": dict(case.params),
        "mode": case.mode, "size": case.size, "backend": str(backend_spec),
        "framework": backend_spec.framework, "device": backend_spec.device,
        "precision": backend_spec.precision, "status": "ok", "reason": None,
        "unit": case.unit, **work.record_fields(backend_spec.precision),
    }


def telemetry_fields(backend, tele: dict | None, why_no_window: str, drift: float | None,
                     median: float, iqr: float, target_rel_ci: float) -> dict[str, Any]:
    """``memory``, ``energy``, ``device_state`` and ``warnings`` of a record, from the
    window's meters, the backend's device peak and the spread of the timed rounds."""
    memory: dict[str, Any] = {"host_peak_bytes": None, "host_method": "not measured"}
    memory.update(backend.peak_memory())
    out: dict[str, Any] = {}
    warnings: list[str] = []
    if tele:
        memory.update(tele.get("host_memory") or {})
        out["energy"] = tele.get("energy")
        if tele.get("device_state"):
            out["device_state"] = tele["device_state"]
        warnings += tele.get("warnings") or []
    else:
        out["energy"] = {"joules_per_step": None, "avg_power_w": None, "method": "unavailable",
                         "reason": why_no_window}
    # one line naming both sources, as the results contract asks for memory.method
    memory["method"] = f"device: {memory.get('device_method')}; host: {memory.get('host_method')}"
    out["memory"] = memory
    if drift is not None and abs(drift) > max(0.05, 3 * target_rel_ci):
        warnings.append(f"drift: median moved {drift:+.1%} from first to last third of rounds")
    if median > 0 and iqr / median > 0.10:
        warnings.append(f"noisy: IQR is {iqr / median:.0%} of the median")
    out["warnings"] = warnings
    return out


def record_step_notes(rec: dict[str, Any], step) -> None:
    """Copy what the builder noted into the record; counted FLOPs replace analytic ones."""
    if step.notes:
        rec["notes"] = dict(step.notes)
    if step.notes.get("flops_counted"):
        # A FLOP counter that saw the real program beats the analytic formula.
        rec["flops_analytic"] = rec["flops_per_step"]
        rec["flops_per_step"] = float(step.notes["flops_counted"])
        rec["flops_method"] = step.notes.get("flop_counter", "counted")
    elif rec["flops_per_step"] is not None:
        rec["flops_method"] = "analytic"


def relative_error(out: dict, ref: dict) -> tuple[float | None, dict[str, float]]:
    """Relative L2 error of each output against its fp32 twin; the max is the headline."""
    from xpubench.suites.common import rel_l2

    detail = {k: rel_l2(out[k], ref[k]) for k in ref if k in out and getattr(out[k], "shape", None) == ref[k].shape}
    return (max(detail.values()) if detail else None), detail


def accuracy_vs_fp32(backend, case, step) -> tuple[float | None, dict[str, float]]:
    from xpubench.backends.base import make_backend

    twin = make_backend(backend.spec.with_precision("fp32"))
    twin.setup()
    try:
        twin.activate()
        ref = twin.build(case).check()
    finally:
        backend.activate()
    return relative_error(step.check(), ref)


def measure_case(backend, case: specmod.Case, opts: RunOptions,
                 on_round: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    rec = base_record(case, backend.spec)
    reason = backend.skip_reason(case)
    if reason:
        rec.update(status="skipped", reason=reason)
        return rec
    backend.activate()
    backend.reset_peak_memory()
    try:
        step = backend.build(case)
    except SkipCase as e:
        rec.update(status="skipped", reason=str(e) or "not offered by this framework build")
        return rec
    record_step_notes(rec, step)
    cfg = opts.timing_config()
    window = None
    if opts.telemetry:
        from xpubench.hardware.telemetry import open_window

        window = open_window(backend.device_kind, backend.spec.device_index, cpu_tdp_w=opts.cpu_tdp_w)
        cfg.min_window_s = max(cfg.min_window_s, window.min_window_s)
    result = measure(lambda n: backend.time_block(step, n), cfg, on_round=on_round,
                     on_window_start=window.start if window else None)
    steps = result.iterations_per_round * len(result.samples)
    tele = window.stop(steps=steps, units_per_step=rec["units_per_step"]) if window else None
    if window:
        window.close()
    med = result.stats.median
    rec.update(
        time_s=result.time_block(),
        timing_method=backend.timing_method,
        first_call_s=result.warmup.first_call_s,
        warmup_s=result.warmup.warmup_s,
        warmup_iterations=result.warmup.iterations,
        warmup_settled=result.warmup.settled,
        compile_s=step.compile_s,
        throughput_per_s=rec["units_per_step"] / med if med > 0 else None,
    )
    fields = telemetry_fields(backend, tele, "telemetry off (--no-telemetry)", result.drift, med,
                              result.stats.iqr, cfg.target_rel_ci)
    warnings = fields.pop("warnings")
    rec.update(fields)
    if step.finite is not None and not step.finite():
        rec.update(status="diverged", reason="loss became NaN or Inf")
    elif opts.accuracy and backend.spec.precision != "fp32" and step.check is not None:
        err, detail = accuracy_vs_fp32(backend, case, step)
        rec["error_vs_fp32"] = err
        rec["error_vs_fp32_detail"] = detail
    if warnings:
        rec["warnings"] = warnings
    return rec


def error_record(case: specmod.Case, backend_spec, exc: BaseException) -> dict[str, Any]:
    rec = base_record(case, backend_spec)
    rec.update(status=classify_exception(exc), reason=one_line(exc),
               traceback="".join(traceback.format_exception(exc))[-8000:])
    return rec


# ------------------------------------------------------------------- worker process
def _virtual_size() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _apply_limits(opts: RunOptions) -> None:
    """Cap the worker's address space at its size after setup plus the allowed growth:
    frameworks reserve gigabytes of virtual memory at import, so an absolute cap
    would be meaningless."""
    if opts.memory_limit_bytes:
        limit = _virtual_size() + opts.memory_limit_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def worker_main(conn, spec_text: str, opts_dict: dict) -> None:
    """Loop of one worker process: setup the backend, then measure the cases sent."""
    from xpubench.backends.base import make_backend

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns Ctrl-C
    opts = RunOptions(**opts_dict)
    backend = make_backend(spec_text)
    try:
        info = backend.setup(opts.threads)
        if hasattr(backend, "cold_cache"):
            backend.cold_cache = opts.cold_cache
    except Exception as exc:  # the device is not usable here: every case is skipped
        conn.send(("setup_failed", one_line(exc)))
        return
    _apply_limits(opts)
    conn.send(("ready", info))
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            return
        _, key, params = msg
        case = specmod.find(tuple(key), params)
        last = [0.0]

        def on_round(rounds: int, sample: float) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.1:  # throttle: progress, not a firehose
                last[0] = now
                conn.send(("round", rounds, sample))

        try:
            # Framework warnings (e.g. "cannot dispatch to fused implementation") say
            # something about the measurement: keep them in the record, not on stderr.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rec = measure_case(backend, case, opts, on_round)
            seen = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:300]}" for w in caught})
            if seen:
                rec.setdefault("warnings", []).extend(seen)
        except BaseException as exc:  # recorded, and the worker goes on
            rec = error_record(case, backend.spec, exc)
        finally:
            try:
                backend.release()
            except Exception:
                pass
        rec["worker_pid"] = os.getpid()
        rec["threads"] = info.get("threads")
        conn.send(("result", rec))


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)

"""The record of a measured case: the results-file fields and pytest-benchmark's extra_info, from one measurement.

The results file keeps the timing in a ``time_s`` block; pytest-benchmark keeps its
own stats of the same rounds, so its ``extra_info`` carries only what those stats
lack, flat (``xpubench.results.pytest_benchmark`` reads them back). Both come from one
:class:`~xpubench.measure.step.StepMeasurement` here, with the case's identity, the
builder's notes, accuracy against fp32 and the status of failed cases.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xpubench.backends.base import Backend, BackendSpec, Step
    from xpubench.measure.reference import SharedReference
    from xpubench.measure.step import StepMeasurement
    from xpubench.options import RunOptions
    from xpubench.spec.registry import Case

OOM_MARKERS = ("out of memory", "resource_exhausted", "resource exhausted", "cannot allocate memory")


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 500 characters)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:500]


def classify_exception(exc: BaseException) -> str:
    """The status a failed case gets: ``oom`` for out-of-memory errors, else ``error``."""
    if isinstance(exc, MemoryError):
        return "oom"
    name = type(exc).__name__.lower()
    text = str(exc).lower()
    if "outofmemory" in name or any(m in text for m in OOM_MARKERS):
        return "oom"
    return "error"


def case_record(case: "Case", spec: "BackendSpec") -> dict[str, Any]:
    """What a record says before anything is measured: the case, the backend, the work."""
    work = case.work
    return {
        "suite": case.suite, "case": case.case_id, "name": case.name, "params": dict(case.params),
        "mode": case.mode, "size": case.size, "backend": str(spec),
        "framework": spec.framework, "device": spec.device,
        "precision": spec.precision, "status": "ok", "reason": None,
        "unit": case.unit, **work.record_fields(spec.precision),
    }


def error_record(case: "Case", spec: "BackendSpec", exc: BaseException) -> dict[str, Any]:
    """A failed case's record. A framework's "not implemented for this precision or device"
    is ``skipped`` with the framework's own message; other failures keep their status."""
    from xpubench.measure.unsupported import is_unsupported

    rec = case_record(case, spec)
    unsupported = is_unsupported(exc)
    if unsupported:
        rec.update(status="skipped", reason=unsupported)
        return rec
    rec.update(status=classify_exception(exc), reason=one_line(exc),
               traceback="".join(traceback.format_exception(exc))[-8000:])
    return rec


def note_step(rec: dict[str, Any], step: "Step") -> None:
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


def _meters(m: "StepMeasurement") -> dict[str, Any]:
    out: dict[str, Any] = {"energy": m.energy, "memory": m.memory}
    if m.device_state:
        out["device_state"] = m.device_state
    if m.warnings:
        out["warnings"] = list(m.warnings)
    return out


def results_fields(m: "StepMeasurement") -> dict[str, Any]:
    """The results file's fields of a measurement (``time_s`` block, warm-up, meters)."""
    if m.timing is None:
        return {"timing_method": m.timing_method, "compile_s": m.compile_s}
    t = m.timing
    return {
        "time_s": t.time_block(),
        "timing_method": m.timing_method,
        "first_call_s": t.warmup.first_call_s,
        "warmup_s": t.warmup.warmup_s,
        "warmup_iterations": t.warmup.iterations,
        "warmup_settled": t.warmup.settled,
        "compile_s": m.compile_s,
        "throughput_per_s": m.throughput_per_s,
        **_meters(m),
    }


def extra_info_fields(m: "StepMeasurement") -> dict[str, Any]:
    """pytest-benchmark ``extra_info`` of a measurement: what its own stats of the same
    rounds lack (rounds, median, samples are in its stats)."""
    if m.timing is None:  # --benchmark-disable: one untimed call
        return {"timing_method": m.timing_method, "benchmark_disabled": True, "compile_s": m.compile_s}
    t = m.timing
    med = t.stats.median
    return {
        "timing_method": m.timing_method,
        "rounds": t.stats.rounds,
        "iterations_per_round": t.iterations_per_round,
        "timer_overhead_s": t.timer_overhead_s,
        "overhead_fraction": t.overhead_fraction if med > 0 else None,
        "first_call_s": t.warmup.first_call_s,
        "warmup_s": t.warmup.warmup_s,
        "warmup_iterations": t.warmup.iterations,
        "warmup_settled": t.warmup.settled,
        "window_s": t.window_s,
        "time_budget_s": m.time_budget_s,
        "median_ci95": list(t.stats.ci95),
        "drift": t.drift,
        "compile_s": m.compile_s,
        "throughput_per_s": m.throughput_per_s,
        **_meters(m),
    }


def relative_error(out: dict, ref: dict) -> tuple[float | None, dict[str, float]]:
    """Relative L2 error of each output against its fp32 twin; the max is the headline."""
    from xpubench.suites.common import rel_l2

    detail = {k: rel_l2(out[k], ref[k]) for k in ref if k in out and getattr(out[k], "shape", None) == ref[k].shape}
    return (max(detail.values()) if detail else None), detail


def accuracy_vs_fp32(backend: "Backend", case: "Case", step: "Step",
                     options: "RunOptions | None" = None) -> tuple[float | None, dict[str, float]]:
    """The step's outputs against an fp32 twin of the same case, built the same way."""
    from xpubench.backends.base import make_backend

    twin = make_backend(backend.spec.with_precision("fp32"))
    twin.setup()
    try:
        twin.activate()
        ref = twin.build(case, options=options).check()
    finally:
        backend.activate()
    return relative_error(step.check(), ref)


def finish_record(rec: dict[str, Any], backend: "Backend", case: "Case", step: "Step",
                  options: "RunOptions", timed: bool, shared: "SharedReference | None" = None) -> None:
    """Status after the timed rounds: ``diverged`` when the loss is no longer finite;
    otherwise, for a timed reduced precision, the error against fp32 (through the run's
    shared outputs where the run planned them: xpubench.measure.reference)."""
    if step.finite is not None and not step.finite():
        rec.update(status="diverged", reason="loss became NaN or Inf")
    elif timed and options.accuracy and step.check is not None:
        if shared is not None:
            _share_outputs(rec, backend, step, shared)
        if backend.spec.precision != "fp32" and "error_vs_fp32" not in rec and not (shared and shared.offers):
            rec["error_vs_fp32"], rec["error_vs_fp32_detail"] = accuracy_vs_fp32(backend, case, step, options)


def _share_outputs(rec: dict[str, Any], backend: "Backend", step: "Step", shared: "SharedReference") -> None:
    from xpubench.measure.reference import REFERENCE_ERRORS, load_outputs, save_outputs

    ref = load_outputs(shared.load)
    if ref is not None:  # a reduced slot after its fp32 twin
        rec["error_vs_fp32"], rec["error_vs_fp32_detail"] = relative_error(step.check(), ref)
        return
    if shared.load is not None:  # the fp32 slot left nothing: build the twin
        return
    out = step.check()
    if shared.save is not None:
        save_outputs(shared.save, out)
    errors = {}
    for spec, path in shared.judge.items():  # the fp32 slot, after reduced slots that offered their outputs
        theirs = load_outputs(path)
        if theirs is not None:
            err, detail = relative_error(theirs, out)
            errors[spec] = {"error_vs_fp32": err, "error_vs_fp32_detail": detail}
    if errors:
        rec[REFERENCE_ERRORS] = errors

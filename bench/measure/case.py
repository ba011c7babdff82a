"""One case on one backend: build its step, measure it, return its record."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from xpubench.errors import SkipCase
from xpubench.hardware.telemetry.host_memory import HostPeakMeter
from xpubench.measure import record
from xpubench.measure import step as measuring
from xpubench.measure.convergence import TO_TARGET_MODE, measure_convergence
from xpubench.measure.latency import latency_block
from xpubench.spec.registry import DATA_PARALLEL_MODE

if TYPE_CHECKING:
    from xpubench.backends.base import Backend
    from xpubench.measure.reference import SharedReference
    from xpubench.measure.step import BlockTimer, StepMeasurement
    from xpubench.measure.timing import OnRound
    from xpubench.options import RunOptions
    from xpubench.run.paired import Turns
    from xpubench.spec.registry import Case

Layout = Callable[["StepMeasurement"], dict[str, Any]]


def measure_case(backend: "Backend", case: "Case", options: "RunOptions", *,
                 timer: "BlockTimer | None" = None, on_round: "OnRound | None" = None,
                 layout: Layout = record.results_fields,
                 shared: "SharedReference | None" = None, turns: "Turns | None" = None) -> dict[str, Any]:
    """The case's record, ``skipped`` (with the reason) where this backend does not run it.

    ``layout`` turns the measurement into record fields: the results file's by
    default, pytest-benchmark's ``extra_info`` for the pytest items. Exceptions from
    building or running the step propagate (the caller decides what a failure is).
    ``shared``: the run's fp32 outputs of this case, to save or to read
    (:mod:`xpubench.measure.reference`).
    ``turns``: this worker takes turns with another (xpubench.run.paired): its build,
    injection tuning and warm-up in one turn, then one turn per timed round; a case
    timed without rounds is measured whole in its set-up turn.
    """
    rec = record.case_record(case, backend.spec)
    reason = backend.skip_reason(case)
    if reason:
        rec.update(status="skipped", reason=reason)
        return rec
    if turns is not None:
        # The other worker is idle while this one builds and warms up; a case timed
        # without rounds (distributed, train to a target) holds this turn to its end.
        turns.setup()
    if case.mode == DATA_PARALLEL_MODE:  # distributed: xpubench.run.distributed starts the ranks
        from xpubench.run.distributed import measure_distributed

        return measure_distributed(backend, case, options)
    if case.mode == TO_TARGET_MODE:  # convergence: train to a target, not timed rounds of one step
        on_epoch = (lambda p: on_round(p.epoch, p.train_s)) if on_round else None
        rec.update(measure_convergence(backend, case, seed=options.pass_index, on_epoch=on_epoch))
        return rec
    backend.activate()
    backend.reset_peak_memory()  # before the build: the peak is this case's own
    # Host memory too: a baseline before the build (after earlier cases' memory is
    # handed back), so the peak does not depend on which cases ran before in this worker.
    host = HostPeakMeter() if options.telemetry else None
    if host is not None:
        host.start(release_first=True)
    try:
        try:
            step = backend.build(case, options=options)
        except SkipCase as e:
            rec.update(status="skipped", reason=str(e) or "not offered by this framework build")
            return rec
        record.note_step(rec, step)
        if options.inject_slowdown:  # validation only (calibrate, the verdict benchmark): said in the record
            from xpubench.measure.inject import check_delivered, inject_into, parse_injection

            plain = step
            step, injected = inject_into(step, [parse_injection(t) for t in options.inject_slowdown], case,
                                         wait=backend.sync)
            if injected:
                # the spin tuned to the asked slowdown, then what it delivers: A/B in this process
                check_delivered(plain, step, injected, backend.time_block, options.timing_config().min_round_s)
                rec["injected_slowdown"] = injected
        # latency cases: every call timed on its own, until a number of calls
        timing = replace(options.timing_config(), per_call=True) if case.latency else None
        m = measuring.measure_step(backend, step, options, timer=timer, on_round=on_round,
                                   units_per_step=rec["units_per_step"], timing=timing, host=host,
                                   turn=turns.round if turns is not None else None)
    finally:
        if host is not None:
            host.close()
    rec.update(layout(m))
    if rec.get("injected_slowdown"):
        from xpubench.measure.inject import finish_note

        inj = finish_note(rec["injected_slowdown"])
        share = f" ({inj['spin']:.0%} of its own time, tuned in this process)" if "spin" in inj else ""
        spun = f", median {inj['delay_s'] * 1e6:.1f} us" if inj["delay_s"] is not None else ""
        ab = inj.get("delivered_ab")
        measured = ab is not None and not math.isnan(ab)
        got = f"; an in-process A/B before the rounds measured {ab:+.1%}" if measured else ""
        rec.setdefault("warnings", []).append(
            f"injected slowdown: {inj['fraction']:.0%} asked, busy-waited per call after the step{share}{spun}{got} "
            f"(--inject-slowdown {inj['pattern']}=...): for validating verdicts only")
    if case.latency and m.timing is not None:
        rec["latency_s"] = latency_block(m.timing.samples)
    record.finish_record(rec, backend, case, step, options, timed=m.timing is not None, shared=shared)
    return rec


def set_up(backend: "Backend", options: "RunOptions") -> dict[str, Any]:
    """Set the backend up under the run's options (threads, cold cache); returns its facts."""
    info = backend.setup(options.threads)
    if hasattr(backend, "cold_cache"):  # CUDA backends: flush L2 before each timed call
        backend.cold_cache = options.cold_cache
    return info

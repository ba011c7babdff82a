"""The worker process's loop: set up one backend, then measure each case the parent sends.

The parent (``xpubench.run.supervisor``) sends case keys; the worker answers with
throttled progress messages and one record per case. A ``paired_case`` is measured
taking turns with another worker (``xpubench.run.paired``). A case that raises is
recorded with its status and the worker goes on.
"""

from __future__ import annotations

import gc
import os
import resource
import signal
import time
import warnings
from typing import Any

from xpubench.measure.case import measure_case, set_up
from xpubench.measure.record import error_record, one_line
from xpubench.measure.reference import SharedReference
from xpubench.options import RunOptions
from xpubench.run.allocator import settle_malloc
from xpubench.run.host_facts import process_facts
from xpubench.run.paired import Turns
from xpubench.spec import registry as specmod

PROGRESS_EVERY_S = 0.1  # progress, not a firehose


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


def _measure_one(conn, backend, case: specmod.Case, opts: RunOptions,
                 shared: SharedReference | None = None, turns: Turns | None = None) -> dict[str, Any]:
    last = [0.0]

    def on_round(rounds: int, sample: float) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            conn.send(("round", rounds, sample))

    started = time.perf_counter()
    try:
        # Framework warnings (e.g. "cannot dispatch to fused implementation") say
        # something about the measurement: keep them in the record, not on stderr.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rec = measure_case(backend, case, opts, on_round=on_round, shared=shared, turns=turns)
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
    # what the case cost in all (build, compile, warm-up, rounds, the fp32 check): where a run's time goes
    rec["case_wall_s"] = time.perf_counter() - started
    return rec


def worker_main(conn, spec_text: str, opts_dict: dict) -> None:
    """Loop of one worker process: set up the backend, then measure the cases sent."""
    from xpubench.backends.base import make_backend

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns Ctrl-C
    opts = RunOptions.from_dict(opts_dict)
    backend = make_backend(spec_text)
    try:
        info = set_up(backend, opts)
    except Exception as exc:  # the device is not usable here: every case is skipped
        conn.send(("setup_failed", one_line(exc)))
        return
    # after the framework's set-up, before any case: every case starts from one allocator state
    malloc_state = settle_malloc()
    _apply_limits(opts)
    # The framework's own objects live as long as the worker: keep them out of the
    # full collection each case's memory baseline runs (0.09 s -> 0.02 s per case with JAX).
    gc.freeze()
    facts = {**process_facts(), "malloc": malloc_state}  # what can make this process differ from the next one
    conn.send(("ready", info))
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            return
        if msg[0] == "paired_case":  # taking turns with another worker (xpubench.run.paired)
            _, key, params, pairing = msg
            rec = _measure_one(conn, backend, specmod.find(tuple(key), params), opts, turns=Turns(conn))
            rec["paired"] = pairing
        else:
            _, key, params, shared = msg
            rec = _measure_one(conn, backend, specmod.find(tuple(key), params), opts,
                               SharedReference.from_message(shared))
        rec["worker_pid"] = os.getpid()
        rec["threads"] = info.get("threads")
        rec["process"] = facts
        conn.send(("result", rec))

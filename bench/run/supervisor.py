"""The parent side of a run: the interleaved plan's cases go to supervised worker processes.

The parent never runs a case itself. It walks the plan (case-major, the backends of
a case in a seeded shuffled order, K passes in fresh workers: xpubench.run.schedule)
and feeds one case at a time to that backend's worker and waits with a deadline: a case that hangs is recorded ``timeout`` and its
worker killed; a worker that dies is recorded ``crashed`` (or ``oom`` when the kernel
killed it); either way a fresh worker takes the next case. Every record is appended
to the run file as soon as it arrives, so nothing measured is lost.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from xpubench.backends.base import BackendSpec, make_backend
from xpubench.measure.record import case_record
from xpubench.measure.reference import AwaitingFp32, SharedReference, plan_references
from xpubench.options import RunOptions
from xpubench.results.writer import RunWriter
from xpubench.run.merge import merge_passes
from xpubench.run.schedule import Slot, interleaved, new_seed
from xpubench.spec import registry as specmod

_MP = mp.get_context("spawn")  # a clean interpreter: no inherited framework state


class Display(Protocol):
    def case_started(self, case: specmod.Case, spec: BackendSpec) -> None: ...
    def case_round(self, rounds: int, sample_s: float) -> None: ...
    def case_finished(self, record: dict) -> None: ...


class NullDisplay:
    def case_started(self, case, spec) -> None: ...
    def case_round(self, rounds, sample_s) -> None: ...
    def case_finished(self, record) -> None: ...


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop after recording what was measured."""


@dataclass
class Outcome:
    records: list[dict] = field(default_factory=list)
    interrupted: bool = False

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    @property
    def all_good(self) -> bool:
        return not self.interrupted and all(r["status"] in ("ok", "skipped") for r in self.records)


class WorkerProcess:
    """The parent's handle on one worker process (xpubench.run.worker) for one backend spec."""

    def __init__(self, spec: BackendSpec, opts: RunOptions, env: dict[str, str] | None = None):
        """``env``: variables set for this worker only (a spawned child copies the parent's environment)."""
        self.spec = spec
        self.opts = opts
        self.conn, child = _MP.Pipe()
        self.proc = _MP.Process(target=_worker_entry, args=(child, str(spec), opts.to_dict()),
                                daemon=True, name=f"xpubench-{spec}")
        saved = {k: os.environ.get(k) for k in env or {}}
        try:
            os.environ.update(env or {})
            self.proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        child.close()
        self.killed_by_us = False
        self.info: dict[str, Any] | None = None

    def handshake(self, timeout: float) -> tuple[bool, str]:
        """Wait for the worker's setup. Returns (ready, reason-if-not)."""
        if not self.conn.poll(timeout):
            self.kill()
            return False, f"worker setup took longer than {timeout:.0f} s"
        try:
            kind, payload = self.conn.recv()
        except EOFError:
            self.proc.join(5)
            return False, f"worker died during setup ({describe_exit(self.proc.exitcode)})"
        if kind == "ready":
            self.info = payload
            return True, ""
        return False, payload

    def kill(self) -> None:
        self.killed_by_us = True
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)

    def stop(self) -> None:
        try:
            self.conn.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.kill()


def _worker_entry(conn, spec_text: str, opts: dict) -> None:
    from xpubench.run.worker import worker_main

    worker_main(conn, spec_text, opts)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def death_record(case: specmod.Case, spec: BackendSpec, exitcode: int | None) -> dict:
    rec = case_record(case, spec)
    how = describe_exit(exitcode)
    if exitcode == -signal.SIGKILL:
        # Nobody here sent SIGKILL: on Linux that is the kernel's OOM killer.
        rec.update(status="oom", reason=f"worker {how} (the kernel's OOM killer)")
    else:
        rec.update(status="crashed", reason=f"worker {how}")
    rec["exit_code"] = exitcode
    return rec


class Runner:
    """Runs the plan of :func:`xpubench.run.schedule.interleaved`: case-major, backends of a case
    interleaved, ``opts.repeat`` passes each in fresh workers; K records of a case x backend
    are merged into one (:mod:`xpubench.run.merge`) when the run ends."""

    def __init__(self, specs: list[BackendSpec], cases: list[specmod.Case], writer: RunWriter | None,
                 opts: RunOptions, display: Display | None = None, setup_timeout_s: float = 300.0):
        self.specs = specs
        self.cases = cases
        self.writer = writer
        self.opts = opts
        self.display = display or NullDisplay()
        self.setup_timeout_s = setup_timeout_s
        self.outcome = Outcome()
        self.backend_info: dict[str, Any] = {}
        self.seed = opts.seed if opts.seed is not None else new_seed()
        self.order: list[list[str]] = []  # per pass, the slots as "case|backend" (the seed reproduces it)
        self._references: tempfile.TemporaryDirectory | None = None

    @property
    def schedule(self) -> dict[str, Any]:
        """The run's ``schedule`` block: how the plan was ordered, from which seed, K."""
        return {"order": "case-major, backends of a case interleaved (shuffled per case and pass)",
                "seed": self.seed, "repeat": self.opts.repeat}

    def _record(self, rec: dict) -> None:
        self.outcome.records.append(rec)
        if self.writer is not None:
            self.writer.append(rec)
        self.display.case_finished(rec)

    def run(self) -> Outcome:
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
        try:
            usable = []
            for spec in self.specs:
                avail = make_backend(spec).availability()  # cheap: no framework import in the parent
                if avail.ok:
                    usable.append(spec)
                    continue
                for case in self.cases:
                    rec = case_record(case, spec)
                    rec.update(status="skipped", reason=avail.reason)
                    self._record(rec)
            plan = interleaved(self.cases, usable, repeat=self.opts.repeat, seed=self.seed,
                               name=lambda c: c.full_name)
            for slots in plan:
                self._run_pass(slots)
        except (KeyboardInterrupt, Interrupted):
            self.outcome.interrupted = True
        finally:
            signal.signal(signal.SIGTERM, previous)
            if self._references is not None:
                self._references.cleanup()
            if self.opts.repeat > 1:
                self._merge()
        return self.outcome

    def _merge(self) -> None:
        self.outcome.records = merge_passes(self.outcome.records)
        if self.writer is not None:
            self.writer.replace_measurements(self.outcome.records)

    def _spawn(self, spec: BackendSpec, pass_index: int) -> WorkerProcess:
        return WorkerProcess(spec, replace(self.opts, pass_index=pass_index))

    def _start(self, spec: BackendSpec, pass_index: int = 0,
               started: WorkerProcess | None = None) -> tuple[WorkerProcess | None, str]:
        """A worker ready for cases (``started``: one spawned earlier), or None and why not."""
        w = started or self._spawn(spec, pass_index)
        try:
            ok, reason = w.handshake(self.setup_timeout_s)
        except BaseException:
            w.kill()
            raise
        if not ok:
            w.kill()
            return None, reason
        self.backend_info[str(spec)] = w.info
        return w, ""

    def _run_pass(self, slots: list[Slot]) -> None:
        """One pass: one live worker per backend (fresh ones for this pass), each slot in order."""
        workers: dict[str, WorkerProcess] = {}
        fresh: dict[str, bool] = {}
        self.order.append([f"{slot.case.full_name}|{slot.spec}" for slot in slots])
        shared = plan_references(slots, self._reference_folder()) if self.opts.accuracy else {}
        awaiting = AwaitingFp32(slots, shared)

        def deliver(index: int, rec: dict) -> None:
            for r in awaiting.take(index, rec):
                self._record(r)

        # The pass's workers start together, before anything is timed: their imports
        # share the cores with each other instead of running one after another.
        spawned: dict[str, WorkerProcess] = {}
        try:
            for slot in slots:
                if str(slot.spec) not in spawned:
                    spawned[str(slot.spec)] = self._spawn(slot.spec, slot.pass_index)
            for index, slot in enumerate(slots):
                key = str(slot.spec)
                worker = workers.get(key)
                if worker is None:
                    worker, reason = self._start(slot.spec, slot.pass_index, spawned.pop(key, None))
                    if worker is None:
                        rec = case_record(slot.case, slot.spec)
                        rec.update(status="skipped", reason=f"backend not usable: {reason}")
                        rec["pass"] = slot.pass_index
                        deliver(index, rec)
                        continue
                    workers[key] = worker
                self.display.case_started(slot.case, slot.spec)
                rec, alive = self._run_case(worker, slot.case, shared.get(index))
                rec["pass"] = slot.pass_index
                if key not in fresh:
                    fresh[key] = make_backend(slot.spec).fresh_worker_per_case
                if fresh[key] and alive:
                    rec.setdefault("memory", {})["fresh_worker"] = True
                    worker.stop()
                    alive = False
                deliver(index, rec)
                if not alive:
                    del workers[key]
        finally:
            for worker in workers.values():
                worker.stop()
            for worker in spawned.values():  # interrupted before their first case
                worker.kill()
            for rec in awaiting.release():
                self._record(rec)

    def _reference_folder(self) -> str:
        """A folder for this run's shared fp32 outputs, removed when the run ends."""
        if self._references is None:
            self._references = tempfile.TemporaryDirectory(prefix="xpubench-fp32-")
        return self._references.name

    def _run_case(self, worker: WorkerProcess, case: specmod.Case,
                  shared: SharedReference | None = None) -> tuple[dict, bool]:
        """Send one case; wait for its record. Returns (record, worker still usable)."""
        try:
            worker.conn.send(("case", list(case.key), dict(case.params), shared and shared.to_message()))
        except (BrokenPipeError, OSError):
            worker.proc.join(5)
            return death_record(case, worker.spec, worker.proc.exitcode), False
        deadline = time.monotonic() + self.opts.case_timeout_s
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    worker.kill()
                    rec = case_record(case, worker.spec)
                    rec.update(status="timeout",
                               reason=f"no result within {self.opts.case_timeout_s:g} s; worker killed")
                    return rec, False
                if not worker.conn.poll(min(left, 0.25)):
                    if not worker.proc.is_alive():
                        worker.proc.join(5)
                        return death_record(case, worker.spec, worker.proc.exitcode), False
                    continue
                try:
                    msg = worker.conn.recv()
                except EOFError:
                    worker.proc.join(5)
                    return death_record(case, worker.spec, worker.proc.exitcode), False
                if msg[0] == "round":
                    self.display.case_round(msg[1], msg[2])
                elif msg[0] == "result":
                    return msg[1], True
        except BaseException:
            worker.kill()  # Ctrl-C mid-case: abandon it, the file keeps what was done
            raise


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted()


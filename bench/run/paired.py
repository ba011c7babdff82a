"""Two live workers take turns, so BASE's and NEW's rounds come from the same seconds.

Why: on a shared VM the speed of a memory-bound step moves from second to second with
what the neighbours do, and a fresh process samples a quarter of a second of it. Two
workers measuring torch LayerNorm forward with their 15-call blocks alternating
(8 pairs of fresh processes, 2-core VM): the process medians spread 0.11-0.15 in log
sd, the log ratio of a pair's two medians only 0.02 (docs/verdicts.md). A
confirmation whose two sides alternate round by round within one window therefore
needs far fewer processes than one that measures them seconds apart.

The protocol, over each worker's pipe (xpubench.run.worker): the parent sends both
workers the same case (``paired_case``). A worker asks for a turn before it builds
the step (``setup``: build, injection tuning, warm-up) and before each timed round
(``round``); its turn ends when it asks for the next one or sends its record. The
parent grants one turn at a time and only while every worker still on the case is
asking, so nothing else of theirs runs during a turn: set-ups first (the lead's,
then the other's), then rounds alternately, the lead first. Once every side has
held its rounds for its time budget and at least its ``min_rounds``, with as many
rounds each, every next round request is answered "stop". A side that is skipped,
fails or dies leaves the other to finish alone. Each side's deadline
(``case_timeout_s``) runs from its first turn, since the sides' work is taken in
turns: a side past it is recorded ``timeout`` and its worker killed, and the other
goes on alone. A side that never got a turn is ended once the sides' limits added
together have passed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait
from typing import Any

from xpubench.backends.base import BackendSpec, make_backend
from xpubench.measure.record import case_record
from xpubench.options import RunOptions
from xpubench.spec import registry as specmod

SETUP, ROUND = "setup", "round"
# A worker waiting for its turn must leave the cores to the other: OpenMP's default lets
# idle threads spin after each parallel region, and torch LayerNorm forward timed 1.2-1.9
# ms taking turns against 0.7 ms alone; passive waiting brought it back to 0.7 ms.
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
GO, STOP = "go", "stop"


class Turns:
    """The worker's side: ask the parent for a turn and wait for it."""

    def __init__(self, conn):
        self.conn = conn

    def _ask(self, phase: str) -> bool:
        self.conn.send(("turn", phase))
        return self.conn.recv()[0] == GO

    def setup(self) -> None:
        self._ask(SETUP)

    def round(self) -> bool:
        """Wait for the next timed round; False: the rounds are over."""
        return self._ask(ROUND)


@dataclass
class _Side:
    """One worker on the current case, as the parent sees it."""

    name: str
    worker: Any  # xpubench.run.supervisor.WorkerProcess
    opts: RunOptions
    asks: str | None = None  # the phase it waits for a turn of
    record: dict | None = None
    rounds: int = 0
    held_s: float = 0.0  # seconds its round turns lasted
    deadline: float | None = None  # from its first turn: its limit counts its own work, not its wait

    @property
    def done(self) -> bool:
        return self.record is not None

    def had_enough(self) -> bool:
        cfg = self.opts.timing_config()
        return self.held_s >= cfg.time_budget_s and self.rounds >= cfg.min_rounds


@dataclass
class PairedCase:
    """The parent's turn-keeping for one case measured by two (or, once one is gone, one) workers."""

    sides: list[_Side]  # the lead first
    holder: _Side | None = None
    since: float = 0.0
    stopping: bool = False
    log: list[tuple[str, str]] = field(default_factory=list)  # (side, phase) of each turn granted: for tests

    def active(self) -> list[_Side]:
        return [s for s in self.sides if not s.done]

    def asked(self, side: _Side, phase: str, now: float) -> None:
        self._end_turn(side, now)
        side.asks = phase

    def finished(self, side: _Side, record: dict, now: float) -> None:
        self._end_turn(side, now)
        side.asks, side.record = None, record

    def _end_turn(self, side: _Side, now: float) -> None:
        if self.holder is side:
            if self.log and self.log[-1][1] == ROUND:
                side.held_s += now - self.since
            self.holder = None

    def grants(self, now: float) -> list[tuple[_Side, str]]:
        """The replies to send now: one turn, or "stop" to every side asking for a round."""
        live = self.active()
        if self.holder is not None or not live or any(s.asks is None for s in live):
            return []  # a turn is held, or a side is busy between turns: nobody else runs
        setup = [s for s in live if s.asks == SETUP]
        if setup:
            return [self._grant(setup[0], SETUP, now)]
        if not self.stopping and all(s.had_enough() for s in live) and len({s.rounds for s in live}) == 1:
            self.stopping = True
        if self.stopping:
            out = [(s, STOP) for s in live]
            for s in live:
                s.asks = None
            return out
        side = min(live, key=lambda s: s.rounds)  # alternate; on a tie the lead (first) goes
        side.rounds += 1
        return [self._grant(side, ROUND, now)]

    def _grant(self, side: _Side, phase: str, now: float) -> tuple[_Side, str]:
        side.asks = None
        if side.deadline is None:
            side.deadline = now + side.opts.case_timeout_s
        self.holder, self.since = side, now
        self.log.append((side.name, phase))
        return side, GO


def run_paired_case(sides: list[_Side], case: specmod.Case, pairing: dict[str, Any],
                    clock=time.monotonic) -> PairedCase:
    """Both workers measure ``case`` taking turns; each side's ``record`` is set when it returns."""
    from xpubench.run.supervisor import death_record

    state = PairedCase(sides)
    for s in sides:
        try:
            s.worker.conn.send(("paired_case", list(case.key), dict(case.params), {**pairing, "side": s.name}))
        except (BrokenPipeError, OSError):
            s.worker.proc.join(5)
            state.finished(s, death_record(case, s.worker.spec, s.worker.proc.exitcode), clock())
    backstop = clock() + sum(s.opts.case_timeout_s for s in sides)  # for a side that never got a turn

    def time_out(s: _Side, why: str) -> None:
        s.worker.kill()
        rec = case_record(case, s.worker.spec)
        rec.update(status="timeout", reason=why)
        state.finished(s, rec, clock())

    while state.active():
        for side, reply in state.grants(clock()):
            try:
                side.worker.conn.send((reply,))
            except (BrokenPipeError, OSError):
                pass  # its death shows below
        now = clock()
        for s in state.active():
            if s.deadline is None and now >= backstop:
                time_out(s, "no turn within the pair's limits added together; worker killed")
            elif s.deadline is not None and now >= s.deadline:
                time_out(s, f"no result within {s.opts.case_timeout_s:g} s of its first turn; worker killed")
        live = state.active()
        if not live:
            break
        next_deadline = min([backstop] + [s.deadline for s in live if s.deadline is not None])
        ready = wait([s.worker.conn for s in live], timeout=min(max(next_deadline - clock(), 0.0), 0.25))
        for s in live:
            if s.worker.conn in ready:
                try:
                    msg = s.worker.conn.recv()
                except EOFError:
                    msg = None
                if msg is None:
                    s.worker.proc.join(5)
                    state.finished(s, death_record(case, s.worker.spec, s.worker.proc.exitcode), clock())
                elif msg[0] == "turn":
                    state.asked(s, msg[1], clock())
                elif msg[0] == "result":
                    state.finished(s, msg[1], clock())
            elif not s.worker.proc.is_alive():
                s.worker.proc.join(5)
                state.finished(s, death_record(case, s.worker.spec, s.worker.proc.exitcode), clock())
    return state


def measure_paired(spec: BackendSpec, cases: list[specmod.Case], options: dict[str, RunOptions], lead: str,
                   pair_id: str, setup_timeout_s: float = 300.0) -> dict[str, list[dict]]:
    """Each case measured by one fresh worker per side (``options``: side name -> run options),
    their turns alternating, ``lead`` first. Returns each side's records in case order;
    each record's ``paired`` block names the pair, the side that led, its own side and the
    environment its worker was given."""
    from xpubench.run.supervisor import WorkerProcess

    names = [lead] + [n for n in options if n != lead]
    out: dict[str, list[dict]] = {n: [] for n in names}
    fresh_per_case = make_backend(spec).fresh_worker_per_case
    workers: dict[str, WorkerProcess | None] = {n: None for n in names}
    why_not: dict[str, str] = {}
    try:
        for case in cases:
            # both start together (their imports share the cores), before anything is timed
            started = {n: WorkerProcess(spec, options[n], env=WORKER_ENV) for n in names
                       if workers[n] is None and n not in why_not}
            try:
                for n, w in started.items():
                    ok, reason = w.handshake(setup_timeout_s)
                    workers[n] = w if ok else None
                    if not ok:
                        w.kill()
                        why_not[n] = reason
            except BaseException:  # e.g. Ctrl-C during a handshake: none of them outlives us
                for w in started.values():
                    w.kill()
                raise
            sides = [_Side(n, workers[n], options[n]) for n in names if workers[n] is not None]
            state = (run_paired_case(sides, case, {"pair": pair_id, "lead": lead, "env": WORKER_ENV})
                     if sides else PairedCase([]))
            for n in names:
                side = next((s for s in state.sides if s.name == n), None)
                if side is None:
                    rec = case_record(case, spec)
                    rec.update(status="skipped", reason=f"backend not usable: {why_not.get(n, 'no worker')}")
                else:
                    rec = side.record
                    if rec.get("status") in ("timeout", "crashed", "oom") or fresh_per_case:
                        if side.worker.proc.is_alive():  # e.g. a MemoryError it caught: it still holds memory
                            side.worker.stop()
                        workers[n] = None  # a fresh worker takes the next case
                out[n].append(rec)
    finally:
        for w in workers.values():
            if w is not None:
                w.stop()
    return out


def paired_options(base: dict[str, Any], new: dict[str, Any]) -> dict[str, RunOptions]:
    """The two sides' run options as the workers take them (one process each, no passes)."""
    return {side: replace(RunOptions.from_dict({**opts, "repeat": 1}), pass_index=0)
            for side, opts in (("base", base), ("new", new))}

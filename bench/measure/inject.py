"""Injected slowdowns (``xpubench run --inject-slowdown GLOB=PCT``): for validating verdicts only.

``calibrate`` and the verdict benchmark need a build that is known to be slower by a
known amount. Each call of a matching case's step is followed, inside the timed
region, by a busy-wait: a share of the step's own time, the median of its last calls'
own durations in this process (a figure taken once before the timed rounds caught
cold first calls, up to 5x the step). The busy-wait starts once the call's work is
done (``wait``: JAX dispatches asynchronously even on the CPU, and a spin beside the
running step would hide in it).

A spin of PCT is not a slowdown of PCT. On a 2-core VM a "20%" spin slowed torch
LayerNorm by about 30% across processes (its OpenMP threads fall asleep during the
spin and must be woken) and JAX LayerNorm forward+backward by about 1% (the other
core finishes the last call's leftover work during the spin, so the next call runs
about 17% faster than it does back to back). So the share is tuned in each process
before the timed rounds (:func:`tune_spin`): plain and slowed blocks of calls
alternate, and the spin becomes the share of the slowed calls' own time that makes
them take PCT longer than the plain calls took (twice: the own time moves with the
spin). That model misses part of what a spin does, and 9 pairs of a 20 ms step's blocks
are too few to pin it: so measured A/Bs, each until its median is within a few percent
(:func:`precise_ratios`), correct the share, and the last measures what it delivers
(:func:`check_delivered`). The record keeps the share (``spin``), the spin's median
delay, that A/B (``delivered_ab``, ``ab_pairs``) and the plain step's time (``ab_plain_s``).
"""

from __future__ import annotations

import fnmatch
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from xpubench.fmt import parse_fraction


@dataclass(frozen=True)
class Injection:
    """Slow the steps of the cases matching ``pattern`` by ``fraction`` of their own time."""

    pattern: str
    fraction: float

    def matches(self, names: Iterable[str]) -> bool:
        return any(fnmatch.fnmatchcase(n, self.pattern) for n in names)

    def __str__(self) -> str:
        return f"{self.pattern}={self.fraction:.0%}"


def parse_injection(text: str) -> Injection:
    """``'normalization/layernorm*=10%'`` -> Injection; ValueError with one line when malformed."""
    pattern, sep, pct = str(text).rpartition("=")
    if not sep or not pattern.strip():
        raise ValueError(f"--inject-slowdown {text!r}: expected GLOB=PCT, e.g. 'normalization/layernorm*=10%'")
    return Injection(pattern.strip(), parse_fraction(pct, "--inject-slowdown", high=10.0))


def injection_for(injections: Iterable[Injection], names: Iterable[str]) -> Injection | None:
    names = list(names)
    return next((i for i in injections if i.matches(names)), None)


def busy_wait(seconds: float, clock: Callable[[], float] = time.perf_counter) -> None:
    """Spin (never sleep: a sleep would free the core and not cost the time it claims)."""
    end = clock() + seconds
    while clock() < end:
        pass


class OwnTime:
    """The median of a step's last ``window`` own call durations (the spin excluded), and
    the spin as a share of it (``spin``: the asked fraction until :func:`tune_spin`)."""

    def __init__(self, window: int = 31):
        self.window = window
        self.spin = 0.0
        self.recent: list[float] = []
        self.delays: list[float] = []

    def add(self, seconds: float) -> None:
        self.recent.append(seconds)
        if len(self.recent) > self.window:
            del self.recent[0]

    @property
    def median(self) -> float:
        xs = sorted(self.recent)
        return xs[len(xs) // 2] if xs else 0.0


def slowed(run: Callable[[], Any], fraction: float, wait: Callable[[Any], None] = lambda out: None,
           own: OwnTime | None = None, clock: Callable[[], float] = time.perf_counter) -> Callable[[], Any]:
    """``run``, then (once ``wait`` says its work is done) a busy-wait of ``own.spin`` (at
    first ``fraction``) of the step's own time (the median of its recent calls), on every call."""
    own = own if own is not None else OwnTime()
    own.spin = fraction

    def run_slowed() -> Any:
        t0 = clock()
        out = run()
        wait(out)
        own.add(clock() - t0)
        delay = own.spin * own.median
        own.delays.append(delay)
        busy_wait(delay, clock)
        return out

    return run_slowed


TimeBlock = Callable[[Any, int], float]  # (step, n calls) -> seconds, the device's work done
AB_S = 0.4  # the model's first guess (tune_spin): pairs of blocks in about this many seconds
AB_PAIRS = (9, 201)  # at least, at most
TUNE_ROUNDS = 2  # the own time moves with the spin (a longer one hides more leftover work): tune again
# Each measured A/B goes on until the median ratio's 95% CI is within +-AB_TOL, or AB_MAX_S:
# a 20 ms step (JAX LayerNorm forward+backward) in 9 pairs of single calls tuned its spin
# anywhere from 21% to 55% between processes, which is what spread its slowed processes.
AB_TOL = 0.03
AB_MAX_S = 2.0
CORRECTIONS = 2  # measured A/Bs that may correct the spin, before the one that checks it


def alternate_blocks(plain: Any, slowed_step: Any, time_block: TimeBlock, n: int, pairs: int,
                     after_slowed: Callable[[], None] = lambda: None) -> tuple[list[float], list[float]]:
    """``pairs`` plain and slowed blocks of n calls, alternating (order flipped every pair):
    their seconds per call. ``after_slowed`` runs after each slowed block.

    Each timed block follows one untimed call of its own kind: a call's cost depends on
    the one before it (JAX forward+backward ran about 17% faster after a spin, which let
    the last call's leftover work finish), and the timed rounds never mix the two."""

    def block(step: Any) -> float:
        time_block(step, 1)
        return time_block(step, n) / n

    plains, slows = [], []
    for i in range(pairs):
        for step in ((slowed_step, plain) if i % 2 else (plain, slowed_step)):
            if step is plain:
                plains.append(block(plain))
            else:
                slows.append(block(slowed_step))
                after_slowed()
    return plains, slows


def tune_spin(plain: Any, slowed_step: Any, own: OwnTime, fraction: float, time_block: TimeBlock,
              n: int, pairs: int) -> float:
    """The share of the slowed calls' own time to spin so that they take ``fraction`` longer
    than the plain calls, both measured here (:func:`alternate_blocks`); ``own.spin`` is set to it.

    plain calls cost P (the median of their blocks), slowed calls cost their own time O
    (the median of its running medians) plus the spin: (1 + spin) O = (1 + fraction) P.
    Never below 0: a step that is already slower after a spin gets none."""
    owns: list[float] = []
    plains, _ = alternate_blocks(plain, slowed_step, time_block, n, pairs,
                                 after_slowed=lambda: owns.append(own.median))
    p, o = statistics.median(plains), statistics.median(owns)
    if p > 0 and o > 0:
        own.spin = max(0.0, (1 + fraction) * p / o - 1)
    return own.spin


def precise_ratios(plain: Any, slowed_step: Any, time_block: TimeBlock, n: int, pairs: int,
                   tol: float = AB_TOL, max_s: float = AB_MAX_S) -> tuple[list[float], list[float]]:
    """Ratios of slowed to plain blocks (:func:`alternate_blocks`), ``pairs`` at a time until
    the 95% CI of their median is within +-``tol`` of it, ``max_s`` seconds of blocks were
    spent, or ``AB_PAIRS[1]`` pairs; and the plain blocks' seconds per call."""
    from xpubench.measure.stats import median_ci_ranks

    ratios: list[float] = []
    plain_s: list[float] = []
    spent = 0.0
    while True:
        plains, slows = alternate_blocks(plain, slowed_step, time_block, n, pairs)
        ratios += [s / p for p, s in zip(plains, slows) if p > 0]
        plain_s += plains
        spent += (n + 1) * (sum(plains) + sum(slows))
        if not ratios:
            return ratios, plain_s
        xs = sorted(ratios)
        lo, hi = median_ci_ranks(len(xs))
        if (xs[hi] - xs[lo]) / 2 <= tol * statistics.median(xs) or spent >= max_s or len(xs) >= AB_PAIRS[1]:
            return ratios, plain_s


def check_delivered(plain: Any, slowed_step: Any, note: dict[str, Any], time_block: TimeBlock,
                    min_round_s: float = 0.005) -> None:
    """Tune the spin in this process, then measure what it delivers, in blocks as long as
    the timed rounds'. A first guess from the model (:func:`tune_spin`), then measured A/Bs
    (:func:`precise_ratios`): while one is off the asked slowdown by more than ``AB_TOL``,
    the spin is scaled by the ratio it missed by (up to ``CORRECTIONS`` times), and the last
    one measures the spin kept. The note keeps that share as ``spin`` and the last A/B as
    ``delivered_ab``."""
    own: OwnTime = note["_own"]
    fraction = note["fraction"]
    for _ in range(3):  # warm both (first calls are cold) and size the blocks
        t = time_block(plain, 1)
        time_block(slowed_step, 1)
    t = max(t, 1e-7)
    n = max(1, math.ceil(min_round_s / t))
    pairs = min(max(math.ceil(AB_S / (2 * (n + 1) * t * (1 + fraction))), AB_PAIRS[0]), AB_PAIRS[1])
    for _ in range(TUNE_ROUNDS):
        tune_spin(plain, slowed_step, own, fraction, time_block, n, pairs)
    for i in range(CORRECTIONS + 1):
        ratios, plain_s = precise_ratios(plain, slowed_step, time_block, n, AB_PAIRS[0])
        got = statistics.median(ratios) if ratios else math.nan
        if i == CORRECTIONS or not got > 0 or abs(got - (1 + fraction)) <= AB_TOL * got:
            break
        own.spin = max(0.0, (1 + own.spin) * (1 + fraction) / got - 1)
    note["spin"] = own.spin
    note["delivered_ab"] = got - 1
    note["ab_pairs"] = len(ratios)
    note["ab_plain_s"] = statistics.median(plain_s) if plain_s else None  # this process's plain step
    own.delays.clear()  # the record's median delay is the timed rounds' own


def case_names(case: Any) -> list[str]:
    """The names a GLOB may match, as ``xpubench run -k`` does (suite/name, full name, ...)."""
    return [case.name, f"{case.suite}/{case.name}", case.case_id, case.full_name,
            f"{case.name}:{case.mode}", f"{case.suite}/{case.name}:{case.mode}"]


def inject_into(step: Any, injections: Iterable[Injection], case: Any,
                wait: Callable[[Any], None] = lambda out: None) -> tuple[Any, dict[str, Any] | None]:
    """``step`` slowed by the first injection matching ``case`` (and the record's note), or unchanged.

    ``wait(out)`` blocks until the work behind a call's output is done. The note's
    ``delay_s`` is the median delay spun so far (:func:`finish_note` after the rounds);
    :func:`check_delivered` tunes the spin and measures what it does before the rounds.
    """
    from dataclasses import replace

    inj = injection_for(injections, case_names(case))
    if inj is None:
        return step, None
    own = OwnTime()
    note = {"pattern": inj.pattern, "fraction": inj.fraction, "delay_s": None, "_own": own}
    return replace(step, run=slowed(step.run, inj.fraction, wait, own)), note


def finish_note(note: dict[str, Any]) -> dict[str, Any]:
    """The record's ``injected_slowdown``: pattern, fraction, the spin's tuned share of the
    step's own time (``spin``), the slowdown it delivered (in-process A/B, ``delivered_ab``)
    and the median delay spun per call."""
    own = note.pop("_own", None)
    if own is not None and own.delays:
        xs = sorted(own.delays)
        note["delay_s"] = xs[len(xs) // 2]
    return note

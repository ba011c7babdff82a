"""Injected slowdowns (``xpubench run --inject-slowdown GLOB=PCT``): for validating verdicts only.

``calibrate`` and the verdict benchmark need a build that is known to be slower by a
known amount. Each call of a matching case's step is followed, inside the timed
region, by a busy-wait of PCT of the step's own time: the median of its last calls'
own durations in this process (a figure taken once before the timed rounds caught
cold first calls, up to 5x the step, and made the injection anything but PCT).
The record says that it was injected and the median delay spun.
The busy-wait starts once the call's work is done (``wait``: JAX dispatches
asynchronously even on the CPU, and a spin beside the running step would hide in it).

A spin of PCT is not a slowdown of PCT: what it does depends on the backend and the
machine. On a 2-core VM, compared across 25 + 25 fresh processes, a "20%" spin slowed
torch LayerNorm by about 30% (its OpenMP threads fall asleep during the spin and must
be woken) and JAX LayerNorm forward+backward by -7% to +9% (five pairs of runs); A/B
in one process, the same JAX spin measured +18% in one process and +0.4% in the next
(the spin lets the other core finish the last call's leftover work, which otherwise
slows the next call). So before the timed rounds plain and slowed blocks of calls
alternate in this process, and the record keeps what this A/B measured
(:func:`check_delivered`) beside the spin's median delay: a verdict that misses an
injection can be read against it.
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
    """The median of a step's last ``window`` own call durations (the spin excluded)."""

    def __init__(self, window: int = 31):
        self.window = window
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
    """``run``, then (once ``wait`` says its work is done) a busy-wait of ``fraction`` of the
    step's own time (``own``: the median of its recent calls), on every call."""
    own = own if own is not None else OwnTime()

    def run_slowed() -> Any:
        t0 = clock()
        out = run()
        wait(out)
        own.add(clock() - t0)
        delay = fraction * own.median
        own.delays.append(delay)
        busy_wait(delay, clock)
        return out

    return run_slowed


TimeBlock = Callable[[Any, int], float]  # (step, n calls) -> seconds, the device's work done
CHECK_S = 0.6  # plain + slowed blocks: enough pairs that their median ratio is within a few % on a quiet step
CHECK_PAIRS = (9, 201)  # at least, at most


def ab_slowdown(plain: Any, slowed_step: Any, time_block: TimeBlock, n: int, pairs: int) -> float:
    """The slowdown the spin delivers, measured in this process: ``pairs`` plain and slowed
    blocks of n calls, alternating (order flipped every pair), the median of their ratios minus 1.

    Each timed block follows one untimed call of its own kind: a call's cost depends on
    the one before it (JAX forward+backward ran about 20% faster after a spin, which let
    the last call's leftover work finish), and the timed rounds never mix the two."""

    def block(step: Any) -> float:
        time_block(step, 1)
        return time_block(step, n)

    ratios = []
    for i in range(pairs):
        if i % 2:
            s_t, p_t = block(slowed_step), block(plain)
        else:
            p_t, s_t = block(plain), block(slowed_step)
        if p_t > 0:
            ratios.append(s_t / p_t)
    return statistics.median(ratios) - 1 if ratios else math.nan


def check_delivered(plain: Any, slowed_step: Any, note: dict[str, Any], time_block: TimeBlock,
                    min_round_s: float = 0.005) -> None:
    """What the spin does to the step, measured A/B in this process before the timed rounds
    (:func:`ab_slowdown`, in blocks as long as the timed rounds'), kept in the note as
    ``delivered_ab``. Measured, not tuned: on a 2-core VM this figure itself moved from
    -25% to +40% between processes of a memory-bound step (the spin lets the other core
    do the kernel's and allocator's work), and a spin scaled to it would add that noise
    to every slowed process."""
    own: OwnTime = note["_own"]
    for _ in range(3):  # warm both (first calls are cold) and size the blocks
        t = time_block(plain, 1)
        time_block(slowed_step, 1)
    t = max(t, 1e-7)
    n = max(1, math.ceil(min_round_s / t))
    pairs = min(max(math.ceil(CHECK_S / (2 * (n + 1) * t * (1 + note["fraction"]))), CHECK_PAIRS[0]), CHECK_PAIRS[1])
    note["delivered_ab"] = ab_slowdown(plain, slowed_step, time_block, n, pairs)
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
    :func:`check_delivered` measures what the spin does before the rounds.
    """
    from dataclasses import replace

    inj = injection_for(injections, case_names(case))
    if inj is None:
        return step, None
    own = OwnTime()
    note = {"pattern": inj.pattern, "fraction": inj.fraction, "delay_s": None, "_own": own}
    return replace(step, run=slowed(step.run, inj.fraction, wait, own)), note


def finish_note(note: dict[str, Any]) -> dict[str, Any]:
    """The record's ``injected_slowdown``: pattern, fraction, the slowdown the spin delivered
    (in-process A/B, ``delivered_ab``) and the median delay spun per call."""
    own = note.pop("_own", None)
    if own is not None and own.delays:
        xs = sorted(own.delays)
        note["delay_s"] = xs[len(xs) // 2]
    return note

"""Injected slowdowns (``xpubench run --inject-slowdown GLOB=PCT``): for validating verdicts only.

``calibrate`` and the verdict benchmark need a build that is known to be slower by a
known amount. Each call of a matching case's step is followed, inside the timed
region, by a busy-wait of PCT of the step's own time: the median of its last calls'
own durations in this process (a figure taken once before the timed rounds caught
cold first calls, up to 5x the step, and made the injection anything but PCT).
The record says that it was injected and the median delay spun.
The busy-wait starts once the call's work is done (``wait``: JAX dispatches
asynchronously even on the CPU, and a spin beside the running step would hide in it),
so the step is slower by the full delay on every backend.
"""

from __future__ import annotations

import fnmatch
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


def case_names(case: Any) -> list[str]:
    """The names a GLOB may match, as ``xpubench run -k`` does (suite/name, full name, ...)."""
    return [case.name, f"{case.suite}/{case.name}", case.case_id, case.full_name,
            f"{case.name}:{case.mode}", f"{case.suite}/{case.name}:{case.mode}"]


def inject_into(step: Any, injections: Iterable[Injection], case: Any,
                wait: Callable[[Any], None] = lambda out: None) -> tuple[Any, dict[str, Any] | None]:
    """``step`` slowed by the first injection matching ``case`` (and the record's note), or unchanged.

    ``wait(out)`` blocks until the work behind a call's output is done. The note's
    ``delay_s`` is the median delay spun so far (:func:`finish_note` after the rounds).
    """
    from dataclasses import replace

    inj = injection_for(injections, case_names(case))
    if inj is None:
        return step, None
    own = OwnTime()
    note = {"pattern": inj.pattern, "fraction": inj.fraction, "delay_s": None, "_own": own}
    return replace(step, run=slowed(step.run, inj.fraction, wait, own)), note


def finish_note(note: dict[str, Any]) -> dict[str, Any]:
    """The record's ``injected_slowdown``: pattern, fraction and the median delay spun per call."""
    own = note.pop("_own", None)
    if own is not None and own.delays:
        xs = sorted(own.delays)
        note["delay_s"] = xs[len(xs) // 2]
    return note

"""Injected slowdowns (``xpubench run --inject-slowdown GLOB=PCT``): for validating verdicts only.

``calibrate`` and the verdict benchmark need a build that is known to be slower by a
known amount. Each call of a matching case's step is followed, inside the timed
region, by a busy-wait of PCT of the step's own time (estimated before the timed
rounds, from time_block over a few calls). The record says that it was injected.
On an asynchronous device the busy-wait runs on the host while the device works:
it shows fully only where the host waits for the device each call (CPU backends).
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


def slowed(run: Callable[[], Any], delay_s: float) -> Callable[[], Any]:
    """``run`` followed by a busy-wait of ``delay_s`` on every call."""
    def run_slowed() -> Any:
        out = run()
        busy_wait(delay_s)
        return out

    return run_slowed


def delay_for(run_block: Callable[[int], float], fraction: float, calls: int = 5) -> float:
    """PCT of the step's own time, from the median per-call time of a few timed blocks."""
    run_block(1)  # first call: compile and caches, not the step's own time
    per_call = sorted(run_block(1) for _ in range(calls))[calls // 2]
    return fraction * per_call


def case_names(case: Any) -> list[str]:
    """The names a GLOB may match, as ``xpubench run -k`` does (suite/name, full name, ...)."""
    return [case.name, f"{case.suite}/{case.name}", case.case_id, case.full_name,
            f"{case.name}:{case.mode}", f"{case.suite}/{case.name}:{case.mode}"]


def inject_into(step: Any, injections: Iterable[Injection], case: Any,
                run_block: Callable[[Any, int], float]) -> tuple[Any, dict[str, Any] | None]:
    """``step`` slowed by the first injection matching ``case`` (and the record's note), or unchanged.

    ``run_block(step, n)`` times n calls as the measuring loop will.
    """
    from dataclasses import replace

    inj = injection_for(injections, case_names(case))
    if inj is None:
        return step, None
    delay = delay_for(lambda n: run_block(step, n), inj.fraction)
    return replace(step, run=slowed(step.run, delay)), {"pattern": inj.pattern, "fraction": inj.fraction,
                                                        "delay_s": delay}

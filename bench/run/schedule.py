"""The order measurements run in: case-major, the backends of a case interleaved, K passes.

Ratios between backends (bf16/fp32, jax/torch) are only worth what the minutes they
were measured in share: measured backend-major, a case and its twin were minutes
apart and a drift of the machine became a "speedup". Here every case runs on all its
backends back to back, in an order shuffled per case and pass (so no backend always
goes first, into a cache or a clock state the previous one left), from a seed that
the run records. With ``repeat`` K, the whole plan runs K times, each pass in fresh
worker processes, so each case x backend is measured in K processes.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import Generic, Sequence, TypeVar

C = TypeVar("C")
S = TypeVar("S")


@dataclass(frozen=True)
class Slot(Generic[C, S]):
    """One measurement to take: a case on a backend, in pass ``pass_index`` (0-based)."""

    pass_index: int
    case: C
    spec: S


def new_seed() -> int:
    return secrets.randbits(32)


def interleaved(cases: Sequence[C], specs: Sequence[S], *, repeat: int = 1, seed: int,
                name=str) -> list[list[Slot[C, S]]]:
    """The passes of a run: for each pass, every case with its backends in a shuffled order.

    ``name`` gives a stable text for a case (its full name), so the order depends only
    on the seed, the pass and the case, not on memory addresses.
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    passes = []
    for p in range(repeat):
        slots: list[Slot[C, S]] = []
        for case in cases:
            order = list(specs)
            random.Random(f"{seed}:{p}:{name(case)}").shuffle(order)
            slots.extend(Slot(p, case, spec) for spec in order)
        passes.append(slots)
    return passes

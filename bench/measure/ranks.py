"""Rounds synchronised across ranks (a round lasts as long as its slowest rank) and scaling efficiency.

Every rank runs the same timing loop (``xpubench.measure.timing.measure``). Before each
round the ranks meet at a barrier; after it they agree on the slowest rank's time,
and the loop's clock advances by that agreed time only. Every decision the loop takes
(warm-up settled, iterations per round, the CI stop rule, the budget) is then a
function of numbers all ranks share, so all ranks run the same rounds and issue the
same collectives: none waits on a peer that already stopped. Each rank also keeps
its own round times (``own_samples``) so a straggler can be named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Protocol

from xpubench.backends.base import Step
from xpubench.measure.timing import TimingConfig, TimingResult, measure


class RankGroup(Protocol):
    """The collectives the measuring loop needs from a framework's process group."""

    rank: int
    world_size: int

    def barrier(self) -> None: ...

    def max(self, value: float) -> float:
        """The largest ``value`` over all ranks (every rank gets it)."""

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order); None on the other ranks."""


class SingleProcess:
    """The group of one process (JAX over one host's devices: the SPMD step is one program)."""

    rank = 0
    world_size = 1

    def barrier(self) -> None:
        pass

    def max(self, value: float) -> float:
        return value

    def gather(self, obj: Any) -> list[Any]:
        return [obj]


@dataclass
class DistributedStep(Step):
    """A data-parallel step: its ranks' collectives and the same step without gradient exchange."""

    ranks: RankGroup = field(default_factory=SingleProcess)
    run_local: Callable[[], Any] | None = None  # None: communication share not measured
    local_method: str = ""  # how run_local avoids the exchange (the record says it)
    facts: dict[str, Any] = field(default_factory=dict)  # world facts for the record (devices, simulated)


@dataclass
class SyncedRounds:
    """A ``run_block`` and a clock for the timing loop that keep every rank in step."""

    group: RankGroup
    local_block: Callable[[int], float]  # n steps on this rank; seconds, device finished
    clock_s: float = 0.0
    own_samples: list[float] = field(default_factory=list)  # this rank's per-step time of each block

    def run_block(self, n: int) -> float:
        self.group.barrier()  # everyone starts the round together
        own = self.local_block(n)
        slowest = self.group.max(own)
        self.clock_s += slowest
        if n > 0:
            self.own_samples.append(own / n)
        return slowest

    def clock(self) -> float:
        return self.clock_s


@dataclass
class RankTiming:
    """The slowest-rank timing of a step and this rank's own per-step times of the timed rounds."""

    timing: TimingResult
    own_samples: list[float]


def measure_synced(group: RankGroup, local_block: Callable[[int], float], cfg: TimingConfig) -> RankTiming:
    """Warm-up, calibration and timed rounds, all ranks in step; the round time is the slowest rank's."""
    rounds = SyncedRounds(group, local_block)
    # per-call latency mode makes no sense across ranks; the loop runs its CI rule
    timing = measure(rounds.run_block, replace(cfg, per_call=False), clock=rounds.clock)
    timed = len(timing.samples)
    return RankTiming(timing, rounds.own_samples[-timed:] if timed else [])


# ------------------------------------------------------------------ scaling efficiency
@dataclass(frozen=True)
class Efficiency:
    value: float
    ci95: tuple[float, float]


def scaling_efficiency(throughput_w: float, ci_w: tuple[float, float], throughput_1: float,
                       ci_1: tuple[float, float], world_size: int) -> Efficiency:
    """throughput(W) / (W x throughput(1)), with a 95% interval from the two throughput intervals.

    The interval is the conservative one (lowest W over highest 1, and back): the two runs
    are independent, and neither interval alone says how the ratio's error splits.
    """
    value = throughput_w / (world_size * throughput_1)
    lo = ci_w[0] / (world_size * ci_1[1]) if ci_1[1] > 0 else math.nan
    hi = ci_w[1] / (world_size * ci_1[0]) if ci_1[0] > 0 else math.inf
    return Efficiency(value, (lo, hi))


def throughput_ci(units_per_step: float, time_ci: Iterable[float]) -> tuple[float, float]:
    """Throughput interval from a step-time interval (a longer step is a lower throughput)."""
    lo_t, hi_t = time_ci
    return (units_per_step / hi_t if hi_t > 0 else 0.0, units_per_step / lo_t if lo_t > 0 else math.inf)


def scaling_key(rec: Mapping[str, Any]) -> tuple:
    """What stays the same across the world sizes of one case: everything but the world size."""
    params = {k: v for k, v in (rec.get("params") or {}).items() if k != "world_size"}
    return (rec.get("suite"), rec.get("name"), rec.get("mode"), rec.get("backend"),
            tuple(sorted((k, str(v)) for k, v in params.items())), rec.get("nnodes", 1))


def attach_scaling(records: list[dict[str, Any]]) -> None:
    """Fill ``scaling_efficiency`` (and its ``scaling_efficiency_ci95``) of every ok
    distributed record whose case was also measured at world size 1 in the same run."""
    base: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r.get("world_size") == 1 and r.get("status") == "ok" and r.get("throughput_per_s"):
            base[scaling_key(r)] = r
    for r in records:
        w = r.get("world_size")
        if not w or r.get("status") != "ok" or not r.get("throughput_per_s"):
            continue
        one = base.get(scaling_key(r))
        if one is None:
            r["scaling_efficiency"], r["scaling_efficiency_method"] = None, "no world size 1 in this run"
            continue
        ci_w = throughput_ci(r["units_per_step"], r["time_s"]["ci95"])
        ci_1 = throughput_ci(one["units_per_step"], one["time_s"]["ci95"])
        eff = scaling_efficiency(r["throughput_per_s"], ci_w, one["throughput_per_s"], ci_1, w)
        r["scaling_efficiency"] = eff.value
        r["scaling_efficiency_ci95"] = list(eff.ci95)
        r["scaling_efficiency_method"] = "throughput(W) / (W x throughput(1)); CI from both throughput CIs"

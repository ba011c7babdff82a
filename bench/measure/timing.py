"""Warm-up and the adaptive measurement loop.

The loop is handed ``run_block(n) -> seconds``: a callable that runs the step n times
and returns the device-correct elapsed time (the backend synchronizes or uses device
timers). This module never sees a framework.

Flow: one first call (compile / first-call cost, kept apart), a time-based warm-up
until the per-step time settles, a calibration of iterations per round so the
timer's own overhead is under 1% of a round, then timed rounds until the 95% CI of
the median is within the target *and* the rounds show no significant drift, or the
time budget is spent (never before ``min_rounds``). The CI is the one that holds
under autocorrelated rounds (:mod:`xpubench.measure.median_ci`, about 1 ms at 1000
rounds): the loop first checks the cheap independent-rounds CI (never wider) and
past 200 rounds checks only every 10th round, so the harness stays cheap. Latency mode (``per_call``): one call per round, until a number
of calls rather than a CI target (xpubench.measure.latency turns them into
percentiles).

Taking turns (``turn``): the confirmation measures BASE and NEW in two live workers
whose rounds alternate, so both sides' rounds come from the same seconds of a shared
machine (:mod:`xpubench.run.paired`). Then the parent, not this loop, says when the
rounds stop, so both sides get the same number of rounds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from xpubench.measure import stats as st

RunBlock = Callable[[int], float]
OnRound = Callable[[int, float], None]
# asks for the next timed round and waits for it: False = the rounds are over (xpubench.run.paired)
Turn = Callable[[], bool]


@dataclass
class TimingConfig:
    target_rel_ci: float = 0.01  # stop when the median's 95% CI is within +/-1%
    min_rounds: int = 10
    max_rounds: int = 5000
    # timed rounds per case: past this, a rerun in a fresh process differs by more than
    # more rounds narrow the CI (docs/verdicts.md); a real energy meter asks for its own window
    time_budget_s: float = 0.75
    warmup_min_s: float = 0.05
    warmup_max_s: float = 0.5
    settle_tolerance: float = 0.05  # warm-up blocks within 5% of each other = settled
    min_round_s: float = 0.005  # a round lasts at least this long ...
    max_overhead_fraction: float = 0.01  # ... and at least 100x the timer overhead
    min_window_s: float = 0.0  # telemetry may need a longer timed window (energy)
    # Latency mode: every call timed on its own (1 iteration per round) until
    # per_call_samples calls (or the budget) instead of the CI target.
    per_call: bool = False
    per_call_samples: int = 1000

    @classmethod
    def smoke(cls) -> "TimingConfig":
        # smoke checks that every case runs end to end: its figures are not for comparing
        return cls(time_budget_s=0.1, min_rounds=5, warmup_min_s=0.01, warmup_max_s=0.1,
                   min_round_s=0.002, per_call_samples=50)


@dataclass
class Warmup:
    first_call_s: float
    warmup_s: float
    iterations: int
    settled: bool
    estimate_s: float  # per-step time at the end of warm-up


@dataclass
class TimingResult:
    warmup: Warmup
    timer_overhead_s: float
    iterations_per_round: int
    samples: list[float]  # seconds per step, one per round
    stop_reason: str  # ci_target | sample_target (per_call) | time_budget | max_rounds | turns
    window_s: float  # wall time of the timed rounds
    stats: st.TimeStats
    drift: float | None
    overhead_fraction: float = field(default=0.0)

    def time_block(self) -> dict:
        """The results file's ``time_s`` block."""
        d = self.stats.to_dict()
        d.update(
            iterations_per_round=self.iterations_per_round,
            stop_reason=self.stop_reason,
            samples=self.samples,
            timer_overhead_s=self.timer_overhead_s,
            overhead_fraction=self.overhead_fraction,
            drift=self.drift,
            window_s=self.window_s,
        )
        return d


def measure_overhead(run_block: RunBlock, repeats: int = 25) -> float:
    """Median cost of an empty timed block: clock reads plus synchronization."""
    xs = sorted(run_block(0) for _ in range(repeats))
    return st.quantile(xs, 0.5)


def warm_up(run_block: RunBlock, cfg: TimingConfig, clock=time.perf_counter) -> Warmup:
    first = run_block(1)  # compile / first-call cost: its own figure, not warm-up time
    t0 = clock()
    iters = 1
    n = 1
    estimates: list[float] = []
    settled = False
    # Blocks grow until each lasts ~min_round_s; then the last three per-step
    # estimates must agree within settle_tolerance.
    while True:
        dt = run_block(n)
        iters += n
        per = dt / n
        if dt < cfg.min_round_s and n < 1_000_000:
            n *= 2
        else:
            estimates.append(per)
        spent = clock() - t0
        if len(estimates) >= 3 and spent >= cfg.warmup_min_s:
            last = estimates[-3:]
            if max(last) - min(last) <= cfg.settle_tolerance * min(last):  # a clock that never moved: settled
                settled = True
                break
        if spent >= cfg.warmup_max_s and estimates:
            break
        if spent >= cfg.warmup_max_s * 4:  # a huge first call: give up settling
            estimates.append(per)
            break
    est = sorted(estimates[-3:])[len(estimates[-3:]) // 2]
    return Warmup(first_call_s=first, warmup_s=clock() - t0, iterations=iters,
                  settled=settled, estimate_s=est)


def iterations_per_round(step_s: float, overhead_s: float, cfg: TimingConfig) -> int:
    target = max(cfg.min_round_s, overhead_s / cfg.max_overhead_fraction)
    return max(1, math.ceil(target / max(step_s, 1e-9)))


def ci_target_met(samples: list[float], target_rel_ci: float) -> bool:
    """The autocorrelation-aware 95% CI of the median is within the target and no drift is seen."""
    if st.relative_median_ci(samples) > target_rel_ci:  # cheap, and never wider than the honest one
        return False
    from xpubench.measure.median_ci import median_ci

    xs = sorted(samples)
    ci = median_ci(samples)
    if ci.confidence < 0.95 or ci.relative_half_width(st.quantile(xs, 0.5)) > target_rel_ci:
        return False
    return not st.significant_drift(samples)


def measure(
    run_block: RunBlock,
    cfg: TimingConfig | None = None,
    on_round: OnRound | None = None,
    clock=time.perf_counter,
    on_window_start: Callable[[int], None] | None = None,
    turn: Turn | None = None,
) -> TimingResult:
    """Warm up, calibrate, then timed rounds until the stopping rule says so.

    ``on_window_start(iterations_per_round)`` runs just before the first timed round
    (the device is idle: the last block ended with a synchronize): meters start there.
    ``on_round(rounds, seconds_per_step)`` runs after each timed round.
    ``turn``: each timed round waits for its turn, and the rounds end when ``turn`` says
    so (or at ``max_rounds``), not by the CI target or the time budget.
    """
    cfg = cfg or TimingConfig()
    wu = warm_up(run_block, cfg, clock)
    overhead = measure_overhead(run_block)
    n = 1 if cfg.per_call else iterations_per_round(wu.estimate_s, overhead, cfg)
    samples: list[float] = []
    if on_window_start is not None:
        on_window_start(n)
    start = clock()
    stop = "max_rounds"
    # The CI check sorts all samples; past a few hundred rounds do it every few rounds
    # so the harness stays cheap relative to the work.
    while len(samples) < cfg.max_rounds:
        if turn is not None:
            if not turn():
                stop = "turns"
                break
            # the other worker's turn left its data in the caches and this worker's threads
            # asleep: one untimed call first, so a round times the step warm, as back to back
            run_block(1)
        samples.append(run_block(n) / n)
        rounds = len(samples)
        elapsed = clock() - start
        if on_round is not None:
            on_round(rounds, samples[-1])
        if turn is not None:
            continue
        if rounds < cfg.min_rounds or elapsed < cfg.min_window_s:
            continue
        if cfg.per_call:
            if rounds >= cfg.per_call_samples:
                stop = "sample_target"
                break
        elif (rounds < 200 or rounds % 10 == 0) and ci_target_met(samples, cfg.target_rel_ci):
            stop = "ci_target"
            break
        if elapsed >= cfg.time_budget_s:
            stop = "time_budget"
            break
    window = clock() - start
    summary = st.summarize(samples)
    round_s = summary.median * n
    return TimingResult(
        warmup=wu,
        timer_overhead_s=overhead,
        iterations_per_round=n,
        samples=samples,
        stop_reason=stop,
        window_s=window,
        stats=summary,
        drift=st.drift(samples),
        overhead_fraction=overhead / round_s if round_s > 0 else math.inf,
    )

"""The measurement loop: known durations, the stopping rules, calibration."""

import random

import pytest

from xpubench.measure.timing import TimingConfig, iterations_per_round, measure


class FakeDevice:
    """A step of known duration on a simulated clock: deterministic timing tests."""

    def __init__(self, step_s, noise=0.0, overhead_s=1e-6, first_call_s=0.5, seed=0):
        self.now = 0.0
        self.step_s = step_s
        self.noise = noise
        self.overhead_s = overhead_s
        self.first_call_s = first_call_s
        self.calls = 0
        self.rng = random.Random(seed)

    def clock(self):
        return self.now

    def run_block(self, n):
        dt = self.overhead_s
        for _ in range(n):
            self.calls += 1
            if self.calls == 1:
                dt += self.first_call_s
            else:
                dt += self.step_s * (1 + self.rng.uniform(-self.noise, self.noise))
        self.now += dt
        return dt


def test_known_duration_is_reported_and_first_call_kept_apart():
    dev = FakeDevice(step_s=1e-3, noise=0.002)
    r = measure(dev.run_block, TimingConfig(), clock=dev.clock)
    assert r.stats.median == pytest.approx(1e-3, rel=0.005)
    assert r.warmup.first_call_s == pytest.approx(0.5 + 1e-6)
    assert r.stop_reason == "ci_target"
    assert r.stats.rel_ci <= 0.01
    assert r.stats.rounds >= TimingConfig().min_rounds
    # the timer's overhead stays under 1% of a round
    assert r.overhead_fraction < 0.01
    assert r.warmup.settled


def test_noisy_workload_stops_on_the_time_budget():
    dev = FakeDevice(step_s=1e-3, noise=0.9)
    cfg = TimingConfig(time_budget_s=0.5, target_rel_ci=0.001)
    r = measure(dev.run_block, cfg, clock=dev.clock)
    assert r.stop_reason == "time_budget"
    assert r.window_s >= 0.5
    assert r.stats.rel_ci > 0.001


def test_never_stops_before_min_rounds_and_respects_max_rounds():
    dev = FakeDevice(step_s=1e-2, noise=0.0)
    r = measure(dev.run_block, TimingConfig(min_rounds=30), clock=dev.clock)
    assert r.stats.rounds == 30  # zero noise: CI is met at the first allowed round
    dev = FakeDevice(step_s=1e-3, noise=0.9)
    r = measure(dev.run_block, TimingConfig(max_rounds=12, time_budget_s=1e9, target_rel_ci=1e-9), clock=dev.clock)
    assert r.stop_reason == "max_rounds" and r.stats.rounds == 12


def test_min_window_extends_the_timed_window():
    dev = FakeDevice(step_s=1e-3, noise=0.0)
    r = measure(dev.run_block, TimingConfig(min_window_s=2.0), clock=dev.clock)
    assert r.window_s >= 2.0


def test_calibration_keeps_overhead_under_one_percent():
    cfg = TimingConfig(min_round_s=0.0)
    n = iterations_per_round(step_s=1e-6, overhead_s=5e-6, cfg=cfg)
    assert n * 1e-6 >= 100 * 5e-6
    assert iterations_per_round(step_s=1.0, overhead_s=1e-6, cfg=cfg) == 1


def test_window_start_hook_runs_once_before_timed_rounds_with_the_calibrated_iterations():
    dev = FakeDevice(step_s=1e-3)
    seen = []
    r = measure(dev.run_block, TimingConfig(), clock=dev.clock,
                on_window_start=lambda n: seen.append((dev.calls, n)))
    assert len(seen) == 1 and seen[0][0] > 1  # after warm-up
    assert seen[0][1] == r.iterations_per_round


class DriftingDevice(FakeDevice):
    """Every call a little slower than the last: a machine changing state under the rounds."""

    def run_block(self, n):
        dt = super().run_block(n)
        self.step_s *= 1.0 + 2e-5 * n
        return dt


def test_a_drifting_step_does_not_stop_on_the_ci_target():
    flat = FakeDevice(step_s=1e-3, noise=0.01)
    steady = measure(flat.run_block, TimingConfig(target_rel_ci=0.02), clock=flat.clock)
    assert steady.stop_reason == "ci_target"
    dev = DriftingDevice(step_s=1e-3, noise=0.001)
    r = measure(dev.run_block, TimingConfig(target_rel_ci=0.02, time_budget_s=2.0), clock=dev.clock)
    assert r.stop_reason == "time_budget"
    assert r.drift > 0.02


def test_autocorrelated_rounds_need_more_rounds_than_independent_ones():
    from xpubench.measure.timing import ci_target_met

    rng = random.Random(5)
    independent = [1.0 + 0.01 * rng.gauss(0, 1) for _ in range(60)]
    x, correlated = 0.0, []
    for _ in range(60):
        x = 0.8 * x + rng.gauss(0, 1) * 0.6
        correlated.append(1.0 + 0.01 * x)
    assert ci_target_met(independent, 0.01)
    assert not ci_target_met(correlated, 0.01)


def test_the_record_says_when_warm_up_did_not_settle_and_what_few_rounds_reach():
    from xpubench.measure.step import spread_warnings

    dev = FakeDevice(step_s=1e-3, noise=0.5)
    r = measure(dev.run_block, TimingConfig(min_rounds=3, max_rounds=3, warmup_max_s=0.05), clock=dev.clock)
    text = " ".join(spread_warnings(r, 0.01))
    assert not r.warmup.settled and "warm-up did not settle" in text
    assert r.stats.confidence < 0.95 and "not 95%" in text
    assert r.time_block()["confidence"] == r.stats.confidence and "n_eff" in r.time_block()

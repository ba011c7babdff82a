"""--inject-slowdown: parsing, matching and the busy-wait it adds to each call."""

from __future__ import annotations

import math

import pytest

from xpubench.measure.inject import OwnTime, injection_for, parse_injection, slowed


def test_parse_and_match():
    inj = parse_injection("normalization/layernorm*=10%")
    assert inj.fraction == pytest.approx(0.10)
    assert inj.matches(["normalization/layernorm[b=8,t=512,d=768]:forward"])
    assert not inj.matches(["normalization/rmsnorm[b=8]:forward"])
    assert injection_for([parse_injection("x*=5%"), inj], ["normalization/layernorm:forward"]) is inj
    assert str(inj) == "normalization/layernorm*=10%"


@pytest.mark.parametrize("bad", ["layernorm", "=10%", "layernorm=abc", "layernorm=-5%"])
def test_malformed_injections_say_what_is_accepted(bad):
    with pytest.raises(ValueError, match="inject-slowdown"):
        parse_injection(bad)


class FakeClock:
    """A clock the step advances by its own duration and the spin by one tick per read."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1e-6
        return self.t


def test_the_spin_is_the_fraction_of_the_median_of_the_steps_recent_own_times():
    clock = FakeClock()
    durations = iter([0.009, 0.001, 0.0012, 0.0008, 0.005, 0.0011])  # a cold first call, a hiccup
    own = OwnTime(window=31)

    def step():
        clock.t += next(durations)
        return 7

    run = slowed(step, 0.2, own=own, clock=clock)
    assert [run() for _ in range(6)] == [7] * 6
    assert own.median == pytest.approx(0.0012, abs=1e-5)  # the median of the six own times
    assert own.delays[-1] == pytest.approx(0.2 * own.median, rel=1e-3)
    assert own.delays[0] == pytest.approx(0.2 * 0.009, rel=1e-2)  # the first call alone: its own time


def test_the_delay_starts_once_the_calls_work_is_done():
    """An asynchronous step (JAX dispatches even on the CPU) is waited on before the spin,
    so the spin does not hide beside the running work."""
    events = []
    run = slowed(lambda: events.append("dispatch") or "out", 0.0, wait=lambda out: events.append(f"wait {out}"))
    run()
    assert events == ["dispatch", "wait out"]



def test_the_spin_is_tuned_to_the_asked_slowdown_then_what_it_delivers_is_measured_ab():
    """A step that runs faster after a spin (JAX forward+backward on a 2-core VM: the other
    core finishes the last call's leftover work): a spin of the asked 25% would deliver 0%.
    check_delivered tunes the share so the slowed calls take 25% longer than the plain ones,
    then measures what it delivers; blocks alternate (order flipped each pair), sized like
    the timed rounds, and its calls' delays are not counted as the timed rounds' delay."""
    from types import SimpleNamespace

    from xpubench.measure.inject import check_delivered

    own = OwnTime()
    own.spin = 0.25
    plain, slow = SimpleNamespace(), SimpleNamespace()
    order = []
    drift = iter(1 + 0.001 * i for i in range(10_000))  # the machine slows steadily: alternation cancels it

    def time_block(step, n):
        order.append(("p" if step is plain else "s", n))
        d = next(drift)
        if step is plain:
            return 0.001 * n * d
        for _ in range(n):  # after a spin the call itself costs 0.8 ms
            own.add(0.0008 * d)
        return 0.0008 * d * (1 + own.spin) * n

    own.delays.append(0.5)
    note = {"fraction": 0.25, "_own": own}
    check_delivered(plain, slow, note, time_block, min_round_s=0.005)
    assert note["spin"] == pytest.approx(1.25 * 1.0 / 0.8 - 1, abs=0.02)  # 56%, not the 25% asked
    assert own.spin == note["spin"]
    assert note["delivered_ab"] == pytest.approx(0.25, abs=0.02)
    blocks = order[6:]  # after three warm-up pairs of single calls
    # each timed block of 5 calls (5 ms rounds of a 1 ms step) follows one untimed call of its own kind
    assert blocks[:8] == [("p", 1), ("p", 5), ("s", 1), ("s", 5), ("s", 1), ("s", 5), ("p", 1), ("p", 5)]
    assert len(blocks) // 4 >= 2 * 9  # at least 9 pairs to tune, 9 to check
    assert own.delays == []


def plain_and_slowed(own, cost_s, spin_shows):
    """A plain step of 1 ms and a slowed one whose own time is ``cost_s`` per call; its blocks
    measure ``cost_s`` per call, times (1 + spin) where ``spin_shows``."""
    from types import SimpleNamespace

    plain, slow = SimpleNamespace(), SimpleNamespace()

    def time_block(step, n):
        if step is plain:
            return 0.001 * n
        for _ in range(n):
            own.add(cost_s)
        return cost_s * (1 + (own.spin if spin_shows else 0.0)) * n

    return plain, slow, time_block


def test_a_step_already_slower_after_a_spin_gets_none():
    from xpubench.measure.inject import tune_spin

    own = OwnTime()
    plain, slow, time_block = plain_and_slowed(own, 0.002, spin_shows=False)  # twice the plain call's cost

    assert tune_spin(plain, slow, own, 0.2, time_block, n=2, pairs=9) == 0.0


def _hiding_step(own: OwnTime, hidden: float, noise=None):
    """Plain calls cost 1 ms; a slowed call's own time is 1 ms, but only (1 - hidden) of
    its spin shows in the block (the rest hides beside leftover work), which the model of
    :func:`tune_spin` cannot see: only a measured A/B can."""
    from types import SimpleNamespace

    plain, slow = SimpleNamespace(), SimpleNamespace()
    jitter = noise or (lambda: 1.0)

    def time_block(step, n):
        if step is plain:
            return 0.001 * n * jitter()
        for _ in range(n):
            own.add(0.001)
        return 0.001 * (1 + (1 - hidden) * own.spin) * n * jitter()

    return plain, slow, time_block


def test_a_spin_the_model_mistunes_is_corrected_by_measured_ab():
    """Half of the spin hides: the model's 20% delivers 10%; the measured A/Bs scale the
    spin until it delivers the asked 20% within AB_TOL, and the record says what the last
    A/B measured, over how many pairs, and the plain step's time in this process."""
    from xpubench.measure.inject import AB_TOL, check_delivered

    own = OwnTime()
    plain, slow, time_block = _hiding_step(own, hidden=0.5)
    note = {"fraction": 0.2, "_own": own}
    check_delivered(plain, slow, note, time_block, min_round_s=0.005)
    assert note["delivered_ab"] == pytest.approx(0.2, abs=AB_TOL * 1.2)
    assert note["spin"] == pytest.approx(0.4, abs=0.05)  # twice the asked share: half of it hides
    assert note["ab_pairs"] >= 9
    assert note["ab_plain_s"] == pytest.approx(0.001)


def test_a_noisy_ab_takes_more_pairs_until_its_median_is_precise_or_its_time_is_up():
    import random

    from xpubench.measure.inject import AB_MAX_S, AB_TOL, precise_ratios
    from xpubench.measure.stats import median_ci_ranks

    own = OwnTime()
    own.spin = 0.2
    rng = random.Random(3)
    plain, slow, time_block = _hiding_step(own, hidden=0.0, noise=lambda: rng.lognormvariate(0, 0.03))
    quiet, _ = precise_ratios(plain, slow, time_block, n=5, pairs=9)
    assert len(quiet) == 9  # +-3% per block: 9 pairs already pin the median within AB_TOL

    # +-25% per block: the median cannot get within AB_TOL in AB_MAX_S (a pair of 5-call
    # blocks of 1 and 1.2 ms calls, with their untimed calls, costs about 13 ms), so the
    # A/B stops at its time cap
    rng_noisy = random.Random(4)
    plain, slow, time_block = _hiding_step(own, hidden=0.0, noise=lambda: rng_noisy.lognormvariate(0, 0.25))
    noisy, plain_s = precise_ratios(plain, slow, time_block, n=5, pairs=9)
    assert len(plain_s) == len(noisy) and len(noisy) % 9 == 0
    pair_s = 6 * 0.0022 * math.exp(0.25**2 / 2)
    assert 9 * math.floor(AB_MAX_S / pair_s / 1.2 / 9) <= len(noisy) <= 9 * math.ceil(AB_MAX_S / pair_s / 0.8 / 9)
    xs = sorted(noisy)
    lo, hi = median_ci_ranks(len(xs))
    assert (xs[hi] - xs[lo]) / 2 > AB_TOL * xs[len(xs) // 2]  # it stopped for time, not precision


def test_a_step_that_overshoots_with_no_spin_keeps_none_and_says_what_it_delivers():
    """Slowed blocks already 50% slower than plain with no spin at all (a step whose threads
    fall asleep at any gap): the correction never makes the spin negative, and the record
    keeps what was measured, not the asked 20%."""
    from xpubench.measure.inject import check_delivered

    own = OwnTime()
    plain, slow, time_block = plain_and_slowed(own, 0.0015, spin_shows=True)

    note = {"fraction": 0.2, "_own": own}
    check_delivered(plain, slow, note, time_block, min_round_s=0.005)
    assert note["spin"] == 0.0
    assert note["delivered_ab"] == pytest.approx(0.5, abs=1e-9)

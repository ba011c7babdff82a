"""--inject-slowdown: parsing, matching and the busy-wait it adds to each call."""

from __future__ import annotations

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


def test_a_step_already_slower_after_a_spin_gets_none():
    from types import SimpleNamespace

    from xpubench.measure.inject import tune_spin

    own = OwnTime()
    plain, slow = SimpleNamespace(), SimpleNamespace()

    def time_block(step, n):
        if step is plain:
            return 0.001 * n
        for _ in range(n):
            own.add(0.002)  # twice the plain call's cost
        return 0.002 * n

    assert tune_spin(plain, slow, own, 0.2, time_block, n=2, pairs=9) == 0.0

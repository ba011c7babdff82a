"""--inject-slowdown: parsing, matching and the busy-wait it adds to each call."""

from __future__ import annotations

import time

import pytest

from xpubench.measure.inject import delay_for, injection_for, parse_injection, slowed


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


def test_the_wrapped_step_spends_the_delay_after_each_call():
    calls = []
    run = slowed(lambda: calls.append(1) or 7, 0.002)
    t0 = time.perf_counter()
    assert run() == 7
    assert time.perf_counter() - t0 >= 0.002
    assert calls == [1]


def test_the_delay_is_the_fraction_of_the_median_call():
    times = iter([9.0, 1.0, 1.2, 0.8, 5.0, 1.1])  # first call (compile) is left out
    assert delay_for(lambda n: next(times), 0.2) == pytest.approx(0.2 * 1.1)

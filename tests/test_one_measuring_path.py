"""One measuring path: the CLI worker, the pytest items, the xpu_backend fixture and the
probe all measure through measure_step; pytest-benchmark's stats hold exactly the
rounds that loop timed."""

from __future__ import annotations

import inspect
import json
import textwrap

import pytest

from xpubench.backends.base import Step, make_backend
from xpubench.measure import step as measuring
from xpubench.measure.timing import TimingConfig
from xpubench.options import RunOptions
from xpubench.spec.registry import Work, Workload

pytest_plugins = ["pytester"]

QUICK = ["--xpu-size", "smoke", "--xpu-time-budget", "0.02", "--xpu-min-rounds", "3", "--xpu-no-telemetry",
         "--xpu-no-accuracy", "--xpu-backend", "torch:cpu:fp32", "-p", "no:cacheprovider", "-p", "no:randomly"]
USER_TEST = """
    def test_mine(xpu_backend, benchmark):
        assert xpu_backend.bench(benchmark, sum, range(100), units=100) == 4950
"""


def spin() -> None:
    for _ in range(200):
        pass


@pytest.fixture
def torch_cpu():
    backend = make_backend("torch:cpu:fp32")
    if not backend.availability().ok:
        pytest.skip("torch is not installed")
    backend.setup(1)
    return backend


class Pipe:
    def send(self, msg) -> None:
        pass


SPY_CONFTEST = """
    import inspect
    import json
    import pathlib

    from xpubench.measure import step as measuring

    real = measuring.measure_step


    def spy(*args, **kwargs):
        log = pathlib.Path("callers.json")
        seen = json.loads(log.read_text()) if log.exists() else []
        log.write_text(json.dumps(seen + [sorted({f.function for f in inspect.stack()[1:]})]))
        return real(*args, **kwargs)


    measuring.measure_step = spy
"""


def test_every_caller_measures_through_measure_step(torch_cpu, pytester, monkeypatch):
    from xpubench.hardware import probe_sweeps as probe
    from xpubench.run import worker

    callers: list[set[str]] = []
    real = measuring.measure_step

    def spy(*args, **kwargs):
        callers.append({f.function for f in inspect.stack()[1:]})
        return real(*args, **kwargs)

    monkeypatch.setattr(measuring, "measure_step", spy)
    opts = RunOptions(size="smoke", time_budget_s=0.02, telemetry=False)

    w = Workload(suite="t", name="spin", modes=("forward",), unit="calls", sizes={"smoke": {}},
                 work=lambda p, m: Work(1), precisions=("fp32",))
    w.builder("torch")(lambda ctx, p, mode: Step(run=spin))
    rec = worker._measure_one(Pipe(), torch_cpu, w.cases("smoke")[0], opts)  # the CLI worker's body
    assert rec["status"] == "ok" and rec["time_s"]["median"] > 0
    assert len(callers) == 1 and "_measure_one" in callers[0]

    rate = probe.measure_rate(torch_cpu, Step(run=spin), 1.0, TimingConfig.smoke())
    assert rate["per_s"] > 0 and len(callers) == 2 and "measure_rate" in callers[1]

    # pytest in its own process, the same function swapped for a spy by a conftest
    pytester.makeconftest(textwrap.dedent(SPY_CONFTEST))
    pytester.makepyfile(test_user=textwrap.dedent(USER_TEST))
    res = pytester.runpytest_subprocess("--xpubench", "--xpu-case", "layernorm:forward", "test_user.py", *QUICK)
    res.assert_outcomes(passed=2)
    seen = json.loads((pytester.path / "callers.json").read_text())
    assert len(seen) == 2
    assert sum("run_case" in stack for stack in seen) == 1  # the built-in item
    assert sum("bench" in stack for stack in seen) == 1  # the fixture's bench()


def test_benchmark_stats_hold_exactly_the_rounds_the_loop_timed(pytester):
    if not make_backend("torch:cpu:fp32").availability().ok:
        pytest.skip("torch is not installed")
    pytester.makepyfile(test_rounds=textwrap.dedent("""
        from xpubench.backends.base import Step
        from xpubench.measure.step import measure_step
        from xpubench.options import RunOptions
        from xpubench.pytest.timer import BenchmarkTimer


        def test_rounds(xpu_backend, benchmark):
            seen = []
            with BenchmarkTimer(benchmark, xpu_backend.backend) as timer:
                m = measure_step(xpu_backend.backend, Step(run=lambda: sum(range(200))),
                                 RunOptions(size="smoke", time_budget_s=0.02, telemetry=False),
                                 timer=timer, on_round=lambda rounds, s: seen.append(s))
            assert benchmark.stats.stats.data == seen == m.timing.samples
            assert benchmark.stats.iterations == m.timing.iterations_per_round
            benchmark.extra_info["seen"] = seen
    """))
    res = pytester.runpytest_subprocess("test_rounds.py", *QUICK, "--benchmark-json", "out.json")
    res.assert_outcomes(passed=1)
    (b,) = json.loads((pytester.path / "out.json").read_text())["benchmarks"]
    assert b["stats"]["data"] == b["extra_info"]["seen"]
    assert b["stats"]["rounds"] == len(b["extra_info"]["seen"]) >= 3


def test_benchmark_disable_runs_the_call_once(pytester):
    if not make_backend("torch:cpu:fp32").availability().ok:
        pytest.skip("torch is not installed")
    pytester.makepyfile(test_once=textwrap.dedent("""
        CALLS = []


        def test_once(xpu_backend, benchmark):
            assert xpu_backend.bench(benchmark, lambda: CALLS.append(1) or len(CALLS)) == 1
            assert CALLS == [1]
            assert benchmark.extra_info["benchmark_disabled"] is True
    """))
    res = pytester.runpytest_subprocess("test_once.py", *QUICK, "--benchmark-disable")
    res.assert_outcomes(passed=1)

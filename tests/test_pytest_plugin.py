"""The pytest-benchmark integration: real pytest sessions (pytester, in subprocesses).

Sessions run smoke sizes with short time budgets. No assertion here depends on how
fast this machine is: the compare-fail test times a step that advances a virtual
clock, given to pytest-benchmark as its timer, so an "identical" run is identical
and a 10% slower one is 10% slower whatever the machine's load.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import math
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from xpubench.pytest import session as support
from xpubench.pytest.items import recorded_warnings
from xpubench.pytest.timer import DeviceWait, device_wait, timed_block
from xpubench.results.jsonsafe import json_safe

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "test_my_layer.py"

# extra_info keys the pytest-JSON reader maps (bench/results/pytest_benchmark.py)
EXTRA_KEYS = {"suite", "case", "mode", "backend", "unit", "units_per_step", "throughput_per_s", "memory",
              "energy", "compile_s", "error_vs_fp32", "precision", "framework", "device", "flops_per_step",
              "bytes_per_step", "timing_method"}


def _plugin_registered() -> bool:
    """True once pyproject's pytest11 entry point is installed (then -p would register twice)."""
    return any(ep.value.split(":")[0].strip() == "xpubench.pytest.plugin"
               for ep in md.entry_points(group="pytest11"))


PLUGIN = [] if _plugin_registered() else ["-p", "xpubench.pytest.plugin"]
QUICK = ["--xpu-size", "smoke", "--xpu-time-budget", "0.05", "--xpu-min-rounds", "5",
         "-p", "no:cacheprovider", "-p", "no:randomly"]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*PLUGIN, *args, timeout=240)


def available(spec: str) -> bool:
    from xpubench.backends.base import make_backend

    return make_backend(spec).availability().ok


def by_backend(doc: dict) -> dict[tuple[str, str], dict]:
    return {(b["extra_info"]["case"], b["extra_info"]["backend"]): b for b in doc["benchmarks"]}


# ----------------------------------------------------------------- helpers, in-process
class Clock:
    """A clock that each call of the step advances: what timed_block read is what ran."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_timed_block_waits_once_after_the_last_call_before_reading_the_clock():
    calls: list[str] = []
    clock = Clock()

    def step():
        clock.now += 1.0
        calls.append("run")
        return len(calls)

    wait = DeviceWait("test", fn=lambda out: calls.append(f"wait:{out}"))
    assert timed_block(step, 3, wait, clock) == 3.0
    assert calls == ["run", "run", "run", "wait:3"]


def test_timed_block_waits_every_call_when_asked_and_not_at_all_on_a_synchronous_device():
    seen: list[int] = []
    clock = Clock()
    assert timed_block(lambda: 5, 3, DeviceWait("t", fn=seen.append, each_call=True), clock) == 0.0
    assert seen == [5, 5, 5]
    ran: list[int] = []
    timed_block(lambda: ran.append(1), 4, DeviceWait("perf_counter"), clock)
    assert ran == [1, 1, 1, 1]


def test_accelerator_blocks_end_with_a_device_synchronize():
    from types import SimpleNamespace

    from xpubench.backends.base import make_backend

    syncs = []
    backend = make_backend("torch:cuda1:bf16")  # the real adapter, with a fake torch.cuda
    backend._torch = SimpleNamespace(cuda=SimpleNamespace(synchronize=lambda device=None: syncs.append(device)))
    backend.device = SimpleNamespace(type="cuda")
    wait = device_wait(backend)
    assert wait.method == "perf_counter+synchronize" and not wait.each_call
    for _ in range(2):
        timed_block(lambda: None, 4, wait, Clock())
    assert len(syncs) == 2
    assert device_wait(make_backend("torch:cpu:fp32")).fn is None
    jax_cpu = device_wait(make_backend("jax:cpu:fp32"))
    assert jax_cpu.method == "perf_counter+block_until_ready" and jax_cpu.each_call


def test_extra_info_is_made_json_safe():
    np = pytest.importorskip("numpy")
    out = json_safe({"a": np.float32(0.5), "b": (1, np.int64(2)), "c": float("nan"), "d": {3: None}})
    assert out == {"a": 0.5, "b": [1, 2], "c": None, "d": {"3": None}}
    json.dumps(out)


def test_warnings_are_recorded_once_and_still_reach_pytest():
    import warnings

    seen: list[str] = []
    with pytest.warns(UserWarning, match="slow path"):
        with recorded_warnings(seen):
            for _ in range(3):
                warnings.warn("slow path taken\nsecond line", UserWarning)
    assert seen == ["UserWarning: slow path taken"]


def test_bad_specs_are_rejected_with_the_accepted_forms():
    from xpubench.errors import UserError

    assert support.parse_specs(["TORCH:cpu:fp32", "torch:cpu:fp32", "jax:cpu:bf16"]) == [
        "torch:cpu:fp32", "jax:cpu:bf16"]
    with pytest.raises(UserError, match="accepted"):
        support.parse_specs(["torch:gpu:fp32"])


# ------------------------------------------------------------- collection, no frameworks
def test_without_the_switch_a_plain_run_gets_nothing_extra(pytester: pytest.Pytester):
    pytester.makepyfile(test_plain="""
        def test_one():
            assert 1 + 1 == 2

        def test_timed(benchmark):
            assert benchmark(sum, [1, 2, 3]) == 6
    """)
    res = run(pytester, "-p", "no:cacheprovider", "--benchmark-max-time", "0.01", "--benchmark-json", "plain.json",
              "-v")
    res.assert_outcomes(passed=2)
    out = res.stdout.str()
    assert "xpubench:" not in out and "test_suite" not in out  # no items, no header line
    doc = json.loads((pytester.path / "plain.json").read_text())
    assert "xpubench" not in doc["machine_info"]
    assert [b["name"] for b in doc["benchmarks"]] == ["test_timed"]


def test_importing_the_plugin_imports_no_framework(pytester: pytest.Pytester):
    code = ("import sys, xpubench.pytest.plugin; "
            "print(sorted(m for m in ('torch', 'jax', 'numpy', 'flax') if m in sys.modules))")
    res = pytester.run(sys.executable, "-c", code)
    assert res.ret == 0, res.stderr.str()
    assert res.stdout.lines[-1] == "[]"


def test_switch_collects_case_x_backend_items_and_only_them(pytester: pytest.Pytester):
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    args = ["--xpubench", "--xpu-size", "smoke", "--xpu-suite", "dropout", "--xpu-backend", "torch:cpu:fp32",
            "--xpu-backend", "jax:cpu:bf16", "--collect-only", "-q", "-p", "no:cacheprovider"]
    res = run(pytester, *args)
    assert res.ret == 0, res.stdout.str()
    ids = [ln for ln in res.stdout.lines if "::" in ln]
    from xpubench.spec.registry import select

    cases = [c.full_name for c in select(["dropout"], None, "smoke")]
    assert ids == [f"xpubench::test_suite[{c}-{b}]" for c in cases for b in ("torch:cpu:fp32", "jax:cpu:bf16")]
    assert not any("test_mine" in ln for ln in res.stdout.lines)  # no paths given: only the cases

    res = run(pytester, *args, "test_mine.py")  # a path given: that test too
    assert any(ln.endswith("test_mine.py::test_mine") for ln in res.stdout.lines)
    assert sum("xpubench::test_suite[" in ln for ln in res.stdout.lines) == len(ids)


def test_user_errors_in_options_are_one_line_usage_errors(pytester: pytest.Pytester):
    res = run(pytester, "--xpubench", "--xpu-backend", "torch:tpu:fp32")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown device 'tpu' for torch" in res.stderr.str()
    assert "Traceback" not in res.stderr.str() + res.stdout.str()
    res = run(pytester, "--xpubench", "--xpu-suite", "nosuch")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown suite 'nosuch'" in res.stderr.str()


# ------------------------------------------------------------------- real sessions
def test_json_has_every_item_with_our_extra_info(pytester: pytest.Pytester):
    specs = ["torch:cpu:fp32", "jax:cpu:bf16", "torch:cuda:fp32"]  # the last one skips on a CPU box
    res = run(pytester, "--xpubench", *QUICK, "--xpu-case", "layernorm:forward",
              *[a for s in specs for a in ("--xpu-backend", s)], "--benchmark-json", "out.json", "-rs")
    runnable = [s for s in specs if available(s)]
    skipped = [s for s in specs if s not in runnable]
    res.assert_outcomes(passed=len(runnable), skipped=len(skipped))
    for s in skipped:
        assert f"{s}: " in res.stdout.str()  # the skip says why

    doc = json.loads((pytester.path / "out.json").read_text())
    assert doc["machine_info"]["xpubench"]["machine_id"] == doc["machine_info"]["machine_id"]
    got = by_backend(doc)
    assert {b for _, b in got} == set(runnable) and len(got) == len(runnable)
    for (case, backend), b in got.items():
        e = b["extra_info"]
        assert EXTRA_KEYS <= set(e), EXTRA_KEYS - set(e)
        assert b["params"] == {"case": f"normalization/{case}:forward", "backend": backend}
        assert b["fullname"] == f"xpubench::test_suite[normalization/{case}:forward-{backend}]"
        assert (e["suite"], e["mode"], e["unit"], e["status"]) == ("normalization", "forward", "tokens", "ok")
        assert e["framework"] + ":" + e["device"] + ":" + e["precision"] == backend
        assert e["units_per_step"] == 32 and e["flops_per_step"] > 0 and e["bytes_per_step"] > 0
        stats = b["stats"]
        assert stats["rounds"] == e["rounds"] >= 5 and stats["iterations"] == e["iterations_per_round"] >= 1
        assert math.isclose(e["throughput_per_s"], e["units_per_step"] / stats["median"], rel_tol=1e-9)
        assert e["energy"]["method"] in ("rapl", "estimate", "nvml-counter", "nvml-power", "unavailable")
        assert e["memory"]["host_peak_bytes"] > 0  # telemetry is on in this run
        if e["precision"] == "fp32":
            assert e["error_vs_fp32"] is None
        else:
            assert 0 < e["error_vs_fp32"] < 0.1  # bf16 against its fp32 twin
        assert e["framework"] != "jax" or e["compile_s"] > 0  # AOT compile, kept out of the rounds

    from xpubench.results.pytest_benchmark import convert  # `xpubench report` reads it like its own runs

    run_doc = convert(doc)
    assert {(m["case"], m["backend"]) for m in run_doc["measurements"]} == set(got)
    assert all(m["suite"] == "normalization" and m["time_s"]["median"] > 0 for m in run_doc["measurements"])


def _clock_suite(pytester: pytest.Pytester) -> None:
    """A test-only suite whose step advances a virtual clock by XPB_STEP_S seconds.

    Passed to pytest-benchmark as its timer (--benchmark-timer), it makes every
    round last exactly iterations x XPB_STEP_S: an identical run is identical and
    a slower one is slower, however busy this machine is.
    """
    pytester.makepyfile(xpb_clock_suite=textwrap.dedent("""
        import os

        from xpubench.spec.registry import Work, workload

        NOW = [0.0]


        def virtual_clock():
            return NOW[0]


        tick = workload(suite="clock", name="tick", modes=("forward",), unit="calls",
                        sizes={s: {"n": 1} for s in ("smoke", "default", "large")},
                        work=lambda p, mode: Work(1.0))


        @tick.builder("torch")
        def build(ctx, params, mode):
            from xpubench.backends.base import Step

            seconds = float(os.environ["XPB_STEP_S"])

            def run():
                NOW[0] += seconds

            return Step(run=run)


        nan = workload(suite="clock", name="nan", modes=("train_step",), unit="steps",
                       sizes={s: {"n": 1} for s in ("smoke", "default", "large")},
                       work=lambda p, mode: Work(1.0))


        @nan.builder("torch")
        def build_nan(ctx, params, mode):
            from xpubench.backends.base import Step

            return Step(run=lambda: None, finite=lambda: False)
    """))


CLOCK = ["--xpubench", "--xpu-size", "smoke", "--xpu-case", "tick", "--xpu-backend", "torch:cpu:fp32",
         "--xpu-time-budget", "0.05", "--xpu-no-telemetry", "--benchmark-timer", "xpb_clock_suite.virtual_clock",
         "-p", "no:randomly"]


def test_compare_fail_catches_a_slower_run_and_passes_an_identical_one(pytester: pytest.Pytester,
                                                                      monkeypatch: pytest.MonkeyPatch):
    if not available("torch:cpu:fp32"):
        pytest.skip("torch is not installed")
    _clock_suite(pytester)
    monkeypatch.setenv("XPUBENCH_SUITE_MODULES", "xpb_clock_suite")

    monkeypatch.setenv("XPB_STEP_S", "0.001")
    first = run(pytester, *CLOCK, "--benchmark-autosave", "--benchmark-group-by", "param:backend")
    first.assert_outcomes(passed=1)
    assert "benchmark 'backend=torch:cpu:fp32'" in first.stdout.str()  # grouped by our item params
    assert len(list((pytester.path / ".benchmarks").rglob("*.json"))) == 1

    compare = [*CLOCK, "--benchmark-compare", "--benchmark-compare-fail=median:5%"]
    monkeypatch.setenv("XPB_STEP_S", "0.0011")  # 10% slower
    slower = run(pytester, *compare)
    assert slower.ret != 0
    assert "Performance has regressed" in slower.stdout.str() + slower.stderr.str()
    assert "test_suite[clock/tick[n=1]:forward-torch:cpu:fp32]" in slower.stdout.str()

    monkeypatch.setenv("XPB_STEP_S", "0.001")
    same = run(pytester, *compare)
    assert same.ret == 0, same.stdout.str() + same.stderr.str()
    assert "(0001_" in same.stdout.str()  # the table shows the autosaved run beside NOW


def test_a_diverged_training_step_fails_its_item_and_is_recorded(pytester: pytest.Pytester,
                                                                monkeypatch: pytest.MonkeyPatch):
    if not available("torch:cpu:fp32"):
        pytest.skip("torch is not installed")
    _clock_suite(pytester)
    monkeypatch.setenv("XPUBENCH_SUITE_MODULES", "xpb_clock_suite")
    res = run(pytester, *[a if a != "tick" else "nan" for a in CLOCK], "--benchmark-json", "nan.json")
    res.assert_outcomes(failed=1)
    assert "the loss became NaN or Inf" in res.stdout.str()
    (b,) = json.loads((pytester.path / "nan.json").read_text())["benchmarks"]
    assert (b["extra_info"]["status"], b["extra_info"]["reason"]) == ("diverged", "loss became NaN or Inf")


def test_user_fixture_example_runs_on_every_available_backend(pytester: pytest.Pytester):
    specs = support.default_specs()
    if not specs:
        pytest.skip("no framework installed")
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    res = run(pytester, EXAMPLE.name, *QUICK, "--xpu-no-telemetry", "--benchmark-json", "ex.json")
    res.assert_outcomes(passed=len(specs))
    doc = json.loads((pytester.path / "ex.json").read_text())
    got = by_backend(doc)
    assert set(got) == {("test_my_mlp", s) for s in specs}
    assert "xpubench" in doc["machine_info"]
    for (_, spec), b in got.items():
        e = b["extra_info"]
        assert EXTRA_KEYS <= set(e)
        assert (e["suite"], e["unit"], e["units_per_step"]) == ("test_my_layer", "samples", 64)
        assert b["name"] == f"test_my_mlp[{spec}]" and b["params"] == {"xpu_backend": spec}
        assert e["throughput_per_s"] > 0 and e["flops_per_step"] == 2 * 2 * 64 * 256 * 1024


def test_user_fixture_skips_unavailable_backends_and_honours_benchmark_disable(pytester: pytest.Pytester):
    if not available("torch:cpu:fp32"):
        pytest.skip("torch is not installed")
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    res = run(pytester, EXAMPLE.name, *QUICK, "--xpu-backend", "torch:cpu:fp32", "--xpu-backend",
              "jax:tpu:bf16", "--benchmark-disable", "-rs")
    tpu = available("jax:tpu:bf16")
    res.assert_outcomes(passed=1 + tpu, skipped=1 - tpu)
    if not tpu:
        assert "jax:tpu:bf16: " in res.stdout.str()  # the skip says why
    assert "Name (time in" not in res.stdout.str()  # disabled: no timing table


def test_histogram_option_still_works(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    # find_spec, not an import: importing pygal here adds import hooks (importlib_metadata's
    # finder among them) that outlive pytester's module snapshot, and later tests in this
    # process then found no entry points or package metadata
    if importlib.util.find_spec("pygal") is None:
        pytest.skip("--benchmark-histogram needs pytest-benchmark[histogram]")
    if not available("torch:cpu:fp32"):
        pytest.skip("torch is not installed")
    _clock_suite(pytester)
    monkeypatch.setenv("XPUBENCH_SUITE_MODULES", "xpb_clock_suite")
    monkeypatch.setenv("XPB_STEP_S", "0.001")
    res = run(pytester, *CLOCK, "--benchmark-histogram", "hist")
    res.assert_outcomes(passed=1)
    assert list(pytester.path.glob("hist*.svg"))

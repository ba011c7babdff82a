"""Fault injection: hangs, exceptions, NaN loss, aborts, memory exhaustion and kills
are each recorded with the right status, and every good case keeps its numbers."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xpubench.backends.base import BackendSpec
from xpubench.spec import registry as specmod
from xpubench.results.reader import read_run
from xpubench.results.writer import RunWriter
from xpubench.run.supervisor import Runner
from xpubench.options import RunOptions
from tests.verdict_suite import use_suite_module

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {"good_a": "ok", "hang": "timeout", "raises": "error", "good_b": "ok", "nan_loss": "diverged",
            "aborts": "crashed", "hog": "oom", "killed": "oom", "good_c": "ok"}


@pytest.fixture
def fault_suite(monkeypatch):
    use_suite_module(monkeypatch, "tests.fault_suite")
    return specmod.select(["faults"], None, "smoke")


def test_every_fault_gets_its_status_and_the_run_goes_on(fault_suite, tmp_path):
    cases = sorted(fault_suite, key=lambda c: list(EXPECTED).index(c.name))
    writer = RunWriter(tmp_path / "run.json", {"id": "f"}, {"machine_id": "m"})
    # the worker may grow by 1 GiB after setup; the hog asks for 8 GiB
    opts = RunOptions(size="smoke", time_budget_s=0.05, case_timeout_s=8, telemetry=False,
                      memory_limit_bytes=1 << 30)
    outcome = Runner([BackendSpec.parse("torch:cpu:fp32")], cases, writer, opts).run()
    writer.finish()
    got = {r["name"]: r for r in read_run(tmp_path / "run.json")["measurements"]}
    assert {k: v["status"] for k, v in got.items()} == EXPECTED
    assert got["raises"]["reason"] == "ValueError: the layer exploded"
    assert "Traceback" in got["raises"]["traceback"]
    assert "SIGABRT" in got["aborts"]["reason"]
    assert "SIGKILL" in got["killed"]["reason"]
    assert "MemoryError" in got["hog"]["reason"]
    assert "8 s" in got["hang"]["reason"]
    for name in ("good_a", "good_b", "good_c"):
        assert got[name]["time_s"]["median"] > 0
    assert not outcome.all_good
    assert outcome.counts() == {"ok": 3, "timeout": 1, "error": 1, "diverged": 1, "crashed": 1, "oom": 2}


def test_sigterm_ends_the_run_cleanly(tmp_path):
    env = dict(os.environ, XPUBENCH_SUITE_MODULES="tests.fault_suite")
    proc = subprocess.Popen([sys.executable, "-m", "xpubench", "run", "--size", "smoke", "-s", "faults",
                             "-k", "good_a", "-k", "hang", "-k", "good_b", "-b", "torch:cpu:fp32",
                             "--no-telemetry", "--out", str(tmp_path), "--machine-id", "m"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until good_a is recorded and the hang has started
        files = list(tmp_path.rglob("*.json"))
        try:
            if files and read_run(files[0])["measurements"]:
                break
        except Exception:
            pass
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    doc = read_run(next(tmp_path.rglob("*.json")))
    assert doc["run"]["interrupted"] is True
    assert [m["name"] for m in doc["measurements"]] == ["good_a"]
    assert "Traceback" not in err


def test_a_builder_that_is_not_offered_is_skipped_not_an_error():
    from xpubench.backends.base import make_backend
    from xpubench.errors import SkipCase
    from xpubench.spec.registry import Work, Workload
    from xpubench.measure.case import measure_case

    w = Workload(suite="t", name="fused_thing", modes=("step",), unit="calls", sizes={"smoke": {}},
                 work=lambda p, m: Work(1), precisions=("fp32",))

    @w.builder("torch")
    def build(ctx, p, mode):
        raise SkipCase("torch 2.0 has no fused Adadelta")

    backend = make_backend("torch:cpu:fp32")
    backend.setup()
    rec = measure_case(backend, w.cases("smoke")[0], RunOptions(size="smoke", telemetry=False))
    assert rec["status"] == "skipped" and rec["reason"] == "torch 2.0 has no fused Adadelta"


def test_variants_per_size():
    from xpubench.spec.registry import Work, Workload

    w = Workload(suite="t", name="v", modes=("step",), unit="calls",
                 sizes={"smoke": {"n": 1}, "default": {"n": 2}, "large": {"n": 3}},
                 work=lambda p, m: Work(1),
                 variants={"default": ({"opt": "a"},), "*": ({"opt": "a"}, {"opt": "b"})})
    assert [c.params for c in w.cases("default")] == [{"opt": "a", "n": 2}]
    assert [c.params["opt"] for c in w.cases("smoke")] == ["a", "b"]

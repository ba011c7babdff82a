"""The supervisor runs the interleaved plan: case-major, backends alternating, K fresh processes merged."""

from __future__ import annotations

import pytest

from xpubench.backends.base import BackendSpec
from xpubench.options import RunOptions
from xpubench.results.reader import read_run
from xpubench.results.writer import RunWriter
from xpubench.run.merge import merge_processes
from xpubench.run.supervisor import Runner
from xpubench.spec import registry as specmod
from tests.verdict_suite import use_suite_module

SPECS = [BackendSpec.parse("torch:cpu:fp32"), BackendSpec.parse("jax:cpu:fp32")]


@pytest.fixture
def spin_cases(monkeypatch):
    use_suite_module(monkeypatch)
    return specmod.select(["verdicts"], None, "smoke")


def test_two_passes_in_fresh_processes_case_major_and_merged(spin_cases, tmp_path):
    pytest.importorskip("jax")
    writer = RunWriter(tmp_path / "run.json", {"id": "r"}, {"machine_id": "m"})
    opts = RunOptions(size="smoke", time_budget_s=0.05, telemetry=False, repeat=2, seed=11,
                      inject_slowdown=("verdicts/spin_b=50%",))
    runner = Runner(SPECS, spin_cases, writer, opts)
    outcome = runner.run()
    assert runner.schedule == {"order": runner.schedule["order"], "seed": 11, "repeat": 2}
    # case-major: each pass runs both backends of a case back to back
    for order in runner.order:
        assert [slot.split("|")[0] for slot in order][::2] == [c.full_name for c in spin_cases]
        assert len(order) == 4
    doc = read_run(tmp_path / "run.json")
    assert len(doc["measurements"]) == 4  # 2 cases x 2 backends, each merged from 2 processes
    for rec in doc["measurements"]:
        t = rec["time_s"]
        procs = t["processes"]
        assert [p["pass"] for p in procs] == [0, 1]
        assert len({p["worker_pid"] for p in procs}) == 2  # fresh processes
        assert t["level"] == "processes" and t["ci95"][0] <= t["median"] <= t["ci95"][1]
        assert len(t["samples"]) == sum(len(p["samples"]) for p in procs)
        assert "cpu_affinity" in procs[0]["host"] and "thp" in procs[0]["host"]
    injected = [r for r in doc["measurements"] if r["name"] == "spin_b"]
    assert all(r["injected_slowdown"]["fraction"] == 0.5 for r in injected)
    assert all("injected slowdown" in " ".join(r["warnings"]) for r in injected)
    # what the spin delivered, measured A/B in the worker before the rounds, is in the record and its warning
    assert all(isinstance(r["injected_slowdown"]["delivered_ab"], float) for r in injected)
    assert all("in-process A/B before the rounds measured" in " ".join(r["warnings"]) for r in injected)
    # and the spin's share, tuned in the worker so the slowed calls take the asked fraction longer
    assert all(r["injected_slowdown"]["spin"] >= 0 for r in injected)
    assert all("of its own time, tuned in this process" in " ".join(r["warnings"]) for r in injected)
    assert not any("injected_slowdown" in r for r in doc["measurements"] if r["name"] == "spin_a")
    assert outcome.all_good


def _rec(pass_index, median, status="ok"):
    return {"suite": "s", "case": "c", "mode": "f", "backend": "b:cpu:fp32", "status": status, "pass": pass_index,
            "units_per_step": 2.0, "worker_pid": 100 + pass_index,
            "time_s": {"median": median, "ci95": [median * 0.99, median * 1.01], "rounds": 3,
                       "samples": [median] * 3} if status == "ok" else None}


def test_merge_takes_the_process_level_median_and_ci():
    merged = merge_processes([_rec(0, 1.0), _rec(1, 4.0), _rec(2, 2.0)])
    t = merged["time_s"]
    assert t["median"] == pytest.approx(2.0)  # geometric mean of 1, 4, 2
    assert t["ci95"][0] < 1.0 and t["ci95"][1] > 4.0  # the spread between processes, not within one
    assert merged["throughput_per_s"] == pytest.approx(1.0)
    assert [p["median"] for p in t["processes"]] == [1.0, 4.0, 2.0] and t["rounds"] == 9


def test_a_failed_process_is_named_and_the_others_still_count():
    merged = merge_processes([_rec(0, 1.0), _rec(1, None, status="crashed"), _rec(2, 1.2)])
    assert merged["status"] == "ok" and merged["time_s"]["level"] == "processes"
    assert "pass 1: crashed" in merged["warnings"][-1]
    merged = merge_processes([_rec(0, None, "timeout"), _rec(1, None, "crashed")])
    assert merged["status"] == "timeout" and [p["status"] for p in merged["processes"]] == ["timeout", "crashed"]

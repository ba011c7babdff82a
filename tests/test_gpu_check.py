"""The GPU check script: its plan fits the device call, its stages stop at their limits,
and its dry run (the same stages on the CPU backends) goes through and packs its files."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from xpubench.spec import registry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
gpu_check = importlib.import_module("gpu_check")
plan = importlib.import_module("gpu_check_plan")

STAGES = ("install", "env", "tests", "probe", "torch-models", "torch-kernels", "torch-models-more",
          "jax-fp32", "jax-bf16", "distributed", "report")
OUT_LIMIT_FILES, OUT_LIMIT_BYTES = 8, 16 << 20  # what the device tool brings back from $OUT


def _args(tmp_path: Path, **kw) -> argparse.Namespace:
    base = dict(dry_run=True, estimate=False, out=str(tmp_path / "out"), work=str(tmp_path / "work"),
                budget=None, python=sys.executable, machine_id=None, wheels=None)
    return argparse.Namespace(**{**base, **kw})


def test_the_gpu_plan_fits_the_budget_by_its_cost_model(capsys):
    assert gpu_check.estimate() == 0
    out = capsys.readouterr().out
    total = float(out.splitlines()[-1].split()[1])
    assert 0 < total <= gpu_check.GPU_BUDGET_S <= 8 * 60


def test_every_suite_is_measured_by_some_stage_on_the_gpu():
    mode = plan.Mode(dry_run=False)
    selections = plan.run_selections(mode, registry)
    covered = {s for _, sel, _, _ in selections for s in sel.suites}
    covered |= {p.split("/")[0] for _, sel, _, _ in selections for p in sel.patterns}
    assert set(registry.suites()) - {plan.DISTRIBUTED_SUITE} <= covered
    by_name = {name: sel for name, sel, _, _ in selections}
    assert by_name["torch-models"].telemetry and by_name["torch-models"].specs == ["torch:cuda:fp32",
                                                                                   "torch:cuda:bf16"]
    assert "torch:cuda:tf32" not in by_name["torch-kernels"].specs  # no matmul there: tf32 == fp32
    assert "torch:cuda:tf32" in by_name["torch-models-more"].specs
    assert plan.check_patterns(registry, mode) == []
    assert plan.check_patterns(registry, plan.Mode(dry_run=True)) == []


def test_fp8_joins_only_where_a_workload_offers_it(monkeypatch):
    mode = plan.Mode(dry_run=False)
    specs = [s for _, sel, _, _ in plan.run_selections(mode, registry) for s in sel.specs]
    assert not any(s.endswith(":fp8") for s in specs)  # no workload has an fp8 path today
    gpt = registry.load_all()[("training", "gpt")]
    monkeypatch.setattr(gpt, "precisions", gpt.precisions + ("fp8",))
    specs = [s for _, sel, _, _ in plan.run_selections(mode, registry) for s in sel.specs]
    assert "torch:cuda:fp8" in specs
    assert "torch:cpu:fp8" not in [s for _, sel, _, _ in plan.run_selections(plan.Mode(dry_run=True), registry)
                                   for s in sel.specs]


def test_case_cost_counts_the_energy_window_only_with_telemetry():
    off = plan.case_cost("torch:cuda:fp32", "kernel", telemetry=False)
    on = plan.case_cost("torch:cuda:fp32", "kernel", telemetry=True)
    assert on - off == pytest.approx(plan.ENERGY_WINDOW_S - plan.TIME_BUDGET_S)
    # a JAX case pays a worker start, and a reduced precision compiles its fp32 twin too
    assert plan.case_cost("jax:gpu:bf16", "model", False) - plan.case_cost("jax:gpu:fp32", "model", False) \
        == pytest.approx(plan.JAX_COMPILE_S["model"])
    assert plan.case_cost("jax:gpu:fp32", "kernel", False) > plan.JAX_WORKER_S


def test_a_stage_past_its_limit_is_stopped_and_the_check_goes_on(tmp_path):
    check = gpu_check.Check(_args(tmp_path))
    slow = plan.Stage("slow", [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
                      cap_s=6.0, expect_s=0.0)
    quick = plan.Stage("quick", [sys.executable, "-c", "print('hi')"], cap_s=30.0, expect_s=0.0)
    missing = plan.Stage("missing", None, cap_s=30.0, expect_s=0.0, skip="not in this checkout")
    assert check.run_stage(slow, later=[quick]).status == "timeout"
    assert "cut at its limit" in check.outcomes[-1].detail
    assert check.run_stage(quick, later=[]).status == "ok"
    assert check.run_stage(missing, later=[]).status == "skipped"
    check.deadline = check.t0  # the check's time is spent: a stage is skipped, not started
    late = check.run_stage(quick, later=[])
    assert late.status == "skipped" and late.detail == "out of time"
    check.pack()
    log = (tmp_path / "out" / "gpu_check.log").read_text()
    assert "started" in log and "hi" in log
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "slow" in summary and "timeout" in summary and "out of time" in summary


@pytest.mark.slow
def test_dry_run_goes_through_every_stage_and_brings_back_its_files(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("OUT", None)
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run", "--out", str(out), "--work", str(work)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("stage ") and "status" in line)
    rows = {line.split()[0]: line.split() for line in lines[header + 1:] if line.strip()}
    assert set(STAGES) | {"total"} <= set(rows)
    for name in STAGES:
        assert rows[name][1] in ("ok", "skipped"), rows[name]
    for name in ("install", "tests", "probe", "torch-models", "torch-kernels", "jax-fp32", "jax-bf16"):
        assert rows[name][1] == "ok", rows[name]

    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= OUT_LIMIT_FILES and all(p.is_file() for p in out.iterdir())
    assert all(p.stat().st_size < OUT_LIMIT_BYTES for p in out.iterdir())
    assert {"summary.md", "gpu_check.log", "results.tar.gz", "tests.xml"} <= set(files)
    assert ("report.tar.gz" in files) == (rows["report"][1] == "ok")
    summary = (out / "summary.md").read_text()
    assert "## Stage time line" in summary and "torch-kernels" in summary

    with tarfile.open(out / "results.tar.gz") as tar:
        names = tar.getnames()
        runs = [json.load(tar.extractfile(n)) for n in names if n.endswith(".json") and "ceilings" not in n]
    assert any(n.endswith("ceilings.json") for n in names)
    ok = {m["backend"] for r in runs for m in r["measurements"] if m["status"] == "ok"}
    assert {"torch:cpu:fp32", "torch:cpu:bf16", "jax:cpu:fp32", "jax:cpu:bf16"} <= ok
    energy = [(m["suite"], m.get("energy") or {}) for r in runs for m in r["measurements"]
              if m["status"] == "ok" and m["backend"].startswith("torch")]
    # the networks' stage keeps its energy window: RAPL where readable, else "not measured" with
    # the reason (a CPU without a meter records no modelled joules unless --energy-estimate)
    training = [e for suite, e in energy if suite == "training"]
    assert training and all(e.get("method") == "rapl" or "not measured" in (e.get("reason") or "")
                            for e in training)


def test_a_pattern_that_no_longer_matches_fails_the_plan_not_the_check(tmp_path, monkeypatch):
    monkeypatch.setitem(plan.JAX_CASES, "bf16", ("training/no_such_network",))
    assert "no_such_network" in plan.check_patterns(registry, plan.Mode(dry_run=False))[0]
    check = gpu_check.Check(_args(tmp_path))
    check.site = ROOT / "no-site"  # this environment's xpubench stands in for the installed one
    assert check.stages_after_install() == []
    assert check.outcomes[-1].stage.name == "plan" and check.outcomes[-1].status == "failed"


def test_distributed_runs_at_world_size_one_where_the_suite_and_the_flag_exist():
    fake = argparse.Namespace(suites=lambda: ["distributed", "training"], select=lambda *a: [])
    mode = plan.Mode(dry_run=False)
    stage = plan.distributed_stage(mode, fake, ["python3"], "R", [], lambda: "  --world-size N  ranks")
    assert stage.skip is None and stage.argv[-2:] == ["--world-size", "1"]
    assert ["-s", "distributed"] == stage.argv[stage.argv.index("-s"):stage.argv.index("-s") + 2]
    assert "--world-size" not in plan.distributed_stage(mode, fake, ["python3"], "R", [], lambda: "").argv
    fake.suites = lambda: ["training"]
    assert plan.distributed_stage(mode, fake, ["python3"], "R", [], lambda: "").skip

"""pytest-benchmark JSON as report and compare input, from a real pytest-benchmark run."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xpubench.cli import compare as CLI
from xpubench.errors import UserError
from xpubench.report import build_site
from xpubench.results import pytest_benchmark as pytest_json
from xpubench.results.reader import load_runs, read_input_file
from xpubench.results.view import Measurement
from tests import report_data as D

BENCH_FILE = '''
def test_plain_sum(benchmark):
    benchmark(sum, range(200))


def test_xpubench_like(benchmark):
    benchmark.extra_info.update({
        "suite": "normalization", "case": "layernorm[d=64]", "mode": "forward",
        "backend": "python:cpu:fp32", "unit": "elements", "units_per_step": 64,
        "memory": {"host_peak_bytes": 1234567, "host_method": "psutil"},
        "energy": {"joules_per_step": None, "method": "unavailable"},
        "compile_s": 0.0, "error_vs_fp32": None, "mfu": 0.125,
        "median_ci95": None, "timer_overhead_s": 4e-8,
    })
    benchmark(sorted, list(range(64, 0, -1)))
'''


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """Run pytest-benchmark for real in a separate pytest process; return its work folder."""
    work = tmp_path_factory.mktemp("pytest-benchmark-run")
    (work / "test_tiny_bench.py").write_text(BENCH_FILE)
    (work / "pytest.ini").write_text("[pytest]\n")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(work / "pytest.ini"),
           "--rootdir", str(work), "test_tiny_bench.py", "--benchmark-json", "out.json",
           "--benchmark-autosave", f"--benchmark-storage=file://{work / 'store'}",
           "--benchmark-min-rounds=7", "--benchmark-max-time=0.05", "--benchmark-warmup=off"]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work


def test_reads_benchmark_json_from_a_real_run(real_run: Path):
    raw = json.loads((real_run / "out.json").read_text())
    (run,) = load_runs([real_run / "out.json"]).runs
    assert run.format == "pytest-benchmark"
    assert run.machine_id == raw["machine_info"]["node"]
    assert run.time is not None
    by_case = {m.case: m for m in run.measurements}
    plain = by_case["test_plain_sum"]
    assert (plain.suite, plain.backend, plain.unit, plain.status) == ("pytest", "python:cpu:fp32", "calls", "ok")
    stats = next(b["stats"] for b in raw["benchmarks"] if b["name"] == "test_plain_sum")
    assert plain.median == stats["median"] and plain.rounds == stats["rounds"] >= 7
    assert len(plain.samples) == stats["rounds"]
    # no CI in a plain pytest-benchmark file: the view derives it from the rounds
    assert plain.stored_ci95 is None
    assert stats["min"] <= plain.ci95[0] <= plain.median <= plain.ci95[1] <= stats["max"]
    assert plain.throughput == pytest.approx(1 / stats["median"])

    ours = by_case["layernorm[d=64]"]
    assert (ours.suite, ours.mode, ours.unit, ours.units_per_step) == ("normalization", "forward", "elements", 64)
    assert ours.throughput == pytest.approx(64 / ours.median)
    assert ours.memory.host_peak_bytes == 1234567 and ours.peak_memory == (1234567, "host", "psutil")
    assert ours.get("mfu") == 0.125 and ("mfu", 0.125) in ours.other_fields()  # unknown fields are carried along
    assert dict(ours.other_time_fields())["timer_overhead_s"] == 4e-8


def test_autosave_output_is_found_in_folders_by_content(real_run: Path, tmp_path: Path):
    saved = list((real_run / "store").rglob("*.json"))
    assert len(saved) == 1 and saved[0].name.startswith("0001_")
    (run,) = load_runs([real_run / "store"]).runs
    assert run.format == "pytest-benchmark" and len(run.measurements) == 2
    # the format is told by content, not by name
    odd = tmp_path / "benchmark-output.data"
    shutil.copy(real_run / "out.json", odd)
    assert read_input_file(odd).format == "pytest-benchmark"


def test_report_and_compare_accept_pytest_benchmark_json(real_run: Path, tmp_path: Path, capsys):
    index = build_site([real_run / "out.json", real_run / "store"], tmp_path / "site")
    assert (index.parent / "suite-pytest.html").exists()
    assert (index.parent / "suite-normalization.html").exists()
    assert "test_plain_sum" in (index.parent / "suite-pytest.html").read_text()
    p = argparse.ArgumentParser()
    CLI.add_arguments(p)
    assert CLI.run(p.parse_args([str(real_run / "out.json"), str(real_run / "store")])) == 0
    out = capsys.readouterr().out
    assert "test_plain_sum" in out and "0 regression," in out


def test_plain_document_fallbacks_and_ids():
    doc = D.pytest_benchmark_doc({"test_a": [1.0, 1.1, 0.9, 1.05, 0.95]},
                                 extra_info={"test_a": {"group_note": "x", "backend": "jax:cpu:bf16"}})
    assert pytest_json.is_pytest_benchmark(doc)
    run = pytest_json.convert(doc)
    (m,) = (Measurement(r) for r in run["measurements"])
    assert (m.suite, m.case, m.mode, m.backend, m.precision, m.framework) == (
        "pytest", "test_a", "call", "jax:cpu:bf16", "bf16", "jax")
    assert m.get("group_note") == "x"
    assert m.samples == (1.0, 1.1, 0.9, 1.05, 0.95) and m.median == 1.0
    assert run["machine"]["machine_id"] == "ci-runner"
    assert run["run"]["git"]["commit"] == "abcdef1234567890"
    assert run["run"]["id"] == pytest_json.convert(doc)["run"]["id"]  # stable: same file, same run
    doc["commit_info"]["id"] = "unversioned"
    assert pytest_json.convert(doc)["run"]["git"]["commit"] is None


def test_xpubench_fingerprint_in_machine_info_wins():
    doc = D.pytest_benchmark_doc({"test_a": [1.0, 1.1, 0.9]})
    doc["machine_info"]["xpubench"] = {"machine_id": "gpu-node-7", "hostname": "h7",
                                       "cpu": {"model": "EPYC 9654", "logical_cores": 192},
                                       "accelerators": [{"kind": "cuda", "name": "NVIDIA H100"}]}
    machine = pytest_json.convert(doc)["machine"]
    assert machine["machine_id"] == "gpu-node-7" and machine["cpu"]["model"] == "EPYC 9654"
    assert machine["accelerators"][0]["name"] == "NVIDIA H100"
    assert machine["software"]["python"] == "3.11.7"  # pytest-benchmark's fields stay where ours are silent


def test_foreign_json_is_refused(tmp_path: Path):
    assert not pytest_json.is_pytest_benchmark({"benchmarks": []})
    f = tmp_path / "x.json"
    f.write_text(json.dumps({"benchmarks": [], "name": "not ours"}))
    with pytest.raises(UserError, match="neither"):
        read_input_file(f)

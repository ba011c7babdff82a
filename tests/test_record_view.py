"""The record view: every field a reader needs, from today's files, old files and pytest-benchmark JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests import report_data as D
from xpubench.measure.stats import summarize
from xpubench.results.pytest_benchmark import convert
from xpubench.results.reader import load_runs, read_input_file
from xpubench.results.run_view import Run
from xpubench.results.view import Measurement, split_backend

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "results" / "reference" / "cpu-default-20261126.json"


@pytest.mark.parametrize("text, parts", [
    ("torch:cpu:fp32", ("torch", "cpu", "cpu", None, "fp32")),
    ("torch:cuda1:bf16", ("torch", "cuda1", "cuda", 1, "bf16")),
    ("jax:tpu:bf16", ("jax", "tpu", "tpu", None, "bf16")),
    ("onnxruntime:cpu:int8", ("onnxruntime", "cpu", "cpu", None, "int8")),
    ("torch:cuda", ("torch", "cuda", "cuda", None, "")),
    ("weird", ("weird", "", "", None, "")),
])
def test_one_splitter_for_backend_strings(text, parts):
    p = split_backend(text)
    assert (p.framework, p.device, p.device_kind, p.device_index, p.precision) == parts


def test_twin_backend_keeps_the_device_index():
    assert split_backend("torch:cuda1:bf16").with_precision("fp32") == "torch:cuda1:fp32"


def test_todays_file_reads_through_the_view():
    """The committed reference run: every accessor against the stored JSON."""
    run = read_input_file(REFERENCE)
    assert run.format == "xpubench" and run.machine_id and run.id and run.time is not None
    assert run.leg is None and run.command.startswith("xpubench") and run.ceilings
    raw = next(m for m in run.data["measurements"] if m["status"] == "ok" and m["suite"] == "normalization")
    m = Measurement(raw)
    t = raw["time_s"]
    assert (m.suite, m.case, m.mode, m.backend, m.status) == (raw["suite"], raw["case"], raw["mode"],
                                                               raw["backend"], "ok")
    assert (m.framework, m.device, m.precision) == (raw["framework"], raw["device"], raw["precision"])
    assert m.median == t["median"] and m.ci95 == tuple(t["ci95"]) and m.stored_ci95 == m.ci95
    assert m.rel_ci == pytest.approx(t["rel_ci"]) and m.rounds == t["rounds"] == len(m.samples)
    assert m.iterations_per_round == t["iterations_per_round"] and m.stop_reason == t["stop_reason"]
    assert m.throughput == raw["throughput_per_s"] and m.units_per_step == raw["units_per_step"]
    lo, hi = m.throughput_ci
    assert lo <= m.throughput <= hi
    assert m.peak_memory == (raw["memory"]["host_peak_bytes"], "host", raw["memory"]["host_method"])
    assert m.memory.method("device") == "unavailable"
    assert m.energy.is_estimate and m.energy.method == "estimate"
    assert m.energy.joules_per_unit == raw["energy"]["joules_per_unit"]
    assert m.roofline == raw["roofline"] and m.flops_per_step == raw["flops_per_step"]
    assert m.drift == t["drift"] and m.overhead_fraction == t["overhead_fraction"]
    assert dict(m.other_fields())["timing_method"] == raw["timing_method"]
    assert "median" not in dict(m.other_time_fields()) and "drift" in dict(m.other_time_fields())


def test_an_old_file_with_only_the_first_fields_still_reads():
    """Version-1 fields only: one memory method for both peaks, energy per step only, no samples."""
    raw = {"suite": "normalization", "case": "normalization/layernorm[d=8]", "mode": "forward",
           "backend": "torch:cuda:fp16", "status": "ok", "unit": "samples", "units_per_step": 32,
           "time_s": {"median": 2e-3, "ci95": [1.9e-3, 2.2e-3], "rounds": 40},
           "memory": {"device_peak_bytes": 3 << 20, "host_peak_bytes": None, "method": "torch.cuda"},
           "energy": {"joules_per_step": 0.064, "avg_power_w": 32.0, "method": "nvml-counter"}}
    m = Measurement(raw)
    assert m.case_name == "layernorm[d=8]"  # a writer that put the suite in the case
    assert m.samples == () and m.rounds == 40 and m.ci95 == (1.9e-3, 2.2e-3)
    assert m.throughput == pytest.approx(32 / 2e-3) and m.throughput_ci == pytest.approx((32 / 2.2e-3, 32 / 1.9e-3))
    assert m.peak_memory == (3 << 20, "device", "torch.cuda")
    assert m.energy.joules_per_unit == pytest.approx(0.064 / 32) and not m.energy.is_estimate
    assert m.roofline is None and m.error_vs_fp32 is None and m.warnings == [] and m.notes == {}


def test_a_record_without_samples_or_ci():
    m = Measurement({"suite": "s", "case": "c", "mode": "f", "backend": "b:cpu:fp32", "status": "ok",
                     "time_s": {"median": 1e-3}})
    assert m.median == 1e-3 and m.samples == () and m.ci95 is None and m.rel_ci is None and m.rounds is None
    assert m.throughput is None and m.throughput_ci is None and m.memory is None and m.energy is None


def test_missing_ci_is_derived_from_the_samples_by_the_timing_loops_rule():
    samples = D.REAL_SAMPLES["torch_matmul_128_cpu"]
    m = Measurement({"suite": "s", "case": "c", "mode": "f", "backend": "b:cpu:fp32", "status": "ok",
                     "time_s": {"samples": samples, "ci95": None}})
    stats = summarize(samples)
    assert m.stored_ci95 is None and m.ci95 == stats.ci95 and m.median == stats.median
    assert m.rounds == len(samples) and m.rel_ci == pytest.approx(stats.rel_ci)


def test_unknown_values_read_as_none_never_zero():
    m = Measurement({"suite": "s", "case": "c", "mode": "f", "backend": "b:cpu:fp32", "status": "error",
                     "reason": "boom", "units_per_step": "many", "throughput_per_s": math.nan,
                     "time_s": {"median": None, "ci95": [3.0, 1.0], "samples": [None, "x", -1.0, math.inf]},
                     "memory": "n/a", "energy": {"joules_per_step": math.nan, "method": None},
                     "error_vs_fp32": True})
    assert m.failed and not m.ok and m.reason == "boom"
    assert m.median is None and m.ci95 is None and m.samples == () and m.units_per_step is None
    assert m.throughput is None and m.memory is None and m.error_vs_fp32 is None
    assert m.energy.joules_per_step is None and m.energy.method == "unknown"
    assert Measurement({"status": "skipped"}).status == "skipped" and not Measurement({"status": "skipped"}).failed


def test_a_converted_pytest_benchmark_record():
    doc = D.pytest_benchmark_doc({"test_a": [1.0, 1.1, 0.9, 1.05, 0.95, 1.02, 0.98]},
                                 extra_info={"test_a": {"backend": "torch:cuda1:bf16", "units_per_step": 10,
                                                        "unit": "tokens"}})
    run = Run(convert(doc), Path("bench.json"), "pytest-benchmark")
    (m,) = run.measurements
    assert (m.suite, m.case, m.mode, m.unit) == ("pytest", "test_a", "call", "tokens")
    assert (m.framework, m.device, m.precision) == ("torch", "cuda1", "bf16")
    assert m.median == 1.0 and m.rounds == 7 and len(m.samples) == 7
    assert m.stored_ci95 is None and m.ci95 == summarize(list(m.samples)).ci95  # derived, not stored
    assert m.throughput == pytest.approx(10.0)
    assert run.machine_id == "ci-runner" and run.commit == "abcdef1234567890"


def test_run_view_identity_label_and_order(tmp_path: Path):
    early = D.run("laptop", D.T0, [], run_id="r1", commit="a" * 40)
    late = D.run("laptop", D.T0.replace(day=2), [], run_id="r2")
    late["run"]["leg"] = "cpu"
    late["machine"].pop("machine_id")  # an old file: the hostname stands in
    (tmp_path / "a-late.json").write_text(json.dumps(late))  # found first, sorted by start time
    D.write_run(tmp_path, early)
    runs = load_runs([tmp_path]).runs
    assert [r.id for r in runs] == ["r1", "r2"]  # oldest first
    first, second = runs
    assert first.label == "2026-11-01 02:00 · commit aaaaaaaaaa · run r1"
    assert second.machine_id == "laptop" and second.leg == "cpu" and second.short_commit == "0000000000"
    assert Run.of(early).sort_key < Run.of(late).sort_key
    assert Run.of({"run": {}, "machine": {}, "measurements": []}).machine_id == "unknown-machine"

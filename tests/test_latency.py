"""Latency mode: percentiles from per-call timings on fixed samples, the per-call
measuring loop, latency cases in the registry and the record, and the
latency–throughput figure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xpubench.measure import latency as lt
from xpubench.measure.timing import TimingConfig, measure
from xpubench.report.latency import latency_points, latency_throughput_figures
from xpubench.spec.registry import Work, Workload


# ------------------------------------------------------------------ percentiles
def test_percentiles_of_one_to_a_hundred():
    samples = [float(i) for i in range(100, 0, -1)]  # 100..1: order does not matter
    # linear interpolation at (n - 1) q: p50 -> 49.5 -> 50.5, p90 -> 89.1 -> 90.1, p99 -> 98.01 -> 99.01
    assert lt.percentiles(samples) == pytest.approx({"p50": 50.5, "p90": 90.1, "p99": 99.01})


def test_percentiles_match_numpy_linear_quantiles():
    rng = np.random.default_rng(7)
    samples = list(rng.lognormal(-7, 0.5, 999))
    got = lt.percentiles(samples)
    for p in (50, 90, 99):
        assert got[f"p{p}"] == pytest.approx(float(np.quantile(samples, p / 100, method="linear")), rel=1e-12)


def test_percentiles_of_few_samples():
    assert lt.percentiles([0.002]) == {"p50": 0.002, "p90": 0.002, "p99": 0.002}
    assert lt.percentiles([1.0, 3.0]) == pytest.approx({"p50": 2.0, "p90": 2.8, "p99": 2.98})
    with pytest.raises(ValueError, match="no calls"):
        lt.percentiles([])


def test_latency_block_counts_the_calls():
    block = lt.latency_block([0.004, 0.001, 0.002, 0.003])
    assert block == pytest.approx({"p50": 0.0025, "p90": 0.0037, "p99": 0.00397, "calls": 4})
    assert set(block) == {"p50", "p90", "p99", "calls"}


# ------------------------------------------------------------------ the per-call loop
def test_per_call_times_each_call_alone_until_the_sample_target():
    blocks: list[int] = []

    def run_block(n: int) -> float:
        blocks.append(n)
        return 0.001 * n

    cfg = TimingConfig(per_call=True, per_call_samples=40, min_rounds=5, time_budget_s=60.0,
                       warmup_min_s=0.0, warmup_max_s=0.01, min_round_s=0.002)
    res = measure(run_block, cfg)
    assert res.iterations_per_round == 1
    assert len(res.samples) == 40 and res.stop_reason == "sample_target"
    assert blocks[-40:] == [1] * 40  # every timed round is one call
    plain = measure(run_block, TimingConfig(min_rounds=5, time_budget_s=0.05, warmup_max_s=0.01,
                                            min_round_s=0.002))
    assert plain.iterations_per_round > 1  # the throughput loop batches calls into rounds


def test_per_call_stops_at_the_budget_when_calls_are_slow():
    clock = iter(range(0, 10_000)).__next__  # one "second" per clock read
    cfg = TimingConfig(per_call=True, per_call_samples=1000, min_rounds=3, time_budget_s=10.0,
                       warmup_min_s=0.0, warmup_max_s=1.0)
    res = measure(lambda n: 0.5 * max(n, 1), cfg, clock=lambda: float(clock()))
    assert res.stop_reason == "time_budget" and 3 <= len(res.samples) < 1000


# ------------------------------------------------------------------ cases and records
def test_a_latency_batch_adds_one_latency_case_per_variant():
    w = Workload(suite="t", name="m", modes=("inference",), unit="samples",
                 sizes={"smoke": {"batch": 8}}, work=lambda p, mode: Work(p["batch"]),
                 variants=({"variant": "a"}, {"variant": "b"}), latency_batch=1)
    cases = w.cases("smoke")
    assert [(c.params["variant"], c.params["batch"], c.latency) for c in cases] == [
        ("a", 8, False), ("b", 8, False), ("a", 1, True), ("b", 1, True)]
    assert cases[2].case_id == "m[variant=a,batch=1,latency=True]"
    assert cases[2].work.units == 1
    plain = Workload(suite="t", name="n", modes=("forward",), unit="x", sizes={"smoke": {"batch": 8}},
                     work=lambda p, mode: Work(1))
    assert [c.latency for c in plain.cases("smoke")] == [False]


def test_a_latency_case_records_percentiles_of_its_calls():
    from xpubench.backends.base import make_backend
    from xpubench.measure.case import measure_case
    from xpubench.options import RunOptions
    from xpubench.spec import registry as specmod

    case = next(c for c in specmod.select(["inference"], ["gpt"], "smoke") if c.latency)
    backend = make_backend("torch:cpu:fp32")
    backend.setup(1)
    rec = measure_case(backend, case, RunOptions(size="smoke", telemetry=False, time_budget_s=0.5))
    assert rec["status"] == "ok", rec.get("reason")
    t, lat = rec["time_s"], rec["latency_s"]
    assert t["iterations_per_round"] == 1 and lat["calls"] == t["rounds"] == len(t["samples"])
    smoke_target = TimingConfig.smoke().per_call_samples
    assert lat["calls"] == smoke_target or t["stop_reason"] == "time_budget"  # the smoke sample target
    assert lat == pytest.approx(lt.latency_block(t["samples"]))
    assert lat["p50"] == pytest.approx(t["median"])


# ------------------------------------------------------------------ the figure
def _rec(backend: str, batch: int, latency: bool, median: float, **extra) -> dict:
    params = {"variant": "dense", "batch": batch, **({"latency": True} if latency else {})}
    rec = {"suite": "inference", "name": "mnist_cnn", "case": "mnist_cnn[...]", "params": params,
           "backend": backend, "status": "ok", "unit": "samples", "throughput_per_s": batch / median,
           "time_s": {"median": median}}
    if latency:
        rec["latency_s"] = {"p50": median, "p90": median * 1.2, "p99": median * 2, "calls": 1000}
    rec.update(extra)
    return rec


RECORDS = [
    _rec("torch:cpu:fp32", 128, False, 0.02), _rec("torch:cpu:fp32", 1, True, 0.0005),
    _rec("onnxruntime:cpu:int8", 128, False, 0.004), _rec("onnxruntime:cpu:int8", 1, True, 0.0001),
    _rec("jax:cpu:fp32", 1, True, 0.0004),  # no throughput twin: not drawn
    _rec("onnxruntime:cpu:fp32", 1, True, 0.0003, status="error"),
]


def test_points_pair_latency_with_throughput_of_the_same_variant_and_backend():
    points = {p.backend: p for p in latency_points(RECORDS)}
    assert set(points) == {"torch:cpu:fp32", "onnxruntime:cpu:int8", "jax:cpu:fp32"}
    ort = points["onnxruntime:cpu:int8"]
    assert (ort.p50, ort.p99, ort.calls) == (0.0001, 0.0002, 1000)
    assert ort.throughput == pytest.approx(128 / 0.004) and ort.batch == 128 and ort.variant == "variant=dense"
    assert points["jax:cpu:fp32"].throughput is None


def test_figure_has_one_trace_per_backend_with_p99_whiskers():
    figs = latency_throughput_figures(RECORDS)
    assert len(figs) == 1
    spec = figs[0].spec
    json.dumps(spec)  # plain JSON for the page
    traces = {t["name"]: t for t in spec["data"]}
    assert set(traces) == {"torch:cpu:fp32", "onnxruntime:cpu:int8"}
    torch_t = traces["torch:cpu:fp32"]
    assert torch_t["x"] == [0.0005] and torch_t["y"] == [6400.0]
    assert torch_t["error_x"]["array"] == [0.0005] and torch_t["error_x"]["arrayminus"] == [0.0]
    assert spec["layout"]["xaxis"]["type"] == "log"
    assert "p99" in torch_t["hovertext"][0] and "batch 128" in torch_t["hovertext"][0]
    assert figs[0].kind == "latency"
    assert latency_throughput_figures([r for r in RECORDS if not r["params"].get("latency")]) == []


def test_figure_text_is_escaped():
    evil = [_rec("<b>x</b>:cpu:fp32", 128, False, 0.01), _rec("<b>x</b>:cpu:fp32", 1, True, 0.001)]
    spec = latency_throughput_figures(evil)[0].spec
    assert "<b>x</b>" not in json.dumps(spec["data"][0]["name"])

"""Roofline arithmetic on fixed numbers, run-file annotation, and the roofline chart."""

from __future__ import annotations

import json

import pytest

from xpubench.hardware import specsheet
from xpubench.hardware.device_roofs import device_roofs
from xpubench.hardware.roofline import (CEILINGS_NONE, FIELDS, attach_roofline, ceilings_key, device_names,
                                        physical_device_key, roofline_fields)


def _ceilings(key: str = "torch:cpu", **entry) -> dict:
    base = {"matmul_flops_per_s": {"fp32": 1e12, "bf16": 4e12}, "copy_bytes_per_s": 1e11,
            "triad_bytes_per_s": 0.8e11, "measured_at": "2025-01-01T00:00:00+00:00"}
    base.update(entry)
    return {"schema_version": 1, "measured_at": "2025-01-01T00:00:00+00:00", "ceilings": {key: base}}


def _record(flops=None, nbytes=None, median=0.01, backend="torch:cpu:fp32", suite="normalization",
            status="ok", **kw) -> dict:
    rec = {"suite": suite, "case": "x", "mode": "forward", "backend": backend, "status": status,
           "flops_per_step": flops, "bytes_per_step": nbytes, "time_s": {"median": median}}
    rec.update(kw)
    return rec


def test_compute_bound_case():
    # intensity 2000 FLOP/B: the memory roof (2000 x 1e11 = 2e14) is far above the 1e12 peak
    rf = roofline_fields(_record(flops=2e9, nbytes=1e6), _ceilings(), None)
    assert set(rf) == set(FIELDS)
    assert rf["achieved_flops_per_s"] == pytest.approx(2e11)
    assert rf["achieved_bytes_per_s"] == pytest.approx(1e8)
    assert rf["intensity"] == pytest.approx(2000.0)
    assert rf["peak_flops_per_s"] == pytest.approx(1e12)
    assert rf["peak_bytes_per_s"] == pytest.approx(1e11)
    assert rf["bound_kind"] == "compute"
    assert rf["bound_flops_per_s"] == pytest.approx(1e12)
    assert rf["fraction_of_bound"] == pytest.approx(0.2)
    assert rf["ceilings_source"].startswith("measured")
    assert rf["mfu_measured"] is None and rf["mfu_spec"] is None  # not a training case


def test_memory_bound_case():
    # intensity 0.01 FLOP/B: bound = 0.01 x 1e11 = 1e9 FLOP/s
    rf = roofline_fields(_record(flops=1e6, nbytes=1e8), _ceilings(), None)
    assert rf["intensity"] == pytest.approx(0.01)
    assert rf["bound_kind"] == "memory"
    assert rf["bound_flops_per_s"] == pytest.approx(1e9)
    assert rf["fraction_of_bound"] == pytest.approx(0.1)
    # on the memory side the fraction is the bandwidth fraction
    assert rf["fraction_of_bound"] == pytest.approx(rf["achieved_bytes_per_s"] / rf["peak_bytes_per_s"])


def test_ridge_point_is_compute_bound():
    rf = roofline_fields(_record(flops=1e10, nbytes=1e9), _ceilings(), None)  # intensity 10 = ridge
    assert rf["bound_flops_per_s"] == pytest.approx(1e12)
    assert rf["bound_kind"] == "compute"


def test_precision_picks_its_matmul_peak():
    rf = roofline_fields(_record(flops=2e9, nbytes=1e6, backend="torch:cpu:bf16", precision="bf16"),
                         _ceilings(), None)
    assert rf["peak_flops_per_s"] == pytest.approx(4e12)
    assert rf["fraction_of_bound"] == pytest.approx(0.05)
    # precision taken from the backend string when the record has no precision field
    rf2 = roofline_fields(_record(flops=2e9, nbytes=1e6, backend="torch:cpu:bf16"), _ceilings(), None)
    assert rf2["peak_flops_per_s"] == pytest.approx(4e12)


def test_unknown_ceilings_give_none_never_zero():
    rf = roofline_fields(_record(flops=2e9, nbytes=1e6), None, None)
    assert rf["ceilings_source"] == CEILINGS_NONE
    for k in ("peak_flops_per_s", "peak_bytes_per_s", "bound_flops_per_s", "bound_kind",
              "fraction_of_bound", "mfu_measured", "mfu_spec"):
        assert rf[k] is None, k
    assert rf["achieved_flops_per_s"] == pytest.approx(2e11)  # still known


def test_unmeasured_precision_leaves_bound_unknown():
    # fp16 was not measured: the bound is unknown, not the fp32 roof
    rf = roofline_fields(_record(flops=2e9, nbytes=1e6, backend="torch:cpu:fp16"), _ceilings(), None)
    assert rf["peak_flops_per_s"] is None
    assert rf["bound_flops_per_s"] is None and rf["fraction_of_bound"] is None
    assert rf["peak_bytes_per_s"] == pytest.approx(1e11)


def test_roofs_are_per_device_not_per_framework():
    # only torch probed the CPU: a JAX record on the same CPU is held against that roof
    rf = roofline_fields(_record(flops=2e9, nbytes=1e6, backend="jax:cpu:fp32"), _ceilings("torch:cpu"), None)
    assert rf["ceilings_source"].startswith("measured") and "best of torch:cpu" in rf["ceilings_source"]
    assert rf["bound_flops_per_s"] == pytest.approx(1e12)
    # another device's ceilings are no roof for this one
    gpu = roofline_fields(_record(flops=2e9, nbytes=1e6, backend="torch:cuda:fp32"), _ceilings("torch:cpu"), None)
    assert gpu["ceilings_source"] == CEILINGS_NONE and gpu["bound_flops_per_s"] is None


def test_device_roof_is_the_best_of_every_framework_with_its_source():
    ceil = _ceilings("torch:cpu", matmul_flops_per_s={"fp32": 2e11, "bf16": 9e11})
    ceil["ceilings"]["jax:cpu"] = {"matmul_flops_per_s": {"fp32": 4.5e11, "bf16": 4e11}, "copy_bytes_per_s": 4e10,
                                   "read_bytes_per_s": 1.2e11, "matmul": {"fp32": {"op": "jnp.matmul (jit)",
                                                                                  "best_shape": "1024x1024x1024"}}}
    roof = device_roofs(ceil)["cpu"]
    assert roof["matmul_flops_per_s"] == {"fp32": 4.5e11, "bf16": 9e11}
    assert roof["matmul_source"]["fp32"] == "jax:cpu, jnp.matmul (jit), 1024x1024x1024"
    assert roof["matmul_source"]["bf16"].startswith("torch:cpu")
    assert roof["memory_bytes_per_s"] == pytest.approx(1.2e11) and roof["memory_source"] == "jax:cpu, read"
    assert roof["frameworks"] == ["jax:cpu", "torch:cpu"]
    # torch training held against the device roof, not torch's own lower fp32 figure: MFU below 1
    rec = _record(flops=3e9, backend="torch:cpu:fp32", suite="training", median=0.01, flops_kind="matmul")
    rf = roofline_fields(rec, ceil, None)
    assert rf["mfu_measured"] == pytest.approx(3e11 / 4.5e11)
    assert rf["warnings"] == [] and rf["above_roof"] is False


def _kinds_ceilings(**extra) -> dict:
    entry = {"matmul_flops_per_s": {"fp32": 1e12, "fp16": 2.4e9}, "vector_flops_per_s": {"fp32": 3e11},
             "cache_bytes": 32 << 20, **extra}
    return _ceilings("torch:cpu", **entry)


def test_vector_flops_are_held_against_the_vector_roof_not_the_matmul_one():
    # fp16 LayerNorm-like work: 8 FLOPs per element, 2 elements of 2 B each moved: intensity 2 FLOP/B
    e = 64 << 20
    rec = _record(flops=8.0 * e, nbytes=4.0 * e, backend="torch:cpu:fp16", flops_kind="vector",
                  working_set_bytes=4.0 * e, median=0.01)
    rf = roofline_fields(rec, _kinds_ceilings(), None)
    assert rf["flops_kind"] == "vector"
    # the emulated 2.4 GFLOP/s fp16 matmul is no roof for it; the fp32 vector roof is
    assert rf["peak_flops_per_s"] == pytest.approx(3e11) and "(fp32)" in rf["peak_source"]
    assert rf["bound_kind"] == "memory"  # 2 FLOP/B x 1e11 B/s = 2e11, below the vector roof
    assert rf["bound_flops_per_s"] == pytest.approx(2e11)
    assert rf["fraction_of_bound"] == pytest.approx(8.0 * e / 0.01 / 2e11)
    # the same work declared as matmul FLOPs is held against the matmul roof of that precision
    mm = roofline_fields({**rec, "flops_kind": "matmul"}, _kinds_ceilings(), None)
    assert mm["peak_flops_per_s"] == pytest.approx(2.4e9) and mm["bound_kind"] == "compute"


def test_vector_work_without_a_vector_roof_is_held_against_memory_alone():
    rec = _record(flops=1e9, nbytes=1e9, flops_kind="vector", median=0.1)
    rf = roofline_fields(rec, _ceilings(), None)  # an older file: no vector roof measured
    assert rf["peak_flops_per_s"] is None
    assert rf["bound_kind"] == "memory" and rf["bound_flops_per_s"] == pytest.approx(1e11)
    assert rf["fraction_of_bound"] == pytest.approx(0.1)


def test_work_bytes_follow_the_precision():
    from xpubench.spec.registry import VECTOR, Work

    w = Work(100, 800.0, 50.0, flops_kind=VECTOR, elements=200.0, working_set_elements=150.0)
    assert w.bytes_at("fp32") == 50 + 800 and w.bytes_at("bf16") == 50 + 400 and w.bytes_at("fp16") == 450
    assert w.working_set_at("bf16") == 300
    fields = w.record_fields("bf16")
    assert fields["bytes_per_step"] == 450 and fields["flops_kind"] == "vector" and fields["bytes_element_size"] == 2
    plain = Work(1, 10.0, 12.0)  # bytes in fixed dtypes only: the same at every precision
    assert plain.bytes_at("bf16") == plain.bytes_at("fp32") == 12.0 and plain.working_set_at("bf16") == 12.0
    assert plain.record_fields("fp32")["flops_kind"] == "matmul"
    with pytest.raises(ValueError, match="flops_kind"):
        Work(1, 1.0, flops_kind="scalar")


def test_suites_declare_kinds_and_dtype_bytes():
    from xpubench.spec import registry as specmod

    cases = {(c.suite, c.name, c.mode): c for c in specmod.all_cases("default")}
    bn = cases[("normalization", "batchnorm2d", "forward")].work
    assert bn.flops_kind == "vector" and bn.bytes_at("bf16") == bn.bytes_at("fp32") / 2
    drop = cases[("dropout", "dropout", "forward")].work
    assert drop.flops_kind == "vector" and drop.bytes_at("fp32") / drop.units == 9 and drop.bytes_at("bf16") / drop.units == 5
    sgd = cases[("optimizers", "resnet", "step")]
    assert sgd.work.flops_kind == "vector" and sgd.work.working_set_at("fp32") < sgd.work.bytes_at("fp32")
    assert cases[("training", "resnet18", "train_step")].work.flops_kind == "matmul"
    assert cases[("inference", "mnist_cnn", "inference")].work.flops_kind == "matmul"


def test_a_cache_resident_case_above_the_dram_roof_says_so():
    # 12.6 MB working set, 32 MiB last-level cache, 1.22x the DRAM roof
    ws = 12.6e6
    rec = _record(flops=1e6, nbytes=ws, median=ws / (1.22 * 1e11), flops_kind="vector", working_set_bytes=ws)
    rf = roofline_fields(rec, _kinds_ceilings(), None)
    assert rf["cache_resident"] is True and rf["cache_bytes"] == 32 << 20
    assert rf["fraction_of_bound"] == pytest.approx(1.22)
    assert rf["above_roof"] is True
    [w] = rf["warnings"]
    assert w.startswith("122% of the memory bound") and "cache-resident" in w and "12.6 MB" in w
    # a DRAM-sized working set is not cache-resident, and under its roof carries no warning
    big = roofline_fields({**rec, "bytes_per_step": 1e9, "working_set_bytes": 1e9, "time_s": {"median": 0.1}},
                          _kinds_ceilings(), None)
    assert big["cache_resident"] is False and big["warnings"] == [] and big["above_roof"] is False


def test_above_one_warnings_name_their_cause():
    # an old record (no flops_kind): element-wise FLOPs held against the matmul roof, bytes at 4 B
    old = _record(flops=1e12, nbytes=1e6, backend="torch:cpu:fp16", median=0.1)
    rf = roofline_fields(old, _kinds_ceilings(), None)
    assert rf["fraction_of_bound"] > 1 and rf["bound_kind"] == "compute"
    assert "FLOPs of unknown kind held against the matmul roof" in rf["warnings"][0]
    mem = roofline_fields(_record(flops=1e6, nbytes=2e9, backend="torch:cpu:fp16", median=0.01),
                          _kinds_ceilings(cache_bytes=None), None)
    assert "bytes counted at 4 B/element" in mem["warnings"][0]
    # a DRAM-sized working set well above the roof: cache reuse cannot explain it, a low roof can
    big = roofline_fields(_record(flops=1e6, nbytes=2e9, working_set_bytes=1e9, flops_kind="vector", median=0.01),
                          _kinds_ceilings(), None)
    assert big["cache_resident"] is False and "memory roof is low" in big["warnings"][0]
    assert "reused every step" not in big["warnings"][0]
    # ceilings probed on a busy machine: said so
    busy = _kinds_ceilings(busy="machine busy: other processes used ~86% of all CPUs")
    rf = roofline_fields(_record(flops=2e12, backend="torch:cpu:fp32", median=1.0, flops_kind="matmul"), busy, None)
    assert rf["fraction_of_bound"] == pytest.approx(2.0) and "probed on a busy machine" in rf["warnings"][0]
    # training above the device's matmul roof: an MFU warning too
    tr = roofline_fields(_record(flops=2e12, backend="torch:cpu:fp32", median=1.0, flops_kind="matmul",
                                 suite="training"), _kinds_ceilings(), None)
    assert tr["mfu_measured"] == pytest.approx(2.0)
    assert any(w.startswith("MFU 200%") and "matmul sweep did not reach" in w for w in tr["warnings"])


def test_a_rate_above_the_isa_estimate_blames_the_clock():
    ceil = _ceilings("torch:cpu", matmul_flops_per_s={"fp32": 4.5e11})
    ceil["machine"] = {"cpu": {"vendor": "AuthenticAMD", "flags": {"avx512f": True, "fma": True},
                               "freq_mhz": {"current": 2600.0}, "physical_cores": 2}}
    roof = device_roofs(ceil)["cpu"]
    assert roof["theoretical"]["matmul_flops_per_s"]["fp32"] == pytest.approx(2 * 2.6e9 * 64)
    assert any("clock is too low (VMs hide turbo)" in w for w in roof["warnings"])
    rf = roofline_fields(_record(flops=4e9, backend="torch:cpu:fp32", median=0.01, flops_kind="matmul"), ceil, None)
    assert rf["theoretical_peak_flops_per_s"] == pytest.approx(3.328e11)
    assert any("clock is too low" in w for w in rf["warnings"]) and rf["above_roof"] is False


def test_cli_summary_lines_list_the_warned_records():
    from xpubench.hardware.roofline_warnings import summary_lines

    ok = _record(flops=1e6, nbytes=1e9, median=0.1, flops_kind="vector", case="fine")
    hot = _record(flops=1e6, nbytes=12.6e6, median=12.6e6 / 1.22e11, flops_kind="vector", case="hot")
    doc = attach_roofline({"run": {}, "machine": {}, "measurements": [ok, hot]}, _kinds_ceilings())
    lines = summary_lines(doc["measurements"])
    assert len(lines) == 1 and lines[0].startswith("normalization/hot:forward @ torch:cpu:fp32: 122% of the memory")


def test_bytes_only_and_flops_only_records():
    mem = roofline_fields(_record(flops=None, nbytes=1e8), _ceilings(), None)
    assert mem["intensity"] is None and mem["achieved_flops_per_s"] is None
    assert mem["bound_kind"] == "memory"
    assert mem["fraction_of_bound"] == pytest.approx(1e10 / 1e11)
    zero = roofline_fields(_record(flops=0, nbytes=1e8), _ceilings(), None)
    assert zero["achieved_flops_per_s"] is None and zero["intensity"] is None  # never 0
    comp = roofline_fields(_record(flops=2e9, nbytes=None), _ceilings(), None)
    assert comp["bound_kind"] == "compute"
    assert comp["fraction_of_bound"] == pytest.approx(0.2)


def test_failed_or_untimed_records_have_no_achieved_numbers():
    for rec in (_record(flops=2e9, nbytes=1e6, status="oom"), _record(flops=2e9, nbytes=1e6, median=None),
                _record(flops=2e9, nbytes=1e6, median=0.0)):
        rf = roofline_fields(rec, _ceilings(), None)
        assert rf["achieved_flops_per_s"] is None and rf["fraction_of_bound"] is None
        assert rf["peak_flops_per_s"] == pytest.approx(1e12)  # the ceilings are still known


def test_memory_roof_is_the_best_bandwidth_kernel_of_any_framework():
    ceil = _ceilings("torch:cpu", copy_bytes_per_s=1e10, triad_bytes_per_s=1.5e10, inplace_bytes_per_s=None)
    assert device_roofs(ceil)["cpu"]["memory_bytes_per_s"] == pytest.approx(1.5e10)
    ceil["ceilings"]["jax:cpu"] = {"read_bytes_per_s": 2e10, "inplace_bytes_per_s": 2.5e10}
    roof = device_roofs(ceil)["cpu"]
    assert roof["memory_bytes_per_s"] == pytest.approx(2.5e10) and roof["memory_source"] == "jax:cpu, inplace"
    assert device_roofs({"ceilings": {"torch:cpu": {"copy_bytes_per_s": None}}})["cpu"]["memory_bytes_per_s"] is None
    assert device_roofs(None) == {}


def test_mfu_for_training_against_measured_and_spec():
    spec = specsheet.spec_peaks("NVIDIA H100 80GB HBM3")
    ceil = _ceilings("torch:cuda", matmul_flops_per_s={"bf16": 8e14})
    # 4e12 model FLOPs per step in 10 ms = 4e14 FLOP/s
    rec = _record(flops=4e12, nbytes=1e9, backend="torch:cuda:bf16", suite="training")
    rf = roofline_fields(rec, ceil, spec)
    assert rf["mfu_measured"] == pytest.approx(0.5)
    assert rf["mfu_spec"] == pytest.approx(4e14 / 989.4e12)
    assert rf["spec_peak_flops_per_s"] == pytest.approx(989.4e12)
    assert rf["ceilings_source"].startswith("measured")  # measured wins over the spec sheet


def test_spec_sheet_stands_in_when_nothing_was_measured():
    spec = specsheet.spec_peaks("NVIDIA H100 80GB HBM3")
    rec = _record(flops=1e9, nbytes=1e9, backend="torch:cuda:bf16")  # intensity 1
    rf = roofline_fields(rec, None, spec)
    assert rf["ceilings_source"].startswith("spec sheet: H100 SXM")
    assert rf["bound_kind"] == "memory"
    assert rf["bound_flops_per_s"] == pytest.approx(3.35e12)
    assert rf["fraction_of_bound"] == pytest.approx(1e11 / 3.35e12)
    assert rf["mfu_measured"] is None


@pytest.mark.parametrize("backend,key", [
    ("torch:cpu:fp32", "torch:cpu"), ("torch:cuda:bf16", "torch:cuda"), ("torch:cuda0:bf16", "torch:cuda"),
    ("torch:cuda1:fp16", "torch:cuda1"), ("jax:tpu:bf16", "jax:tpu"), ("JAX:GPU:fp32", "jax:gpu"),
    ("torch:cpu", "torch:cpu"), ("nonsense", None),
])
def test_ceilings_key(backend, key):
    assert ceilings_key(backend) == key


def _run_doc() -> dict:
    return {
        "schema_version": 1,
        "run": {"backend_info": {"torch:cuda:bf16": {"device_name": "NVIDIA H100 PCIe"},
                                 "jax:tpu:bf16": {"device_kind": "TPU v5 lite"}}},
        "machine": {"machine_id": "m", "accelerators": [{"kind": "cuda", "index": 1, "name": "NVIDIA L4"}]},
        "measurements": [
            _record(flops=2e9, nbytes=1e6, backend="torch:cpu:fp32"),
            _record(flops=2e9, nbytes=1e6, backend="torch:cuda:bf16"),
            _record(flops=2e9, nbytes=1e6, backend="torch:cuda1:bf16"),
            _record(flops=2e9, nbytes=1e6, backend="jax:tpu:bf16"),
            _record(backend="torch:cpu:fp32", status="skipped", median=None),
        ],
    }


def test_attach_roofline_annotates_every_measurement():
    doc = attach_roofline(_run_doc(), _ceilings())
    assert doc["ceilings"]["ceilings"]["torch:cpu"]["copy_bytes_per_s"] == 1e11
    rfs = [m["roofline"] for m in doc["measurements"]]
    assert all(set(rf) == set(FIELDS) for rf in rfs)
    assert rfs[0]["ceilings_source"].startswith("measured")
    assert rfs[1]["spec_name"] == "H100 PCIe" and rfs[1]["ceilings_source"].startswith("spec sheet")
    assert rfs[2]["spec_name"] == "L4"  # from the machine's NVML list, by index
    assert rfs[3]["spec_name"] == "TPU v5e"
    assert rfs[4]["achieved_flops_per_s"] is None
    json.dumps(doc, allow_nan=False)  # still a valid results document


@pytest.mark.parametrize("backend,info,key", [
    ("torch:cuda1:bf16", {"device_key": "cuda1"}, "cuda1"),  # recorded by the backend
    ("npux:npu2:fp32", {"device_key": "npu2"}, "npu2"),  # a third party's device kind
    ("jax:gpu1:fp32", None, "cuda1"), ("torch:cuda:fp32", {}, "cuda0"), ("jax:tpu:bf16", None, "tpu0"),
    ("torch:cpu:fp32", None, "cpu"),  # runs written before the key was recorded
    ("npux:npu:fp32", None, None),  # unknown and not recorded: no guess (it is not a CUDA GPU)
])
def test_physical_device_key(backend, info, key):
    assert physical_device_key(backend, info) == key


def test_device_names_match_accelerators_by_the_recorded_device():
    doc = {"run": {"backend_info": {"npux:npu1:fp32": {"device_key": "npu1"}}},
           "machine": {"accelerators": [{"kind": "npu", "index": 0, "name": "NPU A"},
                                        {"kind": "npu", "index": 1, "name": "NPU B"},
                                        {"kind": "cuda", "index": 0, "name": "NVIDIA L4"}]},
           "measurements": [_record(backend="npux:npu1:fp32"), _record(backend="other:xpu:fp32")]}
    # npu1 is NPU B (not the CUDA GPU); the unknown xpu device is left unnamed
    assert device_names(doc) == {"npux:npu1": "NPU B"}


def test_attach_roofline_without_ceilings():
    doc = attach_roofline(_run_doc(), None)
    assert doc["ceilings"] is None
    cpu = doc["measurements"][0]["roofline"]
    assert cpu["ceilings_source"] == CEILINGS_NONE and cpu["bound_flops_per_s"] is None


def test_roofline_chart_has_roofs_and_points():
    from xpubench.report.roofline import roofline_figure, roofline_groups, roofline_spec

    doc = attach_roofline(_run_doc(), _ceilings())
    recs = [m for m in doc["measurements"] if m["backend"].startswith("torch:cpu")]
    recs.append(_record(flops=1e6, nbytes=1e8, backend="torch:cpu:fp32", case="<b>evil</b>"))
    recs.append(_record(flops=None, nbytes=1e8, backend="torch:cpu:fp32"))
    spec = roofline_spec(recs, doc["ceilings"], "machine <m> fp32")
    lines = [t for t in spec["data"] if t["mode"] == "lines"]
    points = [t for t in spec["data"] if t["mode"] == "markers"]
    assert len(lines) == 1 and len(points) == 1
    assert len(points[0]["x"]) == 2  # the bytes-only record is left out, and said so
    assert any("without FLOPs" in a["text"] for a in spec["layout"]["annotations"])
    # the roof: the memory slope below the ridge (10 FLOP/B), flat at the peak above it
    roof = dict(zip(lines[0]["x"], lines[0]["y"]))
    for x, y in roof.items():
        assert y == pytest.approx(min(1e12, x * 1e11))
    assert 10.0 in roof
    assert spec["layout"]["xaxis"]["type"] == "log" and spec["layout"]["yaxis"]["type"] == "log"
    assert "<b>evil</b>" not in json.dumps(spec) and "&lt;b&gt;evil" in json.dumps(spec)
    assert "&lt;m&gt;" in spec["layout"]["title"]["text"]
    fig = roofline_figure(recs, doc["ceilings"], "t")
    assert len(fig.data) == 2
    groups = roofline_groups([doc])
    assert {(g[0], g[1]) for g in groups} == {("m", "fp32"), ("m", "bf16")}
    assert all(g[3] is doc["ceilings"] for g in groups)


def test_roofline_chart_without_ceilings_says_so():
    from xpubench.report.roofline import roofline_spec

    spec = roofline_spec([_record(flops=2e9, nbytes=1e6)], None, "t")
    assert any("xpubench probe" in a["text"] for a in spec["layout"]["annotations"])
    assert [t["mode"] for t in spec["data"]] == ["markers"]


def test_roofline_chart_hover_warns_and_never_promises_the_hardware_limit():
    from xpubench.report.roofline import EXPLANATION, roofline_spec

    assert "as fast as the hardware allows" not in EXPLANATION and "not faster than the hardware" in EXPLANATION
    hot = _record(flops=1e6, nbytes=12.6e6, median=12.6e6 / 1.22e11, flops_kind="vector", working_set_bytes=12.6e6)
    doc = attach_roofline({"run": {}, "machine": {"machine_id": "m"}, "measurements": [hot]}, _kinds_ceilings())
    spec = roofline_spec(doc["measurements"], doc["ceilings"], "t")
    [point] = [t for t in spec["data"] if t["mode"] == "markers"]
    hover = point["text"][0]
    assert "cache-resident: working set 12.6 MB" in hover and "⚠ 122% of the memory bound" in hover
    assert "FLOPs held against the vector roof" in hover
    [roof] = [t for t in spec["data"] if t["mode"] == "lines"]
    assert roof["name"] == "cpu fp32 roof (measured)"

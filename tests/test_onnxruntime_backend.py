"""ONNX Runtime backend: registered and listed (with the reason where unavailable); the
exported model computes torch's function; each ORT variant agrees with torch fp32 on
fixed inputs; the cases measure end to end with their session facts recorded."""

from __future__ import annotations

import importlib.metadata as md

import numpy as np
import pytest

from xpubench.backends import availability as av
from xpubench.backends.base import BackendSpec, all_specs, make_backend
from xpubench.backends.onnxruntime import backend as ob
from xpubench.backends.onnxruntime import export as ex
from xpubench.backends.onnxruntime import quantize as oq
from xpubench.measure.case import measure_case
from xpubench.options import RunOptions
from xpubench.spec import registry as specmod
from xpubench.suites.common import rel_l2
from xpubench.suites.inference import common as cm
from xpubench.suites.inference import gpt as gpt_suite
from xpubench.suites.inference import mnist

pytest.importorskip("onnxruntime")

OPTS = RunOptions(size="smoke", telemetry=False, time_budget_s=0.05)
EVAL_BATCH = 128  # the default size's batch: the fixed inputs of the agreement tests


def ort_logits(model: bytes, feeds: dict) -> np.ndarray:
    return cm.ort_logits_fp32(model, feeds)


@pytest.fixture(scope="module")
def mnist_export():
    """The trained dense MNIST CNN exported at the evaluation batch, and torch's logits."""
    import torch

    model = mnist.torch_model(pruned=False)
    x, _ = mnist.synthetic_digits(EVAL_BATCH, "eval")
    out = ex.export(model, (torch.from_numpy(x),), ("images",), ("logits",), key=("test", "mnist", EVAL_BATCH))
    return out, {"images": x}, mnist.torch_reference(EVAL_BATCH, pruned=False)


# ------------------------------------------------------------------ registration
def test_registered_by_entry_point_and_spec():
    eps = {ep.name: ep.value for ep in md.entry_points(group="xpubench.backends")}
    assert eps.get("onnxruntime") == "xpubench.backends.onnxruntime.backend:OrtBackend"
    assert md.entry_points(group="xpubench.backends")["onnxruntime"].load() is ob.OrtBackend
    assert isinstance(make_backend("onnxruntime:cpu:int8"), ob.OrtBackend)
    assert str(BackendSpec.parse("onnxruntime:cuda1:fp16")) == "onnxruntime:cuda1:fp16"
    listed = {str(s) for s in all_specs()}
    assert {"onnxruntime:cpu:fp32", "onnxruntime:cpu:int8", "onnxruntime:cuda:fp16"} <= listed


def test_availability_says_why(monkeypatch):
    assert make_backend("onnxruntime:cpu:fp32").availability().ok
    assert make_backend("onnxruntime:cpu:int8").availability().ok
    bf16 = make_backend("onnxruntime:cpu:bf16").availability()
    assert not bf16.ok and bf16.reason == "onnxruntime:cpu runs fp32/int8, not bf16"
    assert "runs fp32/fp16, not int8" in make_backend("onnxruntime:cuda:int8").availability().reason

    # CUDA: the provider ships in onnxruntime-gpu, and a device must be visible.
    monkeypatch.setattr(av, "installed", lambda dist: None)
    assert "install onnxruntime-gpu" in make_backend("onnxruntime:cuda:fp16").availability().reason
    monkeypatch.setattr(av, "installed", lambda dist: "1.20.0")
    monkeypatch.setattr(av, "nvidia_gpu_count", lambda: 0)
    assert make_backend("onnxruntime:cuda:fp32").availability().reason == "no CUDA device visible"
    monkeypatch.setattr(av, "nvidia_gpu_count", lambda: 1)
    assert make_backend("onnxruntime:cuda:fp32").availability().ok
    assert "no CUDA device 1" in make_backend("onnxruntime:cuda1:fp32").availability().reason

    real = av.module_present
    monkeypatch.setattr(av, "module_present", lambda m: m != "onnxruntime" and real(m))
    reason = make_backend("onnxruntime:cpu:fp32").availability().reason
    assert reason == "onnxruntime is not installed (pip install 'xpubench[onnx]')"
    monkeypatch.setattr(av, "module_present", lambda m: m != "onnxscript" and real(m))
    assert "onnxscript is not installed" in make_backend("onnxruntime:cpu:fp32").availability().reason


def test_list_shows_the_backend_with_its_reason(capsys):
    from xpubench.cli.main import main

    assert main(["list", "-s", "inference"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime:cpu:int8" in out
    assert "onnxruntime:cpu runs fp32/int8, not bf16" in out


def test_default_run_leaves_it_opt_in():
    assert ob.OrtBackend.default_specs() == []


def test_worker_setup_without_the_provider_is_a_clear_failure():
    backend = make_backend("onnxruntime:cuda:fp32")
    with pytest.raises(RuntimeError, match="offers no CUDAExecutionProvider"):
        backend.setup()


# ------------------------------------------------------------------ the exported function
def test_exported_mnist_matches_torch_in_fp32(mnist_export):
    out, feeds, want = mnist_export
    assert out.exporter.startswith("torch.onnx.export(dynamo=True")
    got = ort_logits(out.model, feeds)
    assert rel_l2(got, want) < 1e-4
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_exported_gpt_matches_torch_in_fp32():
    import torch

    p = specmod.select(["inference"], ["gpt"], "smoke")[0].params
    tokens = gpt_suite.prompt(p)
    out = ex.export(gpt_suite.torch_model(p), (torch.from_numpy(tokens),), ("tokens",), ("logits",))
    got = ort_logits(out.model, {"tokens": tokens})
    want = gpt_suite.torch_reference(p)
    assert got.shape == (p["batch"], p["seq"], p["vocab"])
    assert rel_l2(got, want) < 1e-4
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_export_is_cached_by_key(mnist_export):
    out, _, _ = mnist_export
    again = ex.export(None, (), ("images",), ("logits",), key=("test", "mnist", EVAL_BATCH))
    assert again is out  # no second export: the model argument is not even looked at


# ------------------------------------------------------------------ agreement with torch fp32
@pytest.mark.parametrize("method", oq.INT8_METHODS)
def test_int8_agrees_with_torch_fp32(mnist_export, method):
    out, feeds, want = mnist_export
    calibration = [{"images": mnist.synthetic_digits(EVAL_BATCH, "calibration")[0]}] if method == "static" else None
    q = oq.quantize_int8(out.model, method, calibration)
    assert len(q) < len(out.model) / 2  # int8 weights: about a quarter of the fp32 bytes
    got = ort_logits(q, feeds)
    assert cm.top1_agreement(got, want) >= 0.97
    assert 0 < rel_l2(got, want) < 0.05


def test_static_int8_needs_calibration(mnist_export):
    with pytest.raises(ValueError, match="calibration"):
        oq.quantize_int8(mnist_export[0].model, "static")
    with pytest.raises(ValueError, match="unknown int8 method"):
        oq.quantize_int8(mnist_export[0].model, "weights-only")


def test_fp16_conversion_keeps_fp32_inputs_and_outputs(mnist_export):
    import onnx

    proto = onnx.load_from_string(oq.to_fp16(mnist_export[0].model))
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [f32]
    assert [o.type.tensor_type.elem_type for o in proto.graph.output] == [f32]
    weights = [t for t in proto.graph.initializer if len(t.dims) >= 2]
    assert weights and all(t.data_type == f16 for t in weights)


@pytest.mark.parametrize("spec,variant,floor", [
    ("onnxruntime:cpu:fp32", "dense", 0.999), ("onnxruntime:cpu:fp32", "pruned50", 0.999),
    ("onnxruntime:cpu:int8", "dense", 0.97), ("onnxruntime:cpu:int8", "pruned50", 0.97)])
def test_each_ort_variant_agrees_with_torch_fp32(spec, variant, floor):
    """Built as the harness builds it, at the default batch (128 fixed images)."""
    backend = make_backend(spec)
    backend.setup(1)
    case = next(c for c in specmod.select(["inference"], ["mnist_cnn"], "default")
                if c.params["variant"] == variant and not c.latency)
    step = backend.build(case)
    notes = step.notes
    assert notes["agreement_predictions"] == EVAL_BATCH
    assert notes["top1_agreement_vs_torch_fp32"] >= floor
    assert notes["error_vs_torch_fp32"] < (1e-4 if spec.endswith("fp32") else 0.05)
    assert notes["session"]["providers"] == ["CPUExecutionProvider"]
    assert notes["session"]["intra_op_num_threads"] == 1
    assert notes["session"]["graph_optimization_level"] == "ORT_ENABLE_ALL"
    if spec.endswith("int8"):
        assert notes["quantization"].startswith("onnxruntime.quantization.quantize_static")
        assert notes["calibration_batches"] == 1
    if variant == "pruned50":
        assert notes["weight_sparsity"] == pytest.approx(0.5, abs=0.001)


# ------------------------------------------------------------------ measured end to end
@pytest.mark.parametrize("spec", ["onnxruntime:cpu:fp32", "onnxruntime:cpu:int8"])
def test_cases_measure_end_to_end(spec):
    backend = make_backend(spec)
    info = backend.setup(1)
    assert info["threads"] == 1 and "CPUExecutionProvider" in info["available_providers"]
    for case in specmod.select(["inference"], None, "smoke"):
        rec = measure_case(backend, case, OPTS)
        assert rec["status"] == "ok", rec.get("reason")
        assert rec["framework"] == "onnxruntime" and rec["throughput_per_s"] > 0
        assert rec["timing_method"] == "perf_counter"
        assert rec["compile_s"] > 0  # session creation: ORT's graph optimisation
        assert rec["notes"]["top1_agreement_vs_torch_fp32"] >= (0.999 if spec.endswith("fp32") else 0.9)
        if spec.endswith("int8"):
            assert 0 < rec["error_vs_fp32"] < 0.05  # against the onnxruntime:cpu:fp32 twin
            method = "static" if case.name == "mnist_cnn" else "dynamic"
            assert rec["notes"]["quantization"].startswith(f"onnxruntime.quantization.quantize_{method}")
        assert ("latency_s" in rec) == case.latency


def test_builder_skips_what_the_runtime_does_not_offer():
    backend = make_backend("onnxruntime:cpu:bf16")
    backend.setup(1)
    rec = measure_case(backend, specmod.select(["inference"], ["mnist_cnn"], "smoke")[0], OPTS)
    assert rec["status"] == "skipped" and "not bf16" in rec["reason"]
    other = measure_case(backend, specmod.select(["normalization"], None, "smoke")[0], OPTS)
    assert other["status"] == "skipped" and "has no onnxruntime implementation" in other["reason"]


def test_software_names_the_distributions():
    from xpubench.hardware.fingerprint import software_versions

    assert {"onnxruntime", "onnx", "onnxscript"} <= set(make_backend("onnxruntime:cpu:fp32").software)
    sw = software_versions()  # the fingerprint asks every registered backend
    assert sw["onnxruntime"] and sw["onnx"] and sw["onnxscript"]


def test_io_binding_runner_gives_the_plain_outputs(mnist_export):
    """The CUDA path's I/O binding (bound inputs, outputs preallocated by a first run),
    exercised with the CPU as the binding's device."""
    out, feeds, _ = mnist_export
    backend = make_backend("onnxruntime:cpu:fp32")
    backend.setup(1)
    ctx = backend.context()
    sess = ctx.session(out.model)
    plain = ctx.runner(sess, feeds).outputs()[0]
    ctx.bind_io = True
    bound = ctx.runner(sess, feeds)
    assert ctx.notes["session"]["io_binding"] == "inputs and outputs on the device"
    first = bound.run()
    assert first is bound.run()  # the binding: the same preallocated outputs each call
    backend.wait(first)
    np.testing.assert_array_equal(bound.outputs()[0], plain)


def test_static_int8_reduces_the_weight_range_only_where_the_cpu_has_no_vnni():
    from xpubench.backends.onnxruntime.quantize import needs_reduced_range

    assert needs_reduced_range({"avx2": True, "avx512_vnni": False, "avx_vnni": False, "amx_int8": False})
    assert not needs_reduced_range({"avx2": True, "avx512_vnni": True})  # e.g. Zen 4, Ice Lake
    assert not needs_reduced_range({"avx2": True, "avx_vnni": True})  # e.g. Alder Lake
    assert not needs_reduced_range({"amx_int8": True, "avx512_vnni": True})  # Sapphire Rapids
    assert needs_reduced_range({"avx512_vnni": None})  # flags unknown: the safe side

"""Inference suite: the deployed MNIST CNN (dense and 50%-pruned) and the GPT in eval
mode, in fp32 / bf16 / int8 (and fp16 where forced), measured end to end on torch and
JAX; reduced precisions and pruning keep the fp32 predictions on a fixed batch, and
every framework agrees with torch fp32 on the same weights and inputs; the int8
building blocks and the torch int8 paths (torchao, torch.ao fallback)."""

from __future__ import annotations

import numpy as np
import pytest

from xpubench.backends.availability import module_present
from xpubench.backends.base import make_backend
from xpubench.errors import SkipCase
from xpubench.spec import registry as specmod
from xpubench.measure.case import measure_case
from xpubench.options import RunOptions
from xpubench.suites import training as tr
from xpubench.suites.inference import common as cm
from xpubench.suites.inference import mnist as inf

SMOKE = specmod.select(["inference"], ["mnist_cnn"], "smoke")
OPTS = RunOptions(size="smoke", telemetry=False, time_budget_s=0.05)


def ready(backend):
    """One torch thread: a busy 2-core test machine makes OpenMP's spinning threads
    crawl (30 tiny steps took 25 s with 2 threads); JAX keeps its own setting."""
    backend.setup(1 if backend.framework == "torch" else None)
    return backend
SPECS = ("torch:cpu:fp32", "torch:cpu:bf16", "torch:cpu:int8", "jax:cpu:fp32", "jax:cpu:bf16", "jax:cpu:int8")


@pytest.fixture(scope="module")
def records():
    out = {}
    for spec in SPECS:
        backend = ready(make_backend(spec))
        for case in SMOKE:
            out[spec, case.params["variant"], case.latency] = measure_case(backend, case, OPTS)
    return out


def test_workload_declares_variants_precisions_and_latency_cases():
    assert {(c.params["variant"], c.latency) for c in SMOKE} == {
        ("dense", False), ("pruned50", False), ("dense", True), ("pruned50", True)}
    assert set(SMOKE[0].workload.precisions) == {"fp32", "bf16", "fp16", "int8"}
    default = specmod.select(["inference"], ["mnist_cnn"], "default")
    assert {c.params["batch"] for c in default if not c.latency} == {128}
    assert {c.params["batch"] for c in default if c.latency} == {1}
    assert all(c.mode == "inference" and c.unit == "samples" for c in default)
    gpt = specmod.select(["inference"], ["gpt"], "default")
    assert [(c.params["batch"], c.params["seq"], c.latency) for c in gpt] == [(8, 128, False), (1, 128, True)]
    assert all(c.unit == "tokens" and c.work.units == c.params["batch"] * c.params["seq"] for c in gpt)


@pytest.mark.parametrize("latency", [False, True], ids=["batch", "latency"])
@pytest.mark.parametrize("variant", ["dense", "pruned50"])
@pytest.mark.parametrize("spec", SPECS)
def test_every_case_measures_and_agrees_with_fp32(records, spec, variant, latency):
    rec = records[spec, variant, latency]
    assert rec["status"] == "ok", rec.get("reason")
    assert rec["throughput_per_s"] > 0
    notes = rec["notes"]
    assert notes["synthetic_accuracy_fp32"] >= 0.9 or latency  # one image: 0 or 1
    assert notes["top1_agreement_vs_fp32"] >= 0.9 or latency
    assert notes["agreement_predictions"] == rec["params"]["batch"]
    if spec.endswith("fp32"):  # the same weights and inputs as torch fp32
        assert notes["error_vs_torch_fp32"] < 1e-5
        assert notes["top1_agreement_vs_torch_fp32"] == 1.0
    else:
        assert rec["error_vs_fp32"] < 0.05
        assert notes["error_vs_torch_fp32"] < 0.05
    if latency:
        lat = rec["latency_s"]
        assert lat["calls"] == rec["time_s"]["rounds"] and rec["time_s"]["iterations_per_round"] == 1
        assert lat["p50"] <= lat["p90"] <= lat["p99"]
    else:
        assert "latency_s" not in rec
    if variant == "pruned50":
        assert notes["weight_sparsity"] == pytest.approx(0.5, abs=0.001)
        assert notes["top1_agreement_vs_dense_fp32"] >= 0.9 or latency
        assert 0 < notes["error_vs_dense_fp32"] < 0.5
        assert "no speed-up" in notes["pruning"]
    if spec.endswith("int8"):
        assert "int8" in notes["quantization"]
        assert "convolutions stay fp32" in notes["quantization"]
    if spec == "torch:cpu:int8" and module_present("torchao"):  # scripts/test.sh installs it
        assert notes["quantization"].startswith("torchao.quantization.quantize_")


def test_gpt_runs_on_torch_and_jax_with_the_same_weights():
    gpt = specmod.select(["inference"], ["gpt"], "smoke")
    for spec in ("torch:cpu:fp32", "jax:cpu:fp32", "torch:cpu:int8", "jax:cpu:int8"):
        backend = ready(make_backend(spec))
        for case in gpt:
            rec = measure_case(backend, case, OPTS)
            if spec == "jax:cpu:int8":
                assert rec["status"] == "skipped" and "no JAX int8 path" in rec["reason"]
                continue
            assert rec["status"] == "ok", rec.get("reason")
            notes = rec["notes"]
            assert notes["agreement_predictions"] == case.params["batch"] * case.params["seq"]
            assert notes["logits"] == "every position of the prompt"
            if spec.endswith("fp32"):
                assert notes["error_vs_torch_fp32"] < 1e-5
            else:
                assert notes["error_vs_torch_fp32"] < 0.05 and notes["top1_agreement_vs_torch_fp32"] >= 0.9


def test_fp16_when_forced(monkeypatch):
    """On CPUs without native fp16 the torch case is skipped unless forced; forced, it agrees."""
    monkeypatch.setenv(tr.FORCE_CPU_FP16_ENV, "1")
    backend = ready(make_backend("torch:cpu:fp16"))
    rec = measure_case(backend, SMOKE[0], OPTS)
    assert rec["status"] == "ok", rec.get("reason")
    assert rec["notes"]["top1_agreement_vs_fp32"] >= 0.9
    assert rec["error_vs_fp32"] < 0.05


def test_int8_dense_matches_float():
    import jax
    import jax.numpy as jnp

    x = jax.random.uniform(jax.random.PRNGKey(0), (16, 64))
    w = jax.random.normal(jax.random.PRNGKey(1), (64, 32)) * 0.1
    b = jnp.linspace(-1, 1, 32)
    q, scale = inf.quantize_per_channel(w)
    assert q.dtype == jnp.int8 and scale.shape == (32,)
    got = np.asarray(inf.int8_dense(x, q, scale, b))
    want = np.asarray(x @ w + b)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.02
    hlo = jax.jit(inf.int8_dense).lower(x, q, scale, b).as_text()
    assert "xi8>" in hlo and "xi32>" in hlo  # a real int8 x int8 -> int32 dot


def test_torch_weights_port_to_flax_exactly():
    """The same function in both frameworks: flax on the ported torch weights gives torch's logits."""
    import jax.numpy as jnp
    import torch
    from flax import nnx

    from xpubench.suites.models import cnn, port

    model = inf.torch_model(pruned=False)
    x, _ = inf.synthetic_digits(4, "port_check")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    flax_model = cnn.flax_mnist_cnn(dtype=jnp.float32, param_dtype=jnp.float32, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(flax_model, nnx.Param)
    nnx.replace_by_pure_dict(params, port.flax_mnist_cnn_params(inf.numpy_state(model)))
    got = np.asarray(nnx.merge(graphdef, params)(jnp.transpose(x, (0, 2, 3, 1))))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_inputs_are_the_same_numbers_every_time():
    a, ya = inf.synthetic_digits(16, "eval", seed=0)
    b, yb = inf.synthetic_digits(16, "eval", seed=0)
    c, _ = inf.synthetic_digits(16, "eval", seed=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert a.dtype == np.float32 and a.shape == (16, 1, 28, 28) and 0 <= a.min() and a.max() <= 1
    assert not np.array_equal(a, c)


def test_torch_int8_records_its_path_and_falls_back_to_torch_ao(monkeypatch):
    import sys

    import torch

    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)).eval()
    x = torch.randn(16, 64)
    with torch.no_grad():
        want = model(x)
    pytest.importorskip("torchao")
    kept, how = cm.torch_int8(copy_of(model), "cpu")
    assert how.startswith("torchao.quantization.quantize_(Int8DynamicActivationInt8WeightConfig())")
    monkeypatch.setitem(sys.modules, "torchao", None)  # torchao not importable
    legacy, how_legacy = cm.torch_int8(copy_of(model), "cpu")
    assert how_legacy.startswith("torch.ao.quantization.quantize_dynamic (fallback: torchao unavailable")
    with torch.no_grad():
        for q in (kept, legacy):
            got = q(x)
            assert float((got - want).norm() / want.norm()) < 0.05
    with pytest.raises(SkipCase, match="CPU only"):
        cm.torch_int8(copy_of(model), "cuda")


def copy_of(model):
    import copy

    return copy.deepcopy(model)

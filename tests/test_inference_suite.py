"""Inference suite: the deployed MNIST CNN, dense and 50%-pruned, in fp32 / bf16 / int8
(and fp16 where forced), measured end to end; reduced precisions and pruning keep
the fp32 predictions on a fixed batch; the int8 and pruning building blocks."""

from __future__ import annotations

import numpy as np
import pytest

from xpubench.backends.base import make_backend
from xpubench.spec import registry as specmod
from xpubench.measure.case import measure_case
from xpubench.options import RunOptions
from xpubench.suites import inference as inf
from xpubench.suites import training as tr

SMOKE = specmod.select(["inference"], None, "smoke")
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
            out[spec, case.params["variant"]] = measure_case(backend, case, OPTS)
    return out


def test_workload_declares_variants_and_precisions():
    assert {c.params["variant"] for c in SMOKE} == {"dense", "pruned50"}
    assert set(SMOKE[0].workload.precisions) == {"fp32", "bf16", "fp16", "int8"}
    default = specmod.select(["inference"], None, "default")
    assert {c.params["batch"] for c in default} == {128}
    assert all(c.mode == "inference" and c.unit == "samples" for c in default)


@pytest.mark.parametrize("variant", ["dense", "pruned50"])
@pytest.mark.parametrize("spec", SPECS)
def test_every_case_measures_and_agrees_with_fp32(records, spec, variant):
    rec = records[spec, variant]
    assert rec["status"] == "ok", rec.get("reason")
    assert rec["throughput_per_s"] > 0
    notes = rec["notes"]
    assert notes["synthetic_accuracy_fp32"] >= 0.9  # the trained network is a real classifier
    assert notes["top1_agreement_vs_fp32"] >= 0.9
    if not spec.endswith("fp32"):
        assert rec["error_vs_fp32"] < 0.05
    if variant == "pruned50":
        assert notes["weight_sparsity"] == pytest.approx(0.5, abs=0.001)
        assert notes["top1_agreement_vs_dense_fp32"] >= 0.9
        assert 0 < notes["error_vs_dense_fp32"] < 0.5
        assert "no speed-up" in notes["pruning"]
    if spec.endswith("int8"):
        assert "int8" in notes["quantization"]
        assert "convolutions stay fp32" in notes["quantization"]


def test_fp16_when_forced(monkeypatch):
    """On CPUs without native fp16 the torch case is skipped unless forced; forced, it agrees."""
    monkeypatch.setenv(tr.FORCE_CPU_FP16_ENV, "1")
    backend = ready(make_backend("torch:cpu:fp16"))
    rec = measure_case(backend, SMOKE[0], OPTS)
    assert rec["status"] == "ok"
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


def test_numpy_pruning_rule_matches_torch():
    import torch
    import torch.nn.utils.prune as prune

    from xpubench.suites.models import cnn

    torch.manual_seed(0)
    model = cnn.torch_mnist_cnn()
    before = [m.weight.detach().numpy().copy() for m in (model.conv1, model.conv2, model.fc1, model.fc2)]
    targets = [(m, "weight") for m in (model.conv1, model.conv2, model.fc1, model.fc2)]
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=inf.PRUNE_AMOUNT)
    threshold = inf.prune_mask_threshold(before)
    pure = {name: {"kernel": w} for name, w in zip(("conv1", "conv2", "fc1", "fc2"), before)}
    ours = inf.jax_pruned(pure)
    for (m, _), name in zip(targets, ("conv1", "conv2", "fc1", "fc2")):
        theirs = m.weight.detach().numpy()
        np.testing.assert_array_equal(theirs == 0, ours[name]["kernel"] == 0)
        np.testing.assert_array_equal(theirs == 0, np.abs(pure[name]["kernel"]) < threshold)

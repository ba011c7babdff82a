"""Training-step suite: same architectures in torch and JAX (parameter counts), loss
falls on a fixed batch, counted FLOPs agree across frameworks and with the analytic
formula, every smoke case measures end to end, and divergence is detected."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from xpubench.backends.base import make_backend
from xpubench.spec import registry as specmod
from xpubench.spec.registry import Case
from xpubench.measure.case import measure_case
from xpubench.options import RunOptions
from xpubench.suites import flops as fl
from xpubench.suites import training as tr

SMOKE = specmod.select(["training"], None, "smoke")
NAMES = [c.name for c in SMOKE]
OPTS = RunOptions(size="smoke", telemetry=False, time_budget_s=0.05)


def ready(backend):
    """One torch thread: a busy 2-core test machine makes OpenMP's spinning threads
    crawl (30 tiny steps took 25 s with 2 threads); JAX keeps its own setting."""
    backend.setup(1 if backend.framework == "torch" else None)
    return backend


@pytest.fixture(scope="module")
def backends():
    out = {}
    for spec in ("torch:cpu:fp32", "torch:cpu:bf16", "jax:cpu:fp32"):
        b = ready(make_backend(spec))
        out[spec] = b
    return out


@pytest.fixture(scope="module")
def records(backends):
    """One measured record per (backend, smoke case), shared by the tests below."""
    out = {}
    for spec, b in backends.items():
        for case in SMOKE:
            out[spec, case.name] = measure_case(b, case, OPTS)
    return out


def case_named(name: str, size: str = "smoke") -> Case:
    return next(c for c in specmod.select(["training"], [name], size))


# ------------------------------------------------------------------ parameter counts
def torch_count(name: str, params) -> int:
    import torch

    from xpubench.suites.models import torch_param_count

    with torch.device("meta"):  # no storage: GPT-2 small costs nothing
        return torch_param_count(tr.torch_recipe(name, None, params).model())


def jax_count(name: str, params) -> int:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from xpubench.suites.models import jax_param_count

    ctx = SimpleNamespace(compute_dtype=jnp.float32, param_dtype=jnp.float32, seed=0,
                          precision="fp32", device=jax.devices("cpu")[0])
    model = nnx.eval_shape(tr.jax_recipe(name, ctx, params).model)  # abstract: shapes only
    return jax_param_count(model)


@pytest.mark.parametrize("size", ["smoke", "default", "large"])
@pytest.mark.parametrize("name", NAMES)
def test_torch_and_jax_parameter_counts_match(name, size):
    params = case_named(name, size).params
    assert torch_count(name, params) == jax_count(name, params) > 0


@pytest.mark.parametrize("name,size,expected", [
    ("mnist_cnn", "default", 1_199_882),  # Keras mnist_cnn
    ("gpt", "large", 124_439_808),  # GPT-2 small
    ("resnet18", "large", 11_689_512),  # torchvision resnet18 (224 px, 1000 classes)
])
def test_known_parameter_counts(name, size, expected):
    params = case_named(name, size).params
    assert torch_count(name, params) == expected
    assert jax_count(name, params) == expected


# ------------------------------------------------------------------ learning
def loss_value(out) -> float:
    out = out[0] if isinstance(out, tuple) else out  # JAX run() returns (loss, params)
    return float(np.asarray(out.detach() if hasattr(out, "detach") else out))


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("name", NAMES)
def test_loss_falls_on_a_fixed_batch(backends, framework, name):
    backend = backends[f"{framework}:cpu:fp32"]
    backend.activate()
    step = backend.build(case_named(name))
    losses = [loss_value(step.run()) for _ in range(30)]
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-5:]) < 0.95 * np.mean(losses[:3]), losses
    assert step.finite()


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_check_is_deterministic(backends, framework):
    """check() restores the initial state and replays the same dropout masks."""
    backend = backends[f"{framework}:cpu:fp32"]
    backend.activate()
    step = backend.build(case_named("mnist_cnn"))
    first = step.check()
    step.run()  # the timed loop moves the weights; check() must not care
    second = step.check()
    assert set(first) == {"loss", "grad_first", "grad_last"}
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])


# ------------------------------------------------------------------ FLOPs
@pytest.mark.parametrize("name", NAMES)
def test_counted_flops_agree_across_frameworks_and_with_formula(records, name):
    t = records["torch:cpu:fp32", name]["notes"]
    j = records["jax:cpu:fp32", name]["notes"]
    assert t["flop_counter"].startswith(fl.TORCH_COUNTER)
    assert j["flop_counter"] == fl.JAX_COUNTER
    assert t["flops_counted"] > 0 and j["flops_counted"] > 0
    # Both count matmul/conv multiply-adds forward + backward: they agree closely.
    assert j["flops_counted"] == pytest.approx(t["flops_counted"], rel=0.02)
    analytic = records["torch:cpu:fp32", name]["flops_per_step"]
    # The analytic 3x forward also counts the first layer's input gradient, which no
    # framework computes: counted figures sit a little below it.
    assert t["flops_counted"] == pytest.approx(analytic, rel=0.05)
    assert t["flops_counted"] <= analytic * 1.001


def test_jaxpr_counter_multiplies_scan_bodies():
    import jax
    import jax.numpy as jnp

    def f(w, xs):
        def body(h, x):
            h = jnp.tanh(x @ w + h @ w)
            return h, h

        return jax.lax.scan(body, jnp.zeros((2, 8)), xs)[1].sum()

    jaxpr = jax.make_jaxpr(f)(jnp.ones((8, 8)), jnp.ones((5, 2, 8)))
    flops, saw_while = fl.jaxpr_flops(jaxpr)
    assert flops == 5 * 2 * (2 * 2 * 8 * 8)  # 5 steps x 2 matmuls of (2x8)@(8x8)
    assert not saw_while


def test_conv_flops_match_torch_convention_for_valid_and_strided_convs():
    """Forward + both gradients of a conv count 3x the forward, as FlopCounterMode does."""
    import jax
    import jax.numpy as jnp
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    for stride, pad in ((1, 0), (2, 1), (1, 1)):
        x = jnp.ones((2, 12, 12, 4))
        w = jnp.ones((3, 3, 4, 8))

        def loss(x, w):
            y = jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad)] * 2,
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return y.sum()

        counted, _ = fl.jaxpr_flops(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(x, w))
        tx = torch.ones(2, 4, 12, 12, requires_grad=True)
        tw = torch.ones(8, 4, 3, 3, requires_grad=True)
        with FlopCounterMode(display=False) as fc:
            torch.nn.functional.conv2d(tx, tw, stride=stride, padding=pad).sum().backward()
        assert counted == fc.get_total_flops(), (stride, pad)


# ------------------------------------------------------------------ end to end
@pytest.mark.parametrize("spec", ["torch:cpu:fp32", "torch:cpu:bf16", "jax:cpu:fp32"])
@pytest.mark.parametrize("name", NAMES)
def test_every_smoke_case_measures(records, spec, name):
    rec = records[spec, name]
    if spec == "torch:cpu:bf16" and name in ("lstm_lm", "gru_lm") and tr._cpu_bf16_rnn_error(name.split("_")[0]):
        # this CPU's oneDNN has no bf16 RNN (e.g. Zen 3): skipped, saying so
        assert rec["status"] == "skipped" and rec["reason"].startswith("oneDNN offers no bf16")
        return
    assert rec["status"] == "ok", rec.get("reason")
    assert rec["time_s"]["median"] > 0
    assert rec["throughput_per_s"] > 0
    assert rec["notes"]["flops_counted"] > 0
    assert rec["notes"]["parameters"] > 0
    if spec.endswith("bf16"):  # compared with an fp32 twin built from the same seeds
        assert rec["error_vs_fp32"] is not None and math.isfinite(rec["error_vs_fp32"])
        assert rec["error_vs_fp32_detail"]["loss"] < 0.05
    if spec.startswith("jax"):
        assert rec["compile_s"] > 0
    if spec.startswith("torch"):
        assert rec["notes"]["torch_compile"] == "off"


def overflowing_mnist() -> Case:
    """MNIST whose images overflow fp16 (1e6 > 65504): the loss turns NaN/Inf in fp16."""
    case = case_named("mnist_cnn")
    return Case(case.workload, case.size, case.mode, {**case.params, "input_scale": 1e6})


@pytest.mark.parametrize("spec", ["torch:cpu:fp16", "jax:cpu:fp16"])
def test_fp16_overflow_is_recorded_diverged(monkeypatch, spec):
    monkeypatch.setenv(tr.FORCE_CPU_FP16_ENV, "1")  # this CPU emulates fp16: run it anyway
    backend = ready(make_backend(spec))
    rec = measure_case(backend, overflowing_mnist(), OPTS)
    assert rec["status"] == "diverged"
    assert "NaN or Inf" in rec["reason"]


def test_same_overflowing_input_is_finite_in_fp32():
    backend = ready(make_backend("torch:cpu:fp32"))
    backend.activate()
    step = backend.build(overflowing_mnist())
    step.run()
    assert step.finite()  # the divergence above is fp16's range, not the input


def test_fp16_skip_rule_on_cpus_without_native_fp16(monkeypatch):
    import torch

    ctx = SimpleNamespace(precision="fp16", device=torch.device("cpu"))
    monkeypatch.delenv(tr.FORCE_CPU_FP16_ENV, raising=False)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_fp16": False, "amx_fp16": False})
    assert "emulated" in tr.torch_cpu_fp16_skip(ctx)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_fp16": True})
    assert tr.torch_cpu_fp16_skip(ctx) is None
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {})
    monkeypatch.setenv(tr.FORCE_CPU_FP16_ENV, "1")
    assert tr.torch_cpu_fp16_skip(ctx) is None
    assert tr.torch_cpu_fp16_skip(SimpleNamespace(precision="bf16", device=torch.device("cpu"))) is None


@pytest.mark.parametrize("mode", [None, "default", "max-autotune"])
def test_torch_compile_mode_comes_from_the_contexts_options(mode):
    assert tr.torch_compile_mode(SimpleNamespace(options=RunOptions(torch_compile=mode))) == mode
    assert tr.torch_compile_mode(SimpleNamespace(options=None)) is None  # built outside a run: eager


@pytest.mark.slow
def test_torch_compile_time_is_kept_apart():
    """torch_compile="default": inductor compiles in the builder; compile_s holds it."""
    backend = ready(make_backend("torch:cpu:fp32"))
    opts = RunOptions(size="smoke", telemetry=False, time_budget_s=0.05, torch_compile="default")
    rec = measure_case(backend, case_named("gpt"), opts)
    assert rec["status"] == "ok", rec.get("reason")
    assert rec["notes"]["torch_compile"].startswith("inductor (mode=default")
    assert rec["compile_s"] > 10 * rec["time_s"]["median"]  # compiling is not in the step time


def test_a_bf16_rnn_that_onednn_does_not_offer_is_skipped_with_the_reason(monkeypatch, backends):
    """The probe's answer decides (a fake here): the case is skipped saying why, and the
    question is asked only of a bf16 RNN on the CPU."""
    import torch

    monkeypatch.setattr(tr, "_cpu_bf16_rnn_error", lambda cell: "could not create a primitive descriptor")
    case = next(c for c in SMOKE if c.name == "gru_lm")
    rec = measure_case(backends["torch:cpu:bf16"], case, OPTS)
    assert rec["status"] == "skipped"
    assert rec["reason"] == "oneDNN offers no bf16 GRU on this CPU (could not create a primitive descriptor)"
    fp32 = SimpleNamespace(precision="fp32", device=torch.device("cpu"))
    assert tr.torch_cpu_bf16_rnn_skip(fp32, "gru") is None
    monkeypatch.setattr(tr, "_cpu_bf16_rnn_error", lambda cell: None)  # offered: it runs
    assert tr.torch_cpu_bf16_rnn_skip(SimpleNamespace(precision="bf16", device=torch.device("cpu")), "gru") is None

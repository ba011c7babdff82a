"""Optimizer suite: torch.optim and optax compute the same update; every smoke case
runs on both CPU backends; the parameter sets have the real models' sizes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xpubench.backends.base import make_backend
from xpubench.spec import registry as specmod
from xpubench.results.reader import load_runs
from xpubench.suites import optimizers as opt
from xpubench.suites import param_sets

ROOT = Path(__file__).resolve().parents[1]
SMOKE = specmod.select(["optimizers"], None, "smoke")
PAIRED = [c for c in SMOKE if c.name == "resnet"]  # every optimizer, on both frameworks


@pytest.fixture(scope="module")
def backends():
    out = {}
    for spec in ("torch:cpu:fp32", "jax:cpu:fp32"):
        b = make_backend(spec)
        b.setup()
        b.activate()
        out[spec.split(":")[0]] = b
    return out


def draws(shapes, seed=0):
    """Identical initial parameters and gradients for both frameworks (overrides)."""
    rng = np.random.default_rng(seed)
    ov = {}
    for n, s in shapes:
        ov[f"param:{n}"] = (rng.standard_normal(s) * opt.PARAM_SCALE).astype(np.float32)
        ov[f"grad:{n}"] = (rng.standard_normal(s) * opt.GRAD_SCALE).astype(np.float32)
    return ov


def flat(ov, shapes, kind="param"):
    return np.concatenate([ov[f"{kind}:{n}"].ravel() for n, _ in shapes]).astype(np.float64)


def assert_same_update(new, ref, p0, rel_tol=1e-4):
    """Same new parameters to a few fp32 ulps, and the step itself agrees in relative terms."""
    np.testing.assert_allclose(new, ref, rtol=1e-6, atol=1e-7)
    d_ref = ref - p0
    assert np.linalg.norm(d_ref) > 1e-3 * np.linalg.norm(p0)  # the step moved something
    assert np.linalg.norm((new - p0) - d_ref) / np.linalg.norm(d_ref) < rel_tol


# --------------------------------------------------------------------------- parity
@pytest.mark.parametrize("case", PAIRED, ids=lambda c: c.params["opt"])
def test_one_step_torch_equals_optax(backends, case):
    shapes = param_sets.shapes(case.params)
    ov = draws(shapes)
    out = {fw: b.build(case, overrides=ov).check()["params"] for fw, b in backends.items()}
    assert_same_update(out["jax"], out["torch"], flat(ov, shapes))


def test_overrides_are_not_written_through(backends):
    case = PAIRED[0]
    shapes = param_sets.shapes(case.params)
    ov = draws(shapes)
    before = {k: v.copy() for k, v in ov.items()}
    step = backends["torch"].build(case, overrides=ov)
    step.run()
    step.check()
    assert all(np.array_equal(ov[k], before[k]) for k in ov)


# Hyper-parameters that make every term visible over several steps (large weight
# decay, eps that matters), so a wrongly mapped definition cannot hide.
STRONG = {
    "sgd": dict(lr=0.1),
    "sgd_momentum": dict(lr=0.1, momentum=0.9, weight_decay=0.1),
    "sgd_nesterov": dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    "adam": dict(lr=1e-2, betas=(0.8, 0.9), eps=1e-3),
    "adamw": dict(lr=1e-2, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.5),
    "adam_l2": dict(lr=1e-2, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.5),
    "adadelta": dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1),
    "rmsprop": dict(lr=1e-2, alpha=0.9, eps=1e-3),
    "adagrad": dict(lr=0.1, initial_accumulator_value=0.1, eps=1e-10),
}
SHAPES = [("w", (16, 8)), ("b", (8,)), ("v", (33,))]
STEPS = 5


def torch_steps(name, impl, hyper, p0, grads):
    import torch

    params = [torch.tensor(a, requires_grad=True) for a in p0]
    o = opt.torch_optimizer(torch, name, params, impl, hyper)
    for gs in grads:
        for t, g in zip(params, gs):
            t.grad = torch.tensor(g)
        o.step()
    return np.concatenate([t.detach().numpy().ravel() for t in params]).astype(np.float64)


def optax_steps(tx, p0, grads):
    import jax
    import jax.numpy as jnp

    params = [jnp.asarray(a) for a in p0]
    state = tx.init(params)
    update = jax.jit(opt.jax_update_fn(tx))
    for gs in grads:
        params, state = update(params, state, [jnp.asarray(g) for g in gs])
    return np.concatenate([np.asarray(a).ravel() for a in params]).astype(np.float64)


def random_run(seed=1):
    rng = np.random.default_rng(seed)
    p0 = [(rng.standard_normal(s) * 0.5).astype(np.float32) for _, s in SHAPES]
    grads = [[(rng.standard_normal(s) * 0.1).astype(np.float32) for _, s in SHAPES] for _ in range(STEPS)]
    return p0, grads


OFFERED = [(o, i) for o in opt.OPTIMIZERS for i in opt.TORCH_IMPLS if i != "fused" or o in opt.FUSED]


@pytest.mark.parametrize("name,impl", OFFERED, ids=[f"{o}-{i}" for o, i in OFFERED])
def test_several_steps_every_torch_impl_equals_optax(name, impl):
    p0, grads = random_run()
    ref = optax_steps(opt.optax_transform(name, STRONG[name]), p0, grads)
    got = torch_steps(name, impl, STRONG[name], p0, grads)
    p0f = np.concatenate([a.ravel() for a in p0]).astype(np.float64)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(ref - p0f) > 1e-2 * np.linalg.norm(p0f)


def test_library_defaults_really_differ():
    """The mapping matters: optax's own defaults give other updates than torch's."""
    import optax

    p0, grads = random_run()
    torch_ref = {n: torch_steps(n, "foreach", STRONG[n], p0, grads) for n in ("rmsprop", "adamw", "adagrad")}
    h = STRONG
    naive = {
        "rmsprop": optax.rmsprop(h["rmsprop"]["lr"], decay=0.9, eps=h["rmsprop"]["eps"]),  # eps in the sqrt
        "adamw": optax.adamw(h["adamw"]["lr"], b1=0.8, b2=0.9, eps=1e-3),  # optax's weight decay 1e-4
        "adagrad": optax.adagrad(h["adagrad"]["lr"], initial_accumulator_value=0.0, eps=1e-10),
    }
    for n, tx in naive.items():
        got = optax_steps(tx, p0, grads)
        assert np.max(np.abs(got - torch_ref[n])) > 1e-4, n


# ------------------------------------------------------------------- cases and sizes
def test_smoke_covers_every_optimizer_and_implementation():
    torch_impls = {(c.params["opt"], c.params.get("impl", "foreach")) for c in SMOKE}
    assert torch_impls == set(OFFERED)
    assert {c.params["opt"] for c in SMOKE if c.workload.builders.get("jax")} == set(opt.OPTIMIZERS)
    assert all(c.workload.precisions == ("fp32",) for c in SMOKE)


def test_default_size_runs_a_selection_of_torch_implementations():
    default = specmod.select(["optimizers"], None, "default")
    impls = {(c.params["opt"], c.params["impl"]) for c in default if c.name == "resnet_torch_impls"}
    assert impls == {(o, i) for o in opt.DEFAULT_TORCH_IMPL_OPTS for i in ("loop", "fused")}
    assert {c.params["opt"] for c in default if c.name == "resnet"} == set(opt.OPTIMIZERS)
    large = specmod.select(["optimizers"], None, "large")
    assert len([c for c in large if c.name == "resnet_torch_impls"]) == \
        len([c for c in SMOKE if c.name == "resnet_torch_impls"])
    # A worker finds each case again from its key and params (what the runner sends).
    for c in default + SMOKE:
        assert specmod.find(c.key, dict(c.params)).case_id == c.case_id


@pytest.mark.parametrize("case", SMOKE, ids=lambda c: c.case_id)
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_every_smoke_case_builds_and_runs(backends, framework, case):
    b = backends[framework]
    if b.skip_reason(case):
        assert framework == "jax" and case.name == "resnet_torch_impls"
        assert "no jax implementation" in b.skip_reason(case)
        return
    step = b.build(case)
    assert b.time_block(step, 3) > 0
    out = step.check()["params"]
    assert out.shape == (case.work.units,) and np.all(np.isfinite(out))
    if framework == "torch":
        assert step.notes["impl"] == case.params.get("impl", "foreach")


def test_reduced_precisions_are_skipped_with_a_reason():
    case = PAIRED[0]
    for spec in ("torch:cpu:bf16", "jax:cpu:bf16", "torch:cpu:fp16"):
        reason = make_backend(spec).skip_reason(case)
        assert reason and "fp32" in reason


def test_parameter_sets_have_the_real_models_sizes():
    # torchvision resnet18 / resnet50 and GPT-2 small (tied LM head), counted from their layouts.
    assert param_sets.count(param_sets.resnet_shapes("resnet18")) == 11_689_512
    assert len(param_sets.resnet_shapes("resnet18")) == 62
    assert param_sets.count(param_sets.resnet_shapes("resnet50")) == 25_557_032
    assert param_sets.count(param_sets.gpt_shapes(50257, 1024, 768, 12)) == 124_439_808
    default = {c.name: c.work.units for c in specmod.select(["optimizers"], None, "default")}
    assert default["resnet"] == 11_689_512
    assert 10e6 <= default["gpt"] <= 30e6
    assert default["flat"] == 1 << 24
    large = {c.name: c.work.units for c in specmod.select(["optimizers"], None, "large")}
    assert large["gpt"] == 124_439_808 and large["resnet"] == 25_557_032
    assert all(c.work.units < 50_000 for c in SMOKE)


def test_work_counts_bytes_from_the_state():
    for c in specmod.select(["optimizers"], None, "default"):
        per = c.work.bytes / c.work.units
        assert per == {"sgd": 12, "sgd_momentum": 20, "sgd_nesterov": 20, "adam": 28, "adamw": 28,
                       "adam_l2": 28, "adadelta": 28, "rmsprop": 20, "adagrad": 20}[c.params["opt"]]
        assert c.work.flops > c.work.units


# ------------------------------------------------------------------------------ CLI
@pytest.mark.slow
def test_cli_smoke_run_is_ok_or_skipped(tmp_path):
    exe = Path(sys.executable).with_name("xpubench")
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "xpubench"]),
           "run", "--size", "smoke", "--suite", "optimizers", "-b", "torch:cpu:fp32", "-b", "jax:cpu:fp32",
           "--no-telemetry", "--time-budget", "0.05", "--out", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = [r.data for r in load_runs([tmp_path]).runs]
    ms = run["measurements"]
    assert len(ms) == 2 * len(SMOKE)
    bad = [(m["backend"], m["case"], m["status"], m["reason"]) for m in ms if m["status"] not in ("ok", "skipped")]
    assert not bad
    skipped = {(m["backend"], m["name"]) for m in ms if m["status"] == "skipped"}
    assert skipped == {("jax:cpu:fp32", "resnet_torch_impls")}
    ok = [m for m in ms if m["status"] == "ok"]
    assert all(m["throughput_per_s"] > 0 and m["bytes_per_step"] > 0 for m in ok)
    assert {m["notes"]["impl"] for m in ok} == {"loop", "foreach", "fused", "optax+jit"}

"""Each normalization case (torch and JAX) against a float64 reference written here,
and torch-vs-JAX parity on identical inputs and weights."""

import numpy as np
import pytest

from xpubench.backends.base import make_backend
from xpubench.spec import registry as specmod
from tests.norm_reference import directional_grad_check, has_bias, make_inputs, reference_forward

CASES = specmod.select(["normalization"], None, "smoke")


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def backends():
    out = {}
    for spec in ("torch:cpu:fp32", "jax:cpu:fp32"):
        b = make_backend(spec)
        b.setup()
        out[spec.split(":")[0]] = b
    return out


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.name}:{c.mode}")
def test_matches_float64_reference(backends, framework, case):
    backend = backends[framework]
    backend.activate()
    inp = make_inputs(case.name, case.params)
    out = backend.build(case, overrides=inp).check()
    train = case.mode == "forward_backward"
    ref = reference_forward(case.name, case.params, inp["x"], inp["weight"],
                            inp["bias"] if has_bias(case.name) else None,
                            inp["running_mean"], inp["running_var"], train)
    assert out["y"].shape == ref.shape
    assert rel(out["y"], ref) < 1e-5
    if train:
        (gx, fx), (gw, fw) = directional_grad_check(case.name, case.params, inp, out["dx"], out["dweight"])
        assert gx == pytest.approx(fx, rel=1e-3, abs=1e-3)
        assert gw == pytest.approx(fw, rel=1e-3, abs=1e-3)
        if has_bias(case.name):
            np.testing.assert_allclose(out["dbias"], inp["dy"].sum(axis=tuple(
                a for a in range(inp["dy"].ndim) if a != (1 if inp["dy"].ndim == 4 or case.name.startswith("batchnorm") else inp["dy"].ndim - 1))),
                rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.name}:{c.mode}")
def test_torch_and_jax_agree(backends, case):
    inp = make_inputs(case.name, case.params, seed=7)
    outs = {}
    for fw, b in backends.items():
        b.activate()
        outs[fw] = b.build(case, overrides=inp).check()
    assert outs["torch"].keys() == outs["jax"].keys()
    for k in outs["torch"]:
        assert rel(outs["jax"][k], outs["torch"][k]) < 1e-4, k


@pytest.mark.parametrize("name", sorted({c.name for c in CASES}))
def test_parameter_counts_equal(name):
    import torch  # noqa: F401
    from flax import nnx

    from xpubench.suites.normalization import _flax_module, _torch_module

    case = next(c for c in CASES if c.name == name)
    tm = _torch_module(name, case.params)
    n_torch = sum(p.numel() for p in tm.parameters())
    jb = make_backend("jax:cpu:fp32")
    jb.setup()
    fm = _flax_module(jb.context(), name, case.params, train=True)
    n_jax = sum(v.size for v in __import__("jax").tree.leaves(nnx.state(fm, nnx.Param)))
    assert n_torch == n_jax > 0

"""Dropout keeps ~(1-p) of elements and scales them by 1/(1-p), in both frameworks;
parity between torch and JAX is statistical (their RNGs differ)."""

import numpy as np
import pytest

from xpubench.backends.base import make_backend
from xpubench.spec import registry as specmod

CASES = specmod.select(["dropout"], None, "smoke")


@pytest.fixture(scope="module", params=["torch:cpu:fp32", "jax:cpu:fp32"])
def backend(request):
    b = make_backend(request.param)
    b.setup()
    b.activate()
    return b


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"p{c.params['p']}:{c.mode}")
def test_keep_rate_and_scaling(backend, case):
    p = case.params["p"]
    x = np.full((case.params["b"], case.params["t"], case.params["d"]), 1.5)
    dy = np.full_like(x, 2.0)
    out = backend.build(case, overrides={"x": x, "dy": dy}).check()
    y = out["y"]
    kept = y != 0
    n = y.size
    # binomial: 5 standard deviations around the expected keep rate
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[kept], 1.5 / (1 - p), rtol=1e-6)
    if case.mode == "forward_backward":
        # the gradient flows through the same mask with the same scale
        np.testing.assert_array_equal(out["dx"] != 0, kept)
        np.testing.assert_allclose(out["dx"][kept], 2.0 / (1 - p), rtol=1e-6)


def test_masks_change_between_steps_but_check_is_reproducible(backend):
    case = CASES[0]
    step = backend.build(case)
    a, b = step.check()["y"], step.check()["y"]
    np.testing.assert_array_equal(a, b)  # check() pins the mask for fp32-vs-bf16 comparisons
    r1 = np.asarray(backend.context().numpy(step.run()) if backend.framework == "jax" else step.run().float().numpy())
    r2 = np.asarray(backend.context().numpy(step.run()) if backend.framework == "jax" else step.run().float().numpy())
    assert (r1 != r2).any()  # a real training step draws a new mask every call

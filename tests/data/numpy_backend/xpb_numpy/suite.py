"""A workload only the numpy backend implements: y = a*x + y over n fp32 elements."""

from __future__ import annotations

from xpubench.backends.base import Step
from xpubench.spec.registry import Work, workload

saxpy = workload(
    suite="numpy_only", name="saxpy", modes=("forward",), unit="elements",
    sizes={"smoke": {"n": 4096}, "default": {"n": 1 << 20}},
    work=lambda p, mode: Work(units=p["n"], flops=2.0 * p["n"], bytes=12.0 * p["n"]),
    precisions=("fp32",),
)


@saxpy.builder("numpy")
def _numpy(ctx, params, mode):
    import numpy as np

    x = ctx.randn("x", (params["n"],))
    y = ctx.randn("y", (params["n"],))
    out = np.empty_like(y)

    def run():
        return np.add(np.multiply(x, 2.0), y, out=out)

    return Step(run=run, check=lambda: {"out": ctx.numpy(run())})

"""Dropout at p = 0.1 and p = 0.5 on (batch, tokens, d_model) activations.

Both modes run in training mode (dropout in eval mode is the identity):
``forward`` draws a mask and scales by 1/(1-p); ``forward_backward`` adds the
backward pass through the saved mask. FLOPs are element-wise (``flops_kind="vector"``).
Ideal traffic per element: forward reads x, writes y (2 elements in the compute
dtype: 4 B each in fp32, 2 in bf16/fp16) and a 1-byte mask; backward reads dy and
the mask and writes dx (2 more elements, 1 more byte), over a working set of x, y,
dy, dx and the mask.
"""

from __future__ import annotations

from typing import Any, Mapping

from xpubench.spec.registry import VECTOR, Work, workload
from xpubench.suites.common import numel


def _work(p: Mapping[str, Any], mode: str) -> Work:
    e = numel(p["b"], p["t"], p["d"])
    if mode == "forward":
        return Work(e, 2.0 * e, float(e), flops_kind=VECTOR, elements=2.0 * e)
    return Work(e, 3.0 * e, 2.0 * e, flops_kind=VECTOR, elements=4.0 * e,
                working_set_bytes=float(e), working_set_elements=4.0 * e)


dropout = workload(
    suite="dropout", name="dropout", modes=("forward", "forward_backward"), unit="elements",
    description="Dropout in training mode on transformer activations",
    variants=({"p": 0.1}, {"p": 0.5}),
    sizes={"smoke": dict(b=2, t=16, d=64), "default": dict(b=8, t=512, d=768),
           "large": dict(b=16, t=2048, d=4096)},
    work=_work,
)


@dropout.builder("torch")
def torch_dropout(ctx, p: Mapping[str, Any], mode: str):
    import torch

    from xpubench.backends.base import Step

    shape = (p["b"], p["t"], p["d"])
    drop = torch.nn.Dropout(p["p"])
    drop.train(True)
    train = mode == "forward_backward"
    x = ctx.activation("x", shape, requires_grad=train)
    gen_seed = 1234

    if not train:
        def run():
            with torch.no_grad(), ctx.autocast():
                return drop(x)
    else:
        dy = ctx.activation("dy", shape)

        def run():
            x.grad = None
            with ctx.autocast():
                y = drop(x)
            y.backward(dy)
            return y

    def check():
        torch.manual_seed(gen_seed)  # the same mask for every precision
        y = run()
        out = {"y": ctx.numpy(y)}
        if train:
            out["dx"] = ctx.numpy(x.grad)
        return out

    return Step(run=run, check=check)


@dropout.builder("jax")
def jax_dropout(ctx, p: Mapping[str, Any], mode: str):
    import jax
    from flax import nnx

    from xpubench.backends.base import Step

    shape = (p["b"], p["t"], p["d"])
    drop = nnx.Dropout(p["p"])
    x = ctx.activation("x", shape)
    train = mode == "forward_backward"
    state = {"key": ctx.key("dropout")}

    if not train:
        def forward(x, key):
            key, sub = jax.random.split(key)
            return drop(x, rngs=sub), key

        f = ctx.compile(forward, x, state["key"], donate_argnums=(1,))

        def run():
            y, state["key"] = f(x, state["key"])
            return y
    else:
        dy = ctx.activation("dy", shape)

        def forward_backward(x, dy, key):
            key, sub = jax.random.split(key)
            y, vjp = jax.vjp(lambda x: drop(x, rngs=sub), x)
            (dx,) = vjp(dy)
            return y, dx, key

        f = ctx.compile(forward_backward, x, dy, state["key"], donate_argnums=(2,))

        def run():
            y, dx, state["key"] = f(x, dy, state["key"])
            return y, dx

    def check():
        state["key"] = ctx.key("dropout")  # the same mask for every precision
        out = run()
        if train:
            return {"y": ctx.numpy(out[0]), "dx": ctx.numpy(out[1])}
        return {"y": ctx.numpy(out)}

    return Step(run=run, check=check)

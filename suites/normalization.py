"""Normalization layers: BatchNorm1d/2d, LayerNorm, InstanceNorm2d, GroupNorm, RMSNorm.

Shapes mirror real use: NCHW CNN activations for BatchNorm2d / InstanceNorm / GroupNorm,
(samples, features) MLP activations for BatchNorm1d, (batch, tokens, d_model) token
activations for LayerNorm / RMSNorm. ``forward`` is inference (eval mode, no autograd);
``forward_backward`` is training mode: forward, then backward of a fixed random
upstream gradient into the input and the affine parameters.

Work is analytic: element-wise and reduction FLOPs (``flops_kind="vector"``, held
against the vector roof, not the matmul one). Bytes are the ideal activation traffic
in the compute dtype (2 B/element in bf16/fp16, 4 in fp32: inputs arrive and outputs
leave in it on both frameworks): forward reads x and writes y (2 elements);
forward+backward adds reading x and dy and writing dx (5 elements), over a working
set of x, y, dy and dx (4 elements). The small parameter vectors are left out.
"""

from __future__ import annotations

from typing import Any, Mapping

from xpubench.spec.registry import VECTOR, Work, workload
from xpubench.suites.common import numel

MODES = ("forward", "forward_backward")
EPS = 1e-5

# flops per element: (forward, forward+backward)
_FLOPS_PER_EL = {"stats": (8, 24), "eval_affine": (4, 4), "rms": (4, 12)}


def _work(units: float, elements: int, forward_kind: str, train_kind: str, mode: str) -> Work:
    if mode == "forward":
        return Work(units, _FLOPS_PER_EL[forward_kind][0] * elements, flops_kind=VECTOR, elements=2.0 * elements)
    return Work(units, _FLOPS_PER_EL[train_kind][1] * elements, flops_kind=VECTOR, elements=5.0 * elements,
                working_set_elements=4.0 * elements)


batchnorm1d = workload(
    suite="normalization", name="batchnorm1d", modes=MODES, unit="samples",
    description="BatchNorm1d over (samples, features) MLP activations",
    sizes={"smoke": dict(n=64, c=32), "default": dict(n=4096, c=1024), "large": dict(n=65536, c=1024)},
    work=lambda p, m: _work(p["n"], numel(p["n"], p["c"]), "eval_affine", "stats", m),
)
batchnorm2d = workload(
    suite="normalization", name="batchnorm2d", modes=MODES, unit="samples",
    description="BatchNorm2d over NCHW CNN activations (ResNet stage-1 shape)",
    sizes={"smoke": dict(n=2, c=8, hw=8), "default": dict(n=32, c=64, hw=56),
           "large": dict(n=256, c=64, hw=112)},
    work=lambda p, m: _work(p["n"], numel(p["n"], p["c"], p["hw"], p["hw"]), "eval_affine", "stats", m),
)
instancenorm2d = workload(
    suite="normalization", name="instancenorm2d", modes=MODES, unit="samples",
    description="InstanceNorm2d (affine) over NCHW activations (style-transfer shape)",
    sizes={"smoke": dict(n=2, c=8, hw=8), "default": dict(n=8, c=64, hw=128),
           "large": dict(n=64, c=128, hw=128)},
    work=lambda p, m: _work(p["n"], numel(p["n"], p["c"], p["hw"], p["hw"]), "stats", "stats", m),
)
groupnorm = workload(
    suite="normalization", name="groupnorm", modes=MODES, unit="samples",
    description="GroupNorm(32 groups) over NCHW activations (diffusion U-Net shape)",
    sizes={"smoke": dict(n=2, c=16, hw=8, groups=4), "default": dict(n=16, c=128, hw=32, groups=32),
           "large": dict(n=64, c=256, hw=64, groups=32)},
    work=lambda p, m: _work(p["n"], numel(p["n"], p["c"], p["hw"], p["hw"]), "stats", "stats", m),
)
layernorm = workload(
    suite="normalization", name="layernorm", modes=MODES, unit="tokens",
    description="LayerNorm over (batch, tokens, d_model) transformer activations",
    sizes={"smoke": dict(b=2, t=16, d=64), "default": dict(b=8, t=512, d=768),
           "large": dict(b=16, t=2048, d=4096)},
    work=lambda p, m: _work(p["b"] * p["t"], numel(p["b"], p["t"], p["d"]), "stats", "stats", m),
)
rmsnorm = workload(
    suite="normalization", name="rmsnorm", modes=MODES, unit="tokens",
    description="RMSNorm over (batch, tokens, d_model) transformer activations",
    sizes={"smoke": dict(b=2, t=16, d=64), "default": dict(b=8, t=512, d=768),
           "large": dict(b=16, t=2048, d=4096)},
    work=lambda p, m: _work(p["b"] * p["t"], numel(p["b"], p["t"], p["d"]), "rms", "rms", m),
)


def input_shape(name: str, p: Mapping[str, Any]) -> tuple[int, ...]:
    if name == "batchnorm1d":
        return (p["n"], p["c"])
    if name in ("batchnorm2d", "instancenorm2d", "groupnorm"):
        return (p["n"], p["c"], p["hw"], p["hw"])
    return (p["b"], p["t"], p["d"])


def feature_count(name: str, p: Mapping[str, Any]) -> int:
    return p["d"] if name in ("layernorm", "rmsnorm") else p["c"]


# ----------------------------------------------------------------------------- torch
def _torch_module(name: str, p: Mapping[str, Any]):
    import torch.nn as nn

    c = feature_count(name, p)
    return {
        "batchnorm1d": lambda: nn.BatchNorm1d(c, eps=EPS),
        "batchnorm2d": lambda: nn.BatchNorm2d(c, eps=EPS),
        "instancenorm2d": lambda: nn.InstanceNorm2d(c, eps=EPS, affine=True),
        "groupnorm": lambda: nn.GroupNorm(p.get("groups", 1), c, eps=EPS),
        "layernorm": lambda: nn.LayerNorm(c, eps=EPS),
        "rmsnorm": lambda: nn.RMSNorm(c, eps=EPS),
    }[name]()


def torch_norm_step(ctx, name: str, p: Mapping[str, Any], mode: str):
    """One builder for every normalization layer: they differ only in the module."""
    import torch

    from xpubench.backends.base import Step

    c = feature_count(name, p)
    m = _torch_module(name, p)
    with torch.no_grad():  # random affine parameters and running stats, never the defaults
        m.weight.copy_(ctx.randn("weight", (c,), scale=0.1, mean=1.0))
        if getattr(m, "bias", None) is not None:
            m.bias.copy_(ctx.randn("bias", (c,), scale=0.1))
        if getattr(m, "running_mean", None) is not None:
            m.running_mean.copy_(ctx.randn("running_mean", (c,), scale=0.1))
            m.running_var.copy_(ctx.rand("running_var", (c,), low=0.75, high=1.25))
    m = ctx.module(m)
    shape = input_shape(name, p)
    train = mode == "forward_backward"
    m.train(train)
    x = ctx.activation("x", shape, requires_grad=train)
    params = [q for q in m.parameters()]

    if not train:
        def run():
            with torch.inference_mode(), ctx.autocast():
                return m(x)

        def check():
            return {"y": ctx.numpy(run())}

        return Step(run=run, check=check)

    dy = ctx.activation("dy", shape)

    def run():
        x.grad = None
        for q in params:
            q.grad = None
        with ctx.autocast():
            y = m(x)
        y.backward(dy)
        return y

    def check():
        # BatchNorm's running stats move each training call; outputs use batch stats.
        y = run()
        out = {"y": ctx.numpy(y), "dx": ctx.numpy(x.grad), "dweight": ctx.numpy(m.weight.grad)}
        if getattr(m, "bias", None) is not None:
            out["dbias"] = ctx.numpy(m.bias.grad)
        return out

    return Step(run=run, check=check)


for _w in (batchnorm1d, batchnorm2d, instancenorm2d, groupnorm, layernorm, rmsnorm):
    _w.builder("torch")(lambda ctx, p, mode, _n=_w.name: torch_norm_step(ctx, _n, p, mode))


# ------------------------------------------------------------------------------- jax
def to_channels_last(a, ndim: int):
    """JAX convolutional code is channels-last (NHWC): the layout XLA prefers."""
    import jax.numpy as jnp

    return jnp.transpose(a, (0, 2, 3, 1)) if ndim == 4 else a


def from_channels_last(a, ndim: int):
    import numpy as np

    return np.transpose(a, (0, 3, 1, 2)) if ndim == 4 else a


def _flax_module(ctx, name: str, p: Mapping[str, Any], train: bool):
    from flax import nnx

    c = feature_count(name, p)
    kw = dict(dtype=ctx.compute_dtype, param_dtype=ctx.param_dtype, rngs=ctx.rngs())
    return {
        # flax momentum is the weight of the old running value: torch's 0.1 == flax's 0.9
        "batchnorm1d": lambda: nnx.BatchNorm(c, use_running_average=not train, momentum=0.9, epsilon=EPS, **kw),
        "batchnorm2d": lambda: nnx.BatchNorm(c, use_running_average=not train, momentum=0.9, epsilon=EPS, **kw),
        "instancenorm2d": lambda: nnx.InstanceNorm(c, epsilon=EPS, **kw),
        "groupnorm": lambda: nnx.GroupNorm(c, num_groups=p.get("groups", 1), epsilon=EPS, **kw),
        "layernorm": lambda: nnx.LayerNorm(c, epsilon=EPS, **kw),
        "rmsnorm": lambda: nnx.RMSNorm(c, epsilon=EPS, **kw),
    }[name]()


def jax_norm_step(ctx, name: str, p: Mapping[str, Any], mode: str):
    import jax
    from flax import nnx

    from xpubench.backends.base import Step

    c = feature_count(name, p)
    train = mode == "forward_backward"
    m = _flax_module(ctx, name, p, train)
    m.scale[...] = ctx.randn("weight", (c,), scale=0.1, mean=1.0)
    if getattr(m, "bias", None) is not None:
        m.bias[...] = ctx.randn("bias", (c,), scale=0.1)
    if name.startswith("batchnorm"):
        m.mean[...] = ctx.randn("running_mean", (c,), scale=0.1)
        m.var[...] = ctx.rand("running_var", (c,), low=0.75, high=1.25)
    graphdef, params, rest = nnx.split(m, nnx.Param, ...)
    params, rest = jax.device_put((params, rest), ctx.device)
    shape = input_shape(name, p)
    nd = len(shape)
    x = to_channels_last(ctx.activation("x", shape), nd)

    if not train:
        def forward(params, rest, x):
            return nnx.merge(graphdef, params, rest)(x)

        f = ctx.compile(forward, params, rest, x)

        def run():
            return f(params, rest, x)

        return Step(run=run, check=lambda: {"y": from_channels_last(ctx.numpy(run()), nd)})

    dy = to_channels_last(ctx.activation("dy", shape), nd)

    def forward_backward(params, rest, x, dy):
        def apply(params, rest, x):
            m = nnx.merge(graphdef, params, rest)
            y = m(x)
            # BatchNorm's updated running statistics leave as an output, as torch
            # updates them in place during a training forward.
            return y, nnx.state(m, nnx.BatchStat)

        y, vjp, new_stats = jax.vjp(apply, params, rest, x, has_aux=True)
        dparams, _, dx = vjp(dy.astype(y.dtype))
        return y, dx, dparams, new_stats

    f = ctx.compile(forward_backward, params, rest, x, dy)

    def run():
        return f(params, rest, x, dy)

    def check():
        y, dx, dparams, _ = run()
        grads = nnx.to_pure_dict(dparams)
        out = {"y": from_channels_last(ctx.numpy(y), nd), "dx": from_channels_last(ctx.numpy(dx), nd),
               "dweight": ctx.numpy(grads["scale"])}
        if "bias" in grads:
            out["dbias"] = ctx.numpy(grads["bias"])
        return out

    return Step(run=run, check=check)


for _w in (batchnorm1d, batchnorm2d, instancenorm2d, groupnorm, layernorm, rmsnorm):
    _w.builder("jax")(lambda ctx, p, mode, _n=_w.name: jax_norm_step(ctx, _n, p, mode))

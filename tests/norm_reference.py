"""Float64 numpy references for the normalization layers (written here, not taken
from any framework), plus the inputs the tests feed to both frameworks."""

from __future__ import annotations

import numpy as np

from xpubench.suites.normalization import EPS, feature_count, input_shape


def reference_forward(name, p, x, w, b, rm=None, rv=None, train=True):
    x = x.astype(np.float64)
    c_axis = 1
    if name in ("layernorm", "rmsnorm"):
        c_axis = x.ndim - 1
    shape = [1] * x.ndim
    shape[c_axis] = -1
    w_ = w.reshape(shape)
    b_ = None if b is None else b.reshape(shape)
    if name.startswith("batchnorm"):
        axes = tuple(a for a in range(x.ndim) if a != 1)
        if train:
            mean, var = x.mean(axes, keepdims=True), x.var(axes, keepdims=True)
        else:
            mean, var = rm.reshape(shape), rv.reshape(shape)
        y = (x - mean) / np.sqrt(var + EPS)
    elif name == "instancenorm2d":
        mean, var = x.mean((2, 3), keepdims=True), x.var((2, 3), keepdims=True)
        y = (x - mean) / np.sqrt(var + EPS)
    elif name == "groupnorm":
        n, c, h, wd = x.shape
        g = p["groups"]
        xg = x.reshape(n, g, c // g, h, wd)
        mean, var = xg.mean((2, 3, 4), keepdims=True), xg.var((2, 3, 4), keepdims=True)
        y = ((xg - mean) / np.sqrt(var + EPS)).reshape(x.shape)
    elif name == "layernorm":
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        y = (x - mean) / np.sqrt(var + EPS)
    elif name == "rmsnorm":
        y = x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS)
    else:
        raise ValueError(name)
    y = y * w_
    return y if b_ is None else y + b_


def has_bias(name):
    return name != "rmsnorm"


def make_inputs(name, p, seed=0):
    rng = np.random.default_rng(seed)
    c = feature_count(name, p)
    shape = input_shape(name, p)
    inputs = {
        "x": rng.standard_normal(shape) * 2 + 0.5,
        "dy": rng.standard_normal(shape),
        "weight": 1 + 0.1 * rng.standard_normal(c),
        "bias": 0.1 * rng.standard_normal(c),
        "running_mean": 0.1 * rng.standard_normal(c),
        "running_var": 0.75 + 0.5 * rng.random(c),
    }
    return {k: v.astype(np.float32).astype(np.float64) for k, v in inputs.items()}


def directional_grad_check(name, p, inp, dx, dweight, train=True, h=1e-6, seed=1):
    """<dx, v> and <dw, u> against central finite differences of the float64 reference."""
    rng = np.random.default_rng(seed)
    b = inp["bias"] if has_bias(name) else None

    def loss(x, w):
        y = reference_forward(name, p, x, w, b, inp["running_mean"], inp["running_var"], train)
        return float((y * inp["dy"]).sum())

    v = rng.standard_normal(inp["x"].shape)
    u = rng.standard_normal(inp["weight"].shape)
    fd_x = (loss(inp["x"] + h * v, inp["weight"]) - loss(inp["x"] - h * v, inp["weight"])) / (2 * h)
    fd_w = (loss(inp["x"], inp["weight"] + h * u) - loss(inp["x"], inp["weight"] - h * u)) / (2 * h)
    return (float((dx * v).sum()), fd_x), (float((dweight * u).sum()), fd_w)

"""Models for the training and inference suites, each in torch and flax nnx side by side.

Every model is built by a function that imports its framework lazily, so importing
this package costs nothing. torch models take NCHW images; flax models take NHWC
(the layout XLA prefers). The same architecture gives the same parameter count in
both frameworks (tests check it); initialisations follow each framework's defaults
except where a model family prescribes one (GPT: normal(0, 0.02)).

JAX models are initialised inside one jit (``jax_init``) from "rbg" keys
(``jax_init_rngs``): eager threefry initialisation compiles dozens of small
programs, seconds each on a small CPU.

Dropout in the flax models is explicit: a model call takes a PRNG key (or None for
eval mode), so a jitted training step threads its key and ``check()`` can replay
the same masks.
"""

from __future__ import annotations

from typing import Any


def torch_param_count(model: Any) -> int:
    """Trainable parameters; tied weights count once (``parameters()`` dedupes)."""
    return sum(p.numel() for p in model.parameters())


def jax_param_count(model: Any) -> int:
    import jax
    from flax import nnx

    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def jax_dropout(x, rate: float, key):
    """Inverted dropout; ``key=None`` is eval mode (identity)."""
    import jax
    import jax.numpy as jnp

    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x)).astype(x.dtype)


def split_key(key, n: int) -> list:
    """n subkeys, or n Nones in eval mode."""
    import jax

    return [None] * n if key is None else list(jax.random.split(key, n))


def jax_init(make, *filters, device=None):
    """(graphdef, *states) of the nnx model ``make()`` builds, initialised in one jit.

    Eager construction compiles one small program per initializer shape (dozens for
    a ResNet: seconds each on a busy CPU); tracing the constructor compiles one.
    ``filters`` split the state as ``nnx.split`` does (e.g. nnx.Param, nnx.BatchStat).
    """
    import contextlib

    import jax
    from flax import nnx

    graphdef = nnx.split(nnx.eval_shape(make), *filters)[0]
    with jax.default_device(device) if device is not None else contextlib.nullcontext():
        states = jax.jit(lambda: nnx.split(make(), *filters)[1:])()
    return (graphdef, *states)


def jax_init_rngs(ctx, name: str = "init"):
    """nnx.Rngs for parameter initialisation, on the "rbg" PRNG.

    XLA compiles threefry (jax's default PRNG) into a large unrolled program:
    initialising a ResNet-18 took ~8 s of compile on a 2-core CPU, "rbg" ~2 s.
    Dropout keys stay on the default PRNG (ctx.key).
    """
    import jax
    from flax import nnx

    from xpubench.seeding import seed_for

    return nnx.Rngs(jax.random.key(seed_for(name, ctx.seed) & 0x7FFFFFFF, impl="rbg"))

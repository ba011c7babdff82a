"""JAX kernels for ``xpubench probe``: matmul per precision, copy, triad, host->device.

Called through ``JaxBackend.probe_*`` on a backend already ``setup()`` and
``activate()``-d; each returns a Step the backend's own ``time_block`` times. Every
kernel is jitted and compiled ahead of time (compile time apart); inputs are non-zero.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from xpubench.backends.base import ProbeUnsupported, Step, probe_elements

if TYPE_CHECKING:
    from xpubench.backends.jax.backend import JaxBackend

# Matmul precisions worth probing per device; the rest are recorded with a reason.
PRECISIONS = {"cpu": ("fp32", "bf16", "fp16", "int8"),
              "gpu": ("fp32", "tf32", "bf16", "fp16", "int8", "fp8"),
              "tpu": ("fp32", "bf16", "int8")}


def _host_operand(name: str, n: int, precision: str, dtype: Any):
    """A seeded n x n operand built on the host: no device-side RNG to compile per shape."""
    import numpy as np

    from xpubench.seeding import seed_for

    x = np.random.default_rng(seed_for(name, 0)).standard_normal((n, n), dtype=np.float32)
    if precision == "int8":
        x = np.clip(np.rint(x * 32), -127, 127)
    return x.astype(dtype)


def matmul(backend: "JaxBackend", precision: str, n: int) -> Step:
    ctx = backend.context()
    jnp = ctx.jnp
    dtype = {"fp32": jnp.float32, "tf32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16,
             "int8": jnp.int8, "fp8": getattr(jnp, "float8_e4m3fn", None)}.get(precision)
    if dtype is None:
        raise ProbeUnsupported(f"this jax has no dtype for {precision}")
    out_type = {"int8": jnp.int32, "fp8": jnp.bfloat16}.get(precision)
    a, b = (ctx.jax.device_put(_host_operand(name, n, precision, dtype), ctx.device)
            for name in ("probe_mm_a", "probe_mm_b"))

    def mm(x, y):
        return jnp.dot(x, y, preferred_element_type=out_type)

    f = ctx.compile(mm, a, b)
    return Step(run=lambda: f(a, b), compile_s=ctx.compile_s,
                notes={"dtype": str(jnp.dtype(dtype)), "op": "jnp.dot (jit)"})


def _filled(ctx: Any, nel: int, value: float):
    jnp = ctx.jnp
    with ctx.jax.default_device(ctx.device):
        return ctx.jax.device_put(jnp.full((nel,), value, jnp.float32), ctx.device)


def _stateful(ctx: Any, fn, state_init, *args) -> Step:
    """A step whose previous output is donated as the buffer for the next one.

    ``keep_unused=True``: the donated argument is not read, and JAX would otherwise
    prune it and allocate a fresh output on every call (on XLA:CPU a fresh mmap of
    a large array: page faults, measured at ~1/8 of the real bandwidth).
    """
    t0 = time.perf_counter()
    f = ctx.jax.jit(fn, donate_argnums=(0,), keep_unused=True).lower(state_init, *args).compile()
    compile_s = time.perf_counter() - t0
    state = {"out": state_init}

    def run():
        state["out"] = f(state["out"], *args)
        return state["out"]

    return Step(run=run, compile_s=compile_s)


def copy(backend: "JaxBackend", nbytes: int) -> Step:
    ctx = backend.context()
    jnp = ctx.jnp
    nel = probe_elements(nbytes)
    x, y = _filled(ctx, nel, 1.0), _filled(ctx, nel, 2.0)
    # jnp.copy lowers to an HLO copy (unlike x + 0, which XLA folds away), written
    # into the donated previous output.
    step = _stateful(ctx, lambda out, src: jnp.copy(src), y, x)
    step.notes = {"op": "jnp.copy (jit, output donated)", "bytes_counted": "read x + write y"}
    return step


def triad(backend: "JaxBackend", nbytes: int) -> Step:
    ctx = backend.context()
    jnp = ctx.jnp
    nel = probe_elements(nbytes)
    a, b, c = (_filled(ctx, nel, v) for v in (0.5, 1.0, 2.0))
    s = ctx.jax.device_put(jnp.float32(3.0), ctx.device)  # an argument, so XLA cannot fold it
    step = _stateful(ctx, lambda out, b_, c_, s_: b_ + s_ * c_, a, b, c, s)
    step.notes = {"op": "b + s*c (jit, fused, output donated)", "bytes_counted": "read b, c + write a"}
    return step


def transfer(backend: "JaxBackend", nbytes: int, direction: str) -> Step:
    ctx = backend.context()
    jax = ctx.jax
    if ctx.device.platform == "cpu":
        raise ProbeUnsupported("host<->device copies apply to accelerators only")
    if direction == "d2h":
        raise ProbeUnsupported("JAX caches an array's host copy, so repeated device->host "
                               "transfers of one array cannot be timed")
    import numpy as np

    host = np.full(probe_elements(nbytes), 1.0, dtype=np.float32)
    dev = ctx.device

    def run():
        # Each transfer waits for itself: device_put returns before the copy is done.
        return jax.block_until_ready(jax.device_put(host, dev))

    return Step(run=run, notes={"op": "jax.device_put(numpy) (pageable host memory)"})

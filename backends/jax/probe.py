"""JAX kernels for ``xpubench probe``: matmul per precision and shape, the vector
(element-wise) roof, and bandwidth by copy, triad, read-only and in-place kernels,
plus host->device.

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
# Precisions of the element-wise (vector) roof.
VECTOR_PRECISIONS = {"cpu": ("fp32", "bf16"), "gpu": ("fp32", "bf16", "fp16"), "tpu": ("fp32", "bf16")}
# The vector kernel: VECTOR_CHAINS independent Horner polynomials of VECTOR_DEGREE in
# every element, summed; XLA fuses them into one loop over the array. One chain is
# bound by the latency of its dependent multiply-adds (a quarter of the FMA rate or
# less); independent chains keep the vector units busy.
VECTOR_DEGREE = 16
VECTOR_CHAINS = 8
VECTOR_FLOPS_PER_ELEMENT = VECTOR_CHAINS * 2 * VECTOR_DEGREE + (VECTOR_CHAINS - 1)


def _host_operand(name: str, shape: tuple[int, ...], precision: str, dtype: Any):
    """A seeded operand built on the host: no device-side RNG to compile per shape."""
    import numpy as np

    from xpubench.seeding import seed_for

    x = np.random.default_rng(seed_for(name, 0)).standard_normal(shape, dtype=np.float32)
    if precision == "int8":
        x = np.clip(np.rint(x * 32), -127, 127)
    return x.astype(dtype)


def _dtype(jnp: Any, precision: str) -> Any:
    return {"fp32": jnp.float32, "tf32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16,
            "int8": jnp.int8, "fp8": getattr(jnp, "float8_e4m3fn", None)}.get(precision)


def matmul(backend: "JaxBackend", precision: str, m: int, k: int, n: int, batch: int = 1) -> Step:
    """(batch x) m x k @ k x n in ``precision``: 2 batch m k n FLOPs per call."""
    ctx = backend.context()
    jnp = ctx.jnp
    dtype = _dtype(jnp, precision)
    if dtype is None:
        raise ProbeUnsupported(f"this jax has no dtype for {precision}")
    out_type = {"int8": jnp.int32, "fp8": jnp.bfloat16}.get(precision)
    lead = (batch,) if batch > 1 else ()
    a, b = (ctx.jax.device_put(_host_operand(name, lead + shape, precision, dtype), ctx.device)
            for name, shape in (("probe_mm_a", (m, k)), ("probe_mm_b", (k, n))))

    def mm(x, y):
        return jnp.matmul(x, y, preferred_element_type=out_type)

    f = ctx.compile(mm, a, b)
    return Step(run=lambda: f(a, b), compile_s=ctx.compile_s,
                notes={"dtype": str(jnp.dtype(dtype)), "op": "jnp.matmul (jit)"})


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


def vector(backend: "JaxBackend", precision: str, nbytes: int) -> Step:
    """Element-wise FLOPs on a cache-resident array: fused polynomials, 2 FLOPs per degree and chain."""
    ctx = backend.context()
    jnp = ctx.jnp
    dtype = _dtype(jnp, precision)
    if dtype is None or precision in ("int8", "fp8"):
        raise ProbeUnsupported(f"no element-wise {precision} kernel")
    nel = max(1, nbytes // jnp.dtype(dtype).itemsize)
    x = ctx.jax.device_put(jnp.linspace(-0.5, 0.5, nel, dtype=dtype), ctx.device)
    # coefficients as an argument (distinct per chain), so XLA can neither fold nor merge them
    coeffs = jnp.linspace(0.3, 0.6, VECTOR_CHAINS * (VECTOR_DEGREE + 1), dtype=jnp.float32)
    coeffs = ctx.jax.device_put(coeffs.reshape(VECTOR_CHAINS, VECTOR_DEGREE + 1).astype(dtype), ctx.device)

    def polys(x, c):
        ys = [jnp.broadcast_to(c[j, 0], x.shape) for j in range(VECTOR_CHAINS)]
        for i in range(1, VECTOR_DEGREE + 1):
            ys = [y * x + c[j, i] for j, y in enumerate(ys)]
        return sum(ys[1:], ys[0])

    f = ctx.compile(polys, x, coeffs)
    return Step(run=lambda: f(x, coeffs), compile_s=ctx.compile_s,
                notes={"op": f"{VECTOR_CHAINS} Horner polynomials of degree {VECTOR_DEGREE}, summed (jit, fused)",
                       "dtype": str(jnp.dtype(dtype)), "flops_per_call": float(VECTOR_FLOPS_PER_ELEMENT * nel),
                       "array_bytes": nbytes})


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


def read(backend: "JaxBackend", nbytes: int) -> Step:
    ctx = backend.context()
    x = _filled(ctx, probe_elements(nbytes), 1.0)
    f = ctx.compile(lambda v: ctx.jnp.sum(v), x)
    # a reduction reads every byte and writes none: no write-allocate traffic to miss
    return Step(run=lambda: f(x), compile_s=ctx.compile_s, notes={"op": "jnp.sum (jit)", "bytes_counted": "read x"})


def inplace(backend: "JaxBackend", nbytes: int) -> Step:
    ctx = backend.context()
    x = _filled(ctx, probe_elements(nbytes), 1.0)
    s = ctx.jax.device_put(ctx.jnp.float32(-1.0), ctx.device)  # an argument, so XLA cannot fold it
    # x = s * x into x's own donated buffer: every line read then written back
    step = _stateful(ctx, lambda v, s_: v * s_, x, s)
    step.notes = {"op": "x * s into the donated x (jit)", "bytes_counted": "read x + write x"}
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

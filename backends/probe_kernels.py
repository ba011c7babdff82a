"""Framework-side kernels for ``xpubench probe``: matmul, copy, triad, host<->device.

Each builder takes a backend that is already ``setup()`` and ``activate()``-d for
the precision at hand and returns a ``Step`` that the backend's own ``time_block``
times, exactly as suite steps are timed. Inputs are filled with non-zero values
(never zeros: untouched zero pages would be read from the shared zero page and
fake the bandwidth). Frameworks are imported inside the functions.
"""

from __future__ import annotations

from typing import Any

from xpubench.backends.base import Backend, Step

# Which matmul precisions to try on each framework/device; the rest are recorded
# as unsupported with a reason.
MATMUL_PRECISIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("torch", "cpu"): ("fp32", "bf16", "fp16", "int8"),
    ("torch", "cuda"): ("fp32", "tf32", "bf16", "fp16", "int8", "fp8"),
    ("jax", "cpu"): ("fp32", "bf16", "fp16", "int8"),
    ("jax", "gpu"): ("fp32", "tf32", "bf16", "fp16", "int8", "fp8"),
    ("jax", "tpu"): ("fp32", "bf16", "int8"),
}
ALL_PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "int8", "fp8")


class ProbeUnsupported(Exception):
    """This kernel does not exist for this backend; the message says why."""


def matmul_precisions(framework: str, device: str) -> tuple[str, ...]:
    return MATMUL_PRECISIONS.get((framework, device), ("fp32",))


def not_probed_reason(framework: str, device: str, precision: str) -> str:
    if precision == "tf32":
        return "tf32 is a GPU mode"
    if precision == "fp8":
        return "fp8 matmul needs a GPU with fp8 tensor cores"
    if precision == "fp16" and device == "tpu":
        return "TPUs have no fp16 matrix path (bf16 instead)"
    return f"{precision} matmul is not probed on {framework}:{device}"


def _f32_elements(nbytes: int) -> int:
    return max(1, int(nbytes) // 4)


# --------------------------------------------------------------------------- torch
def _torch_matmul(backend: Any, precision: str, n: int) -> Step:
    ctx = backend.context()
    torch = ctx.torch
    dev = ctx.device
    a32 = ctx.randn("probe_mm_a", (n, n))
    b32 = ctx.randn("probe_mm_b", (n, n))
    if precision in ("fp32", "tf32", "bf16", "fp16"):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
        a, b = a32.to(dtype), b32.to(dtype)
        c = torch.empty((n, n), dtype=dtype, device=dev)
        return Step(run=lambda: torch.matmul(a, b, out=c), notes={"dtype": str(dtype), "op": "torch.matmul"})
    if precision == "int8":
        if not hasattr(torch, "_int_mm"):
            raise ProbeUnsupported("this torch has no torch._int_mm")
        a = (a32 * 32).clamp(-127, 127).to(torch.int8)
        b = (b32 * 32).clamp(-127, 127).to(torch.int8)
        c = torch.empty((n, n), dtype=torch.int32, device=dev)
        torch._int_mm(a, b, out=c)  # fails here, outside the timed loop, where unsupported
        return Step(run=lambda: torch._int_mm(a, b, out=c), notes={"dtype": "torch.int8 -> int32",
                                                                   "op": "torch._int_mm"})
    if precision == "fp8":
        if dev.type != "cuda":
            raise ProbeUnsupported("fp8 matmul needs CUDA")
        cap = torch.cuda.get_device_capability(dev)
        if cap < (8, 9):
            raise ProbeUnsupported(f"fp8 needs compute capability 8.9+ (this GPU is {cap[0]}.{cap[1]})")
        if not hasattr(torch, "_scaled_mm"):
            raise ProbeUnsupported("this torch has no torch._scaled_mm")
        a = a32.to(torch.float8_e4m3fn)
        b = b32.to(torch.float8_e4m3fn).t()  # _scaled_mm wants the second operand column-major
        one = torch.ones((), dtype=torch.float32, device=dev)

        def run():
            # fast accumulation: the rate fp8 training uses in its forward GEMMs (the peak)
            return torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16,
                                    use_fast_accum=True)

        run()
        return Step(run=run, notes={"dtype": "float8_e4m3fn -> bf16",
                                    "op": "torch._scaled_mm(use_fast_accum=True)"})
    raise ProbeUnsupported(f"unknown precision {precision}")


def _torch_filled(ctx: Any, nel: int, value: float):
    torch = ctx.torch
    return torch.empty(nel, dtype=torch.float32, device=ctx.device).fill_(value)


def _torch_copy(backend: Any, nbytes: int) -> Step:
    ctx = backend.context()
    nel = _f32_elements(nbytes)
    x, y = _torch_filled(ctx, nel, 1.0), _torch_filled(ctx, nel, 2.0)
    return Step(run=lambda: y.copy_(x), notes={"op": "Tensor.copy_", "bytes_counted": "read x + write y"})


def _torch_triad(backend: Any, nbytes: int) -> Step:
    ctx = backend.context()
    torch = ctx.torch
    nel = _f32_elements(nbytes)
    a, b, c = (_torch_filled(ctx, nel, v) for v in (0.5, 1.0, 2.0))
    # a = b + s*c in one kernel: 2 reads + 1 write.
    return Step(run=lambda: torch.add(b, c, alpha=3.0, out=a),
                notes={"op": "torch.add(b, c, alpha=s, out=a)", "bytes_counted": "read b, c + write a"})


def _torch_transfer(backend: Any, nbytes: int, direction: str) -> Step:
    ctx = backend.context()
    torch = ctx.torch
    if ctx.device.type != "cuda":
        raise ProbeUnsupported("host<->device copies apply to accelerators only")
    nel = _f32_elements(nbytes)
    host = torch.empty(nel, dtype=torch.float32, pin_memory=True).fill_(1.0)
    dev = _torch_filled(ctx, nel, 2.0)
    if direction == "h2d":
        return Step(run=lambda: dev.copy_(host, non_blocking=True), notes={"op": "pinned host -> device copy_"})
    return Step(run=lambda: host.copy_(dev, non_blocking=True), notes={"op": "device -> pinned host copy_"})


# --------------------------------------------------------------------------- jax
def _host_operand(name: str, n: int, precision: str, dtype: Any):
    """A seeded n x n operand built on the host: no device-side RNG to compile per shape."""
    import numpy as np

    from xpubench.seeding import seed_for

    x = np.random.default_rng(seed_for(name, 0)).standard_normal((n, n), dtype=np.float32)
    if precision == "int8":
        x = np.clip(np.rint(x * 32), -127, 127)
    return x.astype(dtype)


def _jax_matmul(backend: Any, precision: str, n: int) -> Step:
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


def _jax_filled(ctx: Any, nel: int, value: float):
    jnp = ctx.jnp
    with ctx.jax.default_device(ctx.device):
        return ctx.jax.device_put(jnp.full((nel,), value, jnp.float32), ctx.device)


def _jax_stateful(ctx: Any, fn, state_init, *args) -> Step:
    """A step whose previous output is donated as the buffer for the next one.

    ``keep_unused=True``: the donated argument is not read, and JAX would otherwise
    prune it and allocate a fresh output on every call (on XLA:CPU a fresh mmap of
    a large array: page faults, measured at ~1/8 of the real bandwidth).
    """
    import time

    t0 = time.perf_counter()
    f = ctx.jax.jit(fn, donate_argnums=(0,), keep_unused=True).lower(state_init, *args).compile()
    compile_s = time.perf_counter() - t0
    state = {"out": state_init}

    def run():
        state["out"] = f(state["out"], *args)
        return state["out"]

    return Step(run=run, compile_s=compile_s)


def _jax_copy(backend: Any, nbytes: int) -> Step:
    ctx = backend.context()
    jnp = ctx.jnp
    nel = _f32_elements(nbytes)
    x, y = _jax_filled(ctx, nel, 1.0), _jax_filled(ctx, nel, 2.0)
    # jnp.copy lowers to an HLO copy (unlike x + 0, which XLA folds away), written
    # into the donated previous output.
    step = _jax_stateful(ctx, lambda out, src: jnp.copy(src), y, x)
    step.notes = {"op": "jnp.copy (jit, output donated)", "bytes_counted": "read x + write y"}
    return step


def _jax_triad(backend: Any, nbytes: int) -> Step:
    ctx = backend.context()
    jnp = ctx.jnp
    nel = _f32_elements(nbytes)
    a, b, c = (_jax_filled(ctx, nel, v) for v in (0.5, 1.0, 2.0))
    s = ctx.jax.device_put(jnp.float32(3.0), ctx.device)  # an argument, so XLA cannot fold it
    step = _jax_stateful(ctx, lambda out, b_, c_, s_: b_ + s_ * c_, a, b, c, s)
    step.notes = {"op": "b + s*c (jit, fused, output donated)", "bytes_counted": "read b, c + write a"}
    return step


def _jax_transfer(backend: Any, nbytes: int, direction: str) -> Step:
    ctx = backend.context()
    jax = ctx.jax
    if ctx.device.platform == "cpu":
        raise ProbeUnsupported("host<->device copies apply to accelerators only")
    if direction == "d2h":
        raise ProbeUnsupported("JAX caches an array's host copy, so repeated device->host "
                               "transfers of one array cannot be timed")
    import numpy as np

    host = np.full(_f32_elements(nbytes), 1.0, dtype=np.float32)
    dev = ctx.device

    def run():
        # Each transfer waits for itself: device_put returns before the copy is done.
        return jax.block_until_ready(jax.device_put(host, dev))

    return Step(run=run, notes={"op": "jax.device_put(numpy) (pageable host memory)"})


# --------------------------------------------------------------------------- dispatch
def matmul_step(backend: Backend, precision: str, n: int) -> Step:
    """An n x n @ n x n product in ``precision``; 2 n^3 FLOPs per call."""
    if backend.framework == "torch":
        return _torch_matmul(backend, precision, n)
    if backend.framework == "jax":
        return _jax_matmul(backend, precision, n)
    raise ProbeUnsupported(f"no probe kernels for {backend.framework}")


def copy_step(backend: Backend, nbytes: int) -> Step:
    """Device-to-device copy of an ``nbytes`` fp32 array: 2 x nbytes moved per call."""
    fn = {"torch": _torch_copy, "jax": _jax_copy}.get(backend.framework)
    if fn is None:
        raise ProbeUnsupported(f"no probe kernels for {backend.framework}")
    return fn(backend, nbytes)


def triad_step(backend: Backend, nbytes: int) -> Step:
    """STREAM triad a = b + s*c over ``nbytes`` fp32 arrays: 3 x nbytes moved per call."""
    fn = {"torch": _torch_triad, "jax": _jax_triad}.get(backend.framework)
    if fn is None:
        raise ProbeUnsupported(f"no probe kernels for {backend.framework}")
    return fn(backend, nbytes)


def transfer_step(backend: Backend, nbytes: int, direction: str) -> Step:
    """Host->device (``h2d``) or device->host (``d2h``) copy of ``nbytes``."""
    fn = {"torch": _torch_transfer, "jax": _jax_transfer}.get(backend.framework)
    if fn is None:
        raise ProbeUnsupported(f"no probe kernels for {backend.framework}")
    return fn(backend, nbytes, direction)


# Bytes each kernel moves per call, as a multiple of the array size.
BYTES_FACTOR = {"copy": 2, "triad": 3, "h2d": 1, "d2h": 1}


def array_bytes(nbytes: int) -> int:
    """The array size the kernels really allocate for a request of ``nbytes``."""
    return _f32_elements(nbytes) * 4

"""torch kernels for ``xpubench probe``: matmul per precision and shape, the vector
(element-wise) roof, and bandwidth by copy, triad, read-only and in-place kernels.

Called through ``TorchBackend.probe_*`` on a backend already ``setup()`` and
``activate()``-d for the precision at hand; each returns a Step the backend's own
``time_block`` times, exactly as suite steps are timed. Inputs are non-zero (never
zeros: untouched zero pages would be read from the shared zero page and fake the
bandwidth).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xpubench.backends.base import ProbeUnsupported, Step, probe_elements

if TYPE_CHECKING:
    from xpubench.backends.torch.backend import TorchBackend

# Matmul precisions worth probing per device; the rest are recorded with a reason.
PRECISIONS = {"cpu": ("fp32", "bf16", "fp16", "int8"),
              "cuda": ("fp32", "tf32", "bf16", "fp16", "int8", "fp8")}
# Precisions of the element-wise (vector) roof.
VECTOR_PRECISIONS = {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "bf16", "fp16")}
# torch.addcmul(x, y, z, value=s): s * y * z + x, three FLOPs per element.
VECTOR_FLOPS_PER_ELEMENT = 3


def _float_dtype(torch: Any, precision: str) -> Any:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def matmul(backend: "TorchBackend", precision: str, m: int, k: int, n: int, batch: int = 1) -> Step:
    """(batch x) m x k @ k x n in ``precision``: 2 batch m k n FLOPs per call."""
    ctx = backend.context()
    torch = ctx.torch
    dev = ctx.device
    lead = (batch,) if batch > 1 else ()
    a32 = ctx.randn("probe_mm_a", lead + (m, k))
    b32 = ctx.randn("probe_mm_b", lead + (k, n))
    if precision in ("fp32", "tf32", "bf16", "fp16"):
        dtype = _float_dtype(torch, precision)
        a, b = a32.to(dtype), b32.to(dtype)
        c = torch.empty(lead + (m, n), dtype=dtype, device=dev)
        op = "torch.bmm" if batch > 1 else "torch.matmul"
        return Step(run=lambda: torch.matmul(a, b, out=c), notes={"dtype": str(dtype), "op": op})
    if batch > 1:
        raise ProbeUnsupported(f"{precision} matmul is probed on 2-D products only")
    if precision == "int8":
        if not hasattr(torch, "_int_mm"):
            raise ProbeUnsupported("this torch has no torch._int_mm")
        a = (a32 * 32).clamp(-127, 127).to(torch.int8)
        # The second operand column-major (K-major): the layout cuBLASLt's int8 kernels
        # take without a transposing copy; a row-major one lands on a slow path.
        b = (b32.t().contiguous() * 32).clamp(-127, 127).to(torch.int8).t()
        c = torch.empty((m, n), dtype=torch.int32, device=dev)
        torch._int_mm(a, b, out=c)  # fails here, outside the timed loop, where unsupported
        return Step(run=lambda: torch._int_mm(a, b, out=c),
                    notes={"dtype": "torch.int8 -> int32", "op": "torch._int_mm (B column-major)"})
    if precision == "fp8":
        return _fp8_matmul(ctx, a32, b32)
    raise ProbeUnsupported(f"unknown precision {precision}")


def _fp8_matmul(ctx: Any, a32: Any, b32: Any) -> Step:
    torch, dev = ctx.torch, ctx.device
    if dev.type != "cuda":
        raise ProbeUnsupported("fp8 matmul needs CUDA")
    cap = torch.cuda.get_device_capability(dev)
    if cap < (8, 9):
        raise ProbeUnsupported(f"fp8 needs compute capability 8.9+ (this GPU is {cap[0]}.{cap[1]})")
    if not hasattr(torch, "_scaled_mm"):
        raise ProbeUnsupported("this torch has no torch._scaled_mm")
    a = a32.to(torch.float8_e4m3fn)
    b = b32.t().contiguous().to(torch.float8_e4m3fn).t()  # _scaled_mm wants the second operand column-major
    one = torch.ones((), dtype=torch.float32, device=dev)

    def run():
        # fast accumulation: the rate fp8 training uses in its forward GEMMs (the peak)
        return torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16,
                                use_fast_accum=True)

    run()
    return Step(run=run, notes={"dtype": "float8_e4m3fn -> bf16",
                                "op": "torch._scaled_mm(use_fast_accum=True)"})


def _filled(ctx: Any, nel: int, value: float, dtype: Any = None):
    torch = ctx.torch
    return torch.empty(nel, dtype=dtype or torch.float32, device=ctx.device).fill_(value)


def vector(backend: "TorchBackend", precision: str, nbytes: int) -> Step:
    """Element-wise FLOPs on cache-resident arrays: torch eager's best is one fused op."""
    ctx = backend.context()
    torch = ctx.torch
    dtype = _float_dtype(torch, precision)
    nel = max(1, nbytes // torch.empty((), dtype=dtype).element_size())
    x, y, z, out = (_filled(ctx, nel, v, dtype) for v in (0.5, 1.0, 1.5, 0.0))
    return Step(run=lambda: torch.addcmul(x, y, z, value=0.25, out=out),
                notes={"op": "torch.addcmul(x, y, z, value=s, out=o)", "dtype": str(dtype),
                       "flops_per_call": float(VECTOR_FLOPS_PER_ELEMENT * nel), "array_bytes": nbytes})


def copy(backend: "TorchBackend", nbytes: int) -> Step:
    ctx = backend.context()
    nel = probe_elements(nbytes)
    x, y = _filled(ctx, nel, 1.0), _filled(ctx, nel, 2.0)
    return Step(run=lambda: y.copy_(x), notes={"op": "Tensor.copy_", "bytes_counted": "read x + write y"})


def triad(backend: "TorchBackend", nbytes: int) -> Step:
    ctx = backend.context()
    torch = ctx.torch
    nel = probe_elements(nbytes)
    a, b, c = (_filled(ctx, nel, v) for v in (0.5, 1.0, 2.0))
    # a = b + s*c in one kernel: 2 reads + 1 write.
    return Step(run=lambda: torch.add(b, c, alpha=3.0, out=a),
                notes={"op": "torch.add(b, c, alpha=s, out=a)", "bytes_counted": "read b, c + write a"})


def read(backend: "TorchBackend", nbytes: int) -> Step:
    ctx = backend.context()
    torch = ctx.torch
    x = _filled(ctx, probe_elements(nbytes), 1.0)
    # a reduction reads every byte and writes none: no write-allocate traffic to miss
    return Step(run=lambda: torch.sum(x), notes={"op": "torch.sum(x)", "bytes_counted": "read x"})


def inplace(backend: "TorchBackend", nbytes: int) -> Step:
    ctx = backend.context()
    x = _filled(ctx, probe_elements(nbytes), 1.0)
    # x *= -1: every line read then written back (no write-allocate read); values stay +-1
    return Step(run=lambda: x.mul_(-1.0), notes={"op": "x.mul_(-1) in place", "bytes_counted": "read x + write x"})


def transfer(backend: "TorchBackend", nbytes: int, direction: str) -> Step:
    ctx = backend.context()
    torch = ctx.torch
    if ctx.device.type != "cuda":
        raise ProbeUnsupported("host<->device copies apply to accelerators only")
    nel = probe_elements(nbytes)
    host = torch.empty(nel, dtype=torch.float32, pin_memory=True).fill_(1.0)
    dev = _filled(ctx, nel, 2.0)
    if direction == "h2d":
        return Step(run=lambda: dev.copy_(host, non_blocking=True), notes={"op": "pinned host -> device copy_"})
    return Step(run=lambda: host.copy_(dev, non_blocking=True), notes={"op": "device -> pinned host copy_"})


def cache_bytes(backend: "TorchBackend") -> int | None:
    """The GPU's L2 in bytes (a CPU's caches are read from the OS by the probe)."""
    dev = backend.device
    if dev is None or dev.type != "cuda":
        return None
    return int(getattr(backend._torch.cuda.get_device_properties(dev), "L2_cache_size", 0) or 0) or None

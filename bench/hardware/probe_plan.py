"""What ``xpubench probe`` measures at each size: matmul shapes, array sizes, timing.

The matmul sweep is square products plus non-square and batched ones: a framework's
best rate is often on a shape a square sweep misses (a tall product, many small
ones), and a roof below what a case reaches is a roof in the wrong place.
"""

from __future__ import annotations

from dataclasses import dataclass

from xpubench.errors import UserError
from xpubench.measure.timing import TimingConfig
from xpubench.spec.registry import SIZES

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class MatmulShape:
    """(batch x) m x k @ k x n."""

    m: int
    k: int
    n: int
    batch: int = 1

    @property
    def flops(self) -> float:
        return 2.0 * self.batch * self.m * self.k * self.n

    @property
    def label(self) -> str:
        mkn = f"{self.m}x{self.k}x{self.n}"
        return f"{self.batch}x({mkn})" if self.batch > 1 else mkn

    @property
    def square_n(self) -> int | None:
        return self.m if self.batch == 1 and self.m == self.k == self.n else None


def square(*ns: int) -> tuple[MatmulShape, ...]:
    return tuple(MatmulShape(n, n, n) for n in ns)


@dataclass(frozen=True)
class ProbePlan:
    matmul_shapes: tuple[MatmulShape, ...]  # smallest FLOPs first
    array_bytes: int  # each bandwidth kernel's array (counted bytes are a multiple of it)
    transfer_bytes: int  # host<->device copies
    vector_bytes: int  # each array of the element-wise kernel: small enough to stay in cache
    max_call_s: float  # skip a shape whose one call would take longer than this
    timing: dict[str, float]  # TimingConfig overrides

    def timing_config(self) -> TimingConfig:
        return TimingConfig(**self.timing)

    @property
    def matmul_n(self) -> tuple[int, ...]:
        """The square sizes of the sweep (older files and tables name them)."""
        return tuple(s.square_n for s in self.matmul_shapes if s.square_n)

    def to_dict(self) -> dict:
        return {"matmul_shapes": [s.label for s in self.matmul_shapes], "matmul_n": list(self.matmul_n),
                "array_bytes": self.array_bytes, "transfer_bytes": self.transfer_bytes,
                "vector_bytes": self.vector_bytes, "timing": dict(self.timing)}


# smoke: seconds in total (tests). default: well under a minute per framework on a
# 2-core CPU, and meaningful on a GPU (products large enough to fill it, copies far
# beyond its L2). large: longer sweeps, bigger arrays, tighter intervals.
_TIMING = {
    "smoke": dict(time_budget_s=0.1, min_rounds=3, warmup_min_s=0.005, warmup_max_s=0.05,
                  min_round_s=0.002, target_rel_ci=0.05),
    "default": dict(time_budget_s=0.4, min_rounds=5, warmup_min_s=0.05, warmup_max_s=0.3,
                    target_rel_ci=0.02),
    "large": dict(time_budget_s=2.0, min_rounds=10, warmup_min_s=0.2, warmup_max_s=2.0,
                  target_rel_ci=0.01),
}


def sweep(squares: tuple[int, ...], base: int, batch: int, batched_n: int) -> tuple[MatmulShape, ...]:
    """Square products, a tall and a deep one around ``base`` (4x along m, then along k,
    as in activations x weights and weight gradients), and ``batch`` small ones."""
    return (square(*squares) + (MatmulShape(4 * base, base, base), MatmulShape(base, 4 * base, base),
                                MatmulShape(batched_n, batched_n, batched_n, batch=batch)))


# (cpu?, size) -> matmul sweep, bandwidth array, transfer, vector array, longest call (s).
# Accelerator arrays exceed a GPU's L2 (50 MiB on an H100) even at smoke: a copy must
# not run from cache; the vector array fits in it.
_PLANS = {
    (True, "smoke"): (sweep((64, 128), 64, 4, 64), 16 * MiB, 16 * MiB, 64 * KiB, 0.05),
    (True, "default"): (sweep((512, 1024, 2048), 1024, 64, 256), 256 * MiB, 256 * MiB, 1 * MiB, 0.5),
    (True, "large"): (sweep((1024, 2048, 4096, 8192), 2048, 64, 512), 1 * GiB, 1 * GiB, 1 * MiB, 4.0),
    (False, "smoke"): (sweep((256, 512), 256, 8, 256), 256 * MiB, 64 * MiB, 4 * MiB, 0.05),
    (False, "default"): (sweep((2048, 4096, 8192), 4096, 32, 1024), 1 * GiB, 1 * GiB, 16 * MiB, 1.0),
    (False, "large"): (sweep((4096, 8192, 16384), 8192, 32, 2048), 4 * GiB, 2 * GiB, 16 * MiB, 4.0),
}


def plan_for(size: str, device: str, memory_bytes: int | None = None) -> ProbePlan:
    """The sweep for a size on a device kind; arrays shrink to fit 1/8 of ``memory_bytes``."""
    if size not in SIZES:
        raise UserError(f"unknown probe size {size!r}: accepted {', '.join(SIZES)}")
    shapes, arr, xfer, vec, max_call = _PLANS[(device == "cpu", size)]
    if memory_bytes:
        cap = max(MiB, (int(memory_bytes) // 8) // MiB * MiB)  # triad holds 3 arrays
        arr, xfer = min(arr, cap), min(xfer, cap)
    return ProbePlan(tuple(sorted(shapes, key=lambda s: s.flops)), arr, xfer, vec, max_call, dict(_TIMING[size]))

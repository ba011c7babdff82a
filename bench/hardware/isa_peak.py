"""The theoretical matmul peak of a CPU from its ISA: cores x clock x FLOP per cycle.

Beside the best rate any framework reached on a device (the measured roof), a user
choosing hardware wants to know what the silicon could do: on an Intel Xeon with AMX
the bf16 roof is many times what one framework's kernels reach. Per-cycle figures are
for one core with two full-width FMA pipes (the common server layout); they are an
upper bound, and where a vendor is known to split wide vector ops (AMD Zen 4 runs
AVX-512 on 256-bit pipes) or the clock is a guess, the ``assumptions`` say so. A
measured rate above this estimate means the assumptions are wrong (usually the clock:
VMs hide turbo frequencies), and the roofline says that rather than trusting either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# FLOP (or int8 OP) per cycle per core, by the widest unit the flags offer, per precision.
# Two FMA pipes: fp32 FMA = 2 FLOP per lane; 512-bit = 16 fp32 lanes -> 64 per cycle.
_FP32 = (("avx512f", 64, "AVX-512 FMA, 2 x 512-bit pipes"),
         ("fma", 32, "AVX2 FMA, 2 x 256-bit pipes"),
         ("avx", 16, "AVX, no FMA"),
         ("sse4_2", 8, "SSE"))
_BF16 = (("amx_bf16", 1024, "AMX-BF16 tile multiply (16x32 by 32x16 per 16 cycles)"),
         ("avx512_bf16", 128, "AVX512-BF16 dot products, 2 pipes"))
_FP16 = (("amx_fp16", 1024, "AMX-FP16 tile multiply"),
         ("avx512_fp16", 128, "AVX512-FP16 FMA, 2 pipes"))
_INT8 = (("amx_int8", 2048, "AMX-INT8 tile multiply"),
         ("avx512_vnni", 256, "AVX512-VNNI dot products, 2 pipes"),
         ("avx_vnni", 128, "AVX-VNNI dot products, 2 x 256-bit pipes"))
_ARM_FP32 = (("sve", None, "SVE (vector length unknown)"), ("asimd", 16, "NEON FMA, 2 x 128-bit pipes"))


@dataclass(frozen=True)
class IsaPeak:
    """Peak FLOP/s per precision from the ISA, with how each figure was derived."""

    flops_per_s: dict[str, float]
    per_cycle: dict[str, float]
    units: dict[str, str]
    cores: int
    clock_hz: float
    assumptions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"matmul_flops_per_s": dict(self.flops_per_s), "flop_per_cycle_per_core": dict(self.per_cycle),
                "units": dict(self.units), "cores": self.cores, "clock_hz": self.clock_hz,
                "assumptions": list(self.assumptions), "source": "isa estimate (cores x clock x FLOP/cycle)"}


def _best(flags: Mapping[str, Any], table) -> tuple[float, str] | None:
    for flag, per_cycle, unit in table:
        if flags.get(flag) and per_cycle:
            return float(per_cycle), unit
    return None


def isa_peak(cpu: Mapping[str, Any], threads: int | None = None) -> IsaPeak | None:
    """The ISA peak of the CPU block of a fingerprint (``hardware.cpu.cpu_info``), or None.

    ``threads``: the threads the frameworks use, when fewer than the cores.
    None when the flags or the clock are unknown: no number is better than a made-up one.
    """
    flags = cpu.get("flags") or {}
    if not any(flags.values()):
        return None
    freq = cpu.get("freq_mhz") or {}
    assumptions: list[str] = []
    clock_mhz = freq.get("max")
    if not clock_mhz:
        clock_mhz = freq.get("current")
        if clock_mhz:
            assumptions.append(f"clock: the current {clock_mhz:.0f} MHz (no maximum readable; turbo may be higher)")
    if not clock_mhz:
        return None
    cores = cpu.get("physical_cores") or cpu.get("affinity_cores") or cpu.get("logical_cores")
    for limit in (cpu.get("affinity_cores"), cpu.get("cgroup_cpu_limit"), threads):
        if limit and cores and limit < cores:
            cores = limit
    if not cores:
        return None
    cores = int(cores)
    vendor = str(cpu.get("vendor") or "")
    fp32 = _best(flags, _FP32) or _best(flags, _ARM_FP32)
    per_cycle: dict[str, float] = {}
    units: dict[str, str] = {}
    if fp32:
        per_cycle["fp32"], units["fp32"] = fp32
    for precision, table in (("bf16", _BF16), ("fp16", _FP16), ("int8", _INT8)):
        got = _best(flags, table)
        if got:
            per_cycle[precision], units[precision] = got
        elif precision in ("bf16", "fp16") and fp32:
            # no native unit: converted to fp32 and computed there at best
            per_cycle[precision], units[precision] = fp32[0], f"no native {precision} unit: fp32 rate"
    if "AMD" in vendor.upper() and flags.get("avx512f"):
        assumptions.append("AMD: Zen 4 runs 512-bit ops on 256-bit pipes (half these AVX-512 figures); "
                           "Zen 5 has full-width pipes")
    assumptions.append("two full-width FMA pipes per core; all cores at the clock above")
    clock_hz = float(clock_mhz) * 1e6
    return IsaPeak({p: cores * clock_hz * c for p, c in per_cycle.items()}, per_cycle, units, cores, clock_hz,
                   assumptions)

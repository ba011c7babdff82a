"""Roofs per device: the best rate any framework measured on it, beside the theoretical peak.

``xpubench probe`` measures each framework:device in its own process (``torch:cpu``,
``jax:cpu``). A device's roof is not what one framework reaches: on the same two
cores torch's fp32 matmul may reach half of JAX's, and held against torch's own
figure torch training shows an MFU above 1. So per physical device ("cpu", "cuda0")
and precision the roof is the best rate any framework or kernel measured there,
recorded with which one; beside it the theoretical peak (the ISA estimate for a CPU,
``xpubench.hardware.isa_peak``; the vendor spec sheet for a GPU/TPU), and warnings
where the two disagree or the probe ran on a busy machine.

Pure functions over a ceilings document (``xpubench.hardware.ceilings``); older
documents without device keys map their framework keys to devices.
"""

from __future__ import annotations

import math
from typing import Any

# Bandwidth kernels, best first when two measure the same rate.
MEMORY_KERNELS = ("read", "inplace", "triad", "copy")
ISA_CLOCK_NOTE = "the ISA estimate's clock is too low (VMs hide turbo)"


def _pos(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) and x > 0 else None


def entry_device(key: str, entry: dict) -> str | None:
    """The physical device a framework entry measured ("cpu", "cuda0", "tpu1")."""
    from xpubench.hardware.roofline import physical_device_key

    recorded = entry.get("device_key")
    if isinstance(recorded, str) and recorded:
        return recorded
    return physical_device_key(f"{key}:fp32")


def _best(candidates: list[tuple[float | None, str]]) -> tuple[float | None, str | None]:
    vals = [(v, src) for v, src in candidates if v is not None]
    if not vals:
        return None, None
    return max(vals, key=lambda t: t[0])


def _matmul_source(key: str, entry: dict, precision: str) -> str:
    d = (entry.get("matmul") or {}).get(precision) or {}
    shape = d.get("best_shape") or (f"{d['best_n']}^3" if d.get("best_n") else None)
    return ", ".join(x for x in (key, d.get("op"), shape) if x)


def _theoretical(device: str, name: str | None, machine: dict, threads: int | None) -> dict | None:
    if device == "cpu":
        from xpubench.hardware.isa_peak import isa_peak

        cpu = machine.get("cpu") if isinstance(machine.get("cpu"), dict) else None
        peak = isa_peak(cpu, threads) if cpu else None
        return peak.to_dict() if peak else None
    from xpubench.hardware import specsheet

    return specsheet.spec_peaks(name)


def _clock_warnings(roof: dict) -> list[str]:
    from xpubench.fmt import fmt_si

    theory = roof.get("theoretical") or {}
    peaks = theory.get("matmul_flops_per_s") or {}
    isa = "isa" in str(theory.get("source", ""))
    out = []
    for p, v in (roof.get("matmul_flops_per_s") or {}).items():
        t = _pos(peaks.get(p))
        if t and v > t:
            why = (ISA_CLOCK_NOTE if isa else "a timing or FLOP-count bug, or a spec-sheet row for another part")
            out.append(f"{p}: measured {fmt_si(v, 'FLOP/s')} ({roof['matmul_source'][p]}) is above the "
                       f"{'ISA estimate' if isa else 'spec-sheet peak'} {fmt_si(t, 'FLOP/s')}: {why}")
    return out


def device_roofs(ceilings: dict | None) -> dict[str, dict[str, Any]]:
    """Device key -> its roofs, from every framework entry of a ceilings document.

    Each roof: ``matmul_flops_per_s`` / ``vector_flops_per_s`` per precision and
    ``memory_bytes_per_s``, each with a ``*_source`` naming the framework and kernel;
    ``cache_bytes``; ``frameworks`` (the entries it came from); ``theoretical`` (ISA
    estimate or spec sheet, or None); ``busy`` (entries probed on a busy machine);
    ``warnings``.
    """
    entries = (ceilings or {}).get("ceilings")
    if not isinstance(entries, dict):
        return {}
    machine = (ceilings or {}).get("machine") if isinstance((ceilings or {}).get("machine"), dict) else {}
    grouped: dict[str, list[tuple[str, dict]]] = {}
    for key, entry in sorted(entries.items()):
        if isinstance(entry, dict):
            dev = entry_device(key, entry)
            if dev:
                grouped.setdefault(dev, []).append((key, entry))
    return {dev: _one_device(dev, group, machine) for dev, group in grouped.items()}


def _one_device(dev: str, group: list[tuple[str, dict]], machine: dict) -> dict[str, Any]:
    precisions = sorted({p for _, e in group for p in (e.get("matmul_flops_per_s") or {})})
    matmul, matmul_src = {}, {}
    for p in precisions:
        v, src = _best([(_pos((e.get("matmul_flops_per_s") or {}).get(p)), _matmul_source(k, e, p))
                        for k, e in group])
        if v is not None:
            matmul[p], matmul_src[p] = v, src
    vector, vector_src = {}, {}
    for p in sorted({p for _, e in group for p in (e.get("vector_flops_per_s") or {})}):
        v, src = _best([(_pos((e.get("vector_flops_per_s") or {}).get(p)),
                         f"{k}, {((e.get('vector') or {}).get(p) or {}).get('op', 'vector kernel')}") for k, e in group])
        if v is not None:
            vector[p], vector_src[p] = v, src
    memory, memory_src = _best([(_pos(e.get(f"{kind}_bytes_per_s")), f"{k}, {kind}")
                                for k, e in group for kind in MEMORY_KERNELS])
    caches = [int(c) for _, e in group if (c := _pos(e.get("cache_bytes")))]
    names = [e.get("device_name") for _, e in group if e.get("device_name")]
    threads = max((int(e["threads"]) for _, e in group if isinstance(e.get("threads"), int)), default=None)
    busy = [f"{k}: {e['busy']}" for k, e in group if e.get("busy")]
    roof: dict[str, Any] = {
        "name": names[0] if names else None,
        "frameworks": [k for k, _ in group],
        "matmul_flops_per_s": matmul, "matmul_source": matmul_src,
        "vector_flops_per_s": vector, "vector_source": vector_src,
        "memory_bytes_per_s": memory, "memory_source": memory_src,
        "cache_bytes": max(caches) if caches else None,
        "measured_at": max((str(e.get("measured_at")) for _, e in group if e.get("measured_at")), default=None),
        "theoretical": _theoretical(dev, names[0] if names else None, machine, threads),
        "busy": busy,
    }
    roof["warnings"] = _clock_warnings(roof) + [f"probed on a busy machine ({b}): roofs may be low" for b in busy]
    return roof


def vector_roof(roof: dict | None, precision: str | None) -> tuple[float | None, str | None]:
    """The element-wise roof at a precision: its own rate, or fp32's where that is higher
    (any precision can be computed by converting to fp32, as CPUs do)."""
    if not roof:
        return None, None
    rates, sources = roof.get("vector_flops_per_s") or {}, roof.get("vector_source") or {}
    cands = [(_pos(rates.get(p)), f"{sources.get(p)} ({p})") for p in dict.fromkeys((precision, "fp32")) if p]
    return _best(cands)

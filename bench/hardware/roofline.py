"""Roofline arithmetic for one measurement: pure functions, no I/O, no framework.

For a record with FLOPs and/or bytes per step and a median step time:

- achieved FLOP/s and bytes/s, arithmetic intensity = FLOPs / bytes;
- the roofline bound ``min(peak_flops, intensity * bandwidth)`` from the ceilings
  ``xpubench probe`` measured on this machine (the spec sheet stands in only where
  nothing was measured for that device), which side binds, and the fraction of the
  bound reached;
- for training cases, MFU (PaLM, appendix B: model FLOPs per step, no recompute,
  over the median step time) against the measured and the spec-sheet peak.

Anything that cannot be known is ``None``, never 0.
"""

from __future__ import annotations

import math
from typing import Any

from xpubench.results.view import Measurement, split_backend

CEILINGS_NONE = "none (run xpubench probe)"
FIELDS = ("achieved_flops_per_s", "achieved_bytes_per_s", "intensity", "peak_flops_per_s",
          "peak_bytes_per_s", "bound_flops_per_s", "bound_kind", "fraction_of_bound",
          "mfu_measured", "mfu_spec", "ceilings_source", "spec_peak_flops_per_s",
          "spec_peak_bytes_per_s", "spec_name")
MFU_SUITES = ("training",)


def _pos(x: Any) -> float | None:
    """A usable positive finite number, else None (0 and NaN are not measurements)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) and x > 0 else None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b is not None and b > 0 else None


def device_key(backend: str) -> str | None:
    """'torch:cuda1:bf16' -> 'torch:cuda1'; 'torch:cuda0:fp32' and 'torch:cuda:fp32' -> 'torch:cuda'."""
    p = split_backend(str(backend).strip().lower())
    if not p.framework or not p.device_kind:
        return None
    return f"{p.framework}:{p.device_kind}{p.device_index or ''}"


def backend_precision(record: dict) -> str | None:
    p = record.get("precision")
    if isinstance(p, str) and p:
        return p
    return split_backend(str(record.get("backend", "")).strip().lower()).precision or None


def device_ceilings(ceilings: dict | None, key: str | None) -> dict | None:
    """The measured entry for one device (``ceilings["ceilings"][key]``), or None."""
    if not ceilings or not key:
        return None
    entries = ceilings.get("ceilings")
    entry = entries.get(key) if isinstance(entries, dict) else None
    return entry if isinstance(entry, dict) else None


def memory_bandwidth(entry: dict | None) -> float | None:
    """The device's memory-bandwidth ceiling: the best of its measured copy and triad.

    Both count only the bytes the kernel must move (read + write); whichever runs
    faster on this machine is the rate a streaming kernel can demonstrably reach.
    """
    if not entry:
        return None
    vals = [v for v in (_pos(entry.get("copy_bytes_per_s")), _pos(entry.get("triad_bytes_per_s"))) if v]
    return max(vals) if vals else None


def matmul_peak(peaks: dict | None, precision: str | None) -> float | None:
    """The matmul peak that applies to a precision mode (autocast bf16/fp16 -> that dtype)."""
    if not peaks or not precision:
        return None
    return _pos(peaks.get(precision))


def roofline_fields(record: dict, ceilings: dict | None, spec_peaks: dict | None) -> dict[str, Any]:
    """The ``roofline`` block of one measurement.

    ``ceilings``: the ceilings document (``xpubench.hardware.ceilings``: {"ceilings": {"torch:cpu":
    {...}}, "measured_at": ...}) or None. ``spec_peaks``: a spec-sheet row
    (``xpubench.hardware.specsheet.spec_peaks``) for the record's device, or None.
    """
    out: dict[str, Any] = {k: None for k in FIELDS}
    m = Measurement.of(record)
    key = device_key(m.backend)
    precision = backend_precision(record)
    entry = device_ceilings(ceilings, key)

    spec_flops = matmul_peak((spec_peaks or {}).get("matmul_flops_per_s"), precision)
    spec_bytes = _pos((spec_peaks or {}).get("memory_bytes_per_s"))
    out.update(spec_peak_flops_per_s=spec_flops, spec_peak_bytes_per_s=spec_bytes,
               spec_name=(spec_peaks or {}).get("name"))

    if entry is not None:
        peak_flops = matmul_peak(entry.get("matmul_flops_per_s"), precision)
        peak_bytes = memory_bandwidth(entry)
        when = entry.get("measured_at") or (ceilings or {}).get("measured_at")
        out["ceilings_source"] = f"measured (xpubench probe{', ' + when if when else ''})"
    elif spec_peaks:
        peak_flops, peak_bytes = spec_flops, spec_bytes
        out["ceilings_source"] = f"spec sheet: {spec_peaks.get('name')} ({spec_peaks.get('source')})"
    else:
        peak_flops = peak_bytes = None
        out["ceilings_source"] = CEILINGS_NONE
    out.update(peak_flops_per_s=peak_flops, peak_bytes_per_s=peak_bytes)

    median = m.median if m.ok else None
    flops, nbytes = m.flops_per_step, m.bytes_per_step
    achieved_flops = _div(flops, median)
    achieved_bytes = _div(nbytes, median)
    intensity = _div(flops, nbytes)
    out.update(achieved_flops_per_s=achieved_flops, achieved_bytes_per_s=achieved_bytes, intensity=intensity)

    if achieved_flops is not None and intensity is not None:
        if peak_flops is not None and peak_bytes is not None:
            memory_roof = intensity * peak_bytes
            bound = min(peak_flops, memory_roof)
            out.update(bound_flops_per_s=bound, fraction_of_bound=achieved_flops / bound,
                       bound_kind="compute" if peak_flops <= memory_roof else "memory")
    elif achieved_flops is not None and peak_flops is not None:  # bytes unknown: compute roof only
        out.update(bound_flops_per_s=peak_flops, bound_kind="compute",
                   fraction_of_bound=achieved_flops / peak_flops)
    elif achieved_bytes is not None and peak_bytes is not None:  # no FLOPs: pure data movement
        out.update(bound_kind="memory", fraction_of_bound=achieved_bytes / peak_bytes)

    if m.suite in MFU_SUITES and achieved_flops is not None:
        measured_peak = matmul_peak((entry or {}).get("matmul_flops_per_s"), precision)
        out.update(mfu_measured=_div(achieved_flops, measured_peak), mfu_spec=_div(achieved_flops, spec_flops))
    return out


# --------------------------------------------------------------------------- whole runs
def device_names(run_doc: dict, ceilings: dict | None = None) -> dict[str, str]:
    """Device key -> the device's name as the framework or NVML reported it.

    Sources, best first: the worker's setup facts (``run.backend_info``: torch's
    ``device_name``, JAX's ``device_kind``), the probe's entry, then the machine's
    accelerator list (NVML names; ``TPU_ACCELERATOR_TYPE`` on TPU VMs).
    """
    names: dict[str, str] = {}
    for spec, info in ((run_doc.get("run") or {}).get("backend_info") or {}).items():
        key = device_key(spec)
        if key and isinstance(info, dict) and not key.endswith(":cpu"):
            name = info.get("device_name") or info.get("device_kind")
            if name:
                names.setdefault(key, str(name))
    for key, entry in ((ceilings or {}).get("ceilings") or {}).items():
        if isinstance(entry, dict) and entry.get("device_name") and not key.endswith(":cpu"):
            names.setdefault(key, str(entry["device_name"]))
    accs = (run_doc.get("machine") or {}).get("accelerators") or []
    for m in run_doc.get("measurements") or []:
        key = device_key(m.get("backend", ""))
        if not key or key in names or key.endswith(":cpu"):
            continue
        parts = split_backend(key)
        idx = parts.device_index or 0
        kind = "tpu" if parts.device_kind == "tpu" else "cuda"
        same = [a for a in accs if isinstance(a, dict) and a.get("kind") == kind]
        hit = next((a for a in same if a.get("index") == idx), same[0] if kind == "tpu" and same else None)
        if hit and hit.get("name"):
            names[key] = str(hit["name"])
    return names


def attach_roofline(run_doc: dict, ceilings: dict | None) -> dict:
    """Embed the ceilings in a run document and add a ``roofline`` block to every measurement.

    ``ceilings``: what ``xpubench.hardware.ceilings.load_ceilings`` returned for this machine, or
    None (then bounds come from the spec sheet where a GPU/TPU name matches, else
    they are null with ``ceilings_source`` saying to run ``xpubench probe``).
    Changes ``run_doc`` in place and returns it.
    """
    from xpubench.hardware import specsheet

    run_doc["ceilings"] = ceilings
    names = device_names(run_doc, ceilings)
    for m in run_doc.get("measurements") or []:
        if not isinstance(m, dict):
            continue
        key = device_key(m.get("backend", ""))
        spec = specsheet.spec_peaks(names.get(key)) if key else None
        m["roofline"] = roofline_fields(m, ceilings, spec)
    return run_doc

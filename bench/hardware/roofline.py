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


def ceilings_key(backend: str) -> str | None:
    """The ceilings file's key of a backend: 'torch:cuda1:bf16' -> 'torch:cuda1';
    'torch:cuda0:fp32' and 'torch:cuda:fp32' -> 'torch:cuda'."""
    p = split_backend(str(backend).strip().lower())
    if not p.framework or not p.device_kind:
        return None
    return f"{p.framework}:{p.device_kind}{p.device_index or ''}"


device_key = ceilings_key  # the name report/roofline.py imports


# Runs written before backends recorded their device_key (torch and jax only):
# device name in the spec -> the device kind of the fingerprint's accelerator list.
_LEGACY_DEVICE_KINDS = {"cpu": "cpu", "cuda": "cuda", "gpu": "cuda", "tpu": "tpu"}


def physical_device_key(backend: str, info: dict | None = None) -> str | None:
    """The device a backend ran on, framework-free: "cpu", "cuda0", "tpu1".

    From the worker's setup facts (``device_key``, recorded by the backend); for older
    runs, from the spec's device name where it is one torch or jax used; else None.
    """
    recorded = (info or {}).get("device_key")
    if isinstance(recorded, str) and recorded:
        return recorded
    parts = split_backend(str(backend).strip().lower())
    kind = _LEGACY_DEVICE_KINDS.get(parts.device_kind)
    if kind is None or kind == "cpu":
        return kind
    return f"{kind}{parts.device_index or 0}"


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
    key = ceilings_key(m.backend)
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
    """Ceilings key -> the accelerator's name as the framework or NVML reported it.

    Sources, best first: the worker's setup facts (``run.backend_info``: the backend's
    ``device_name``; JAX's ``device_kind`` in older runs), the probe's entry, then the
    machine's accelerator list (NVML names; ``TPU_ACCELERATOR_TYPE`` on TPU VMs), matched
    by the device the backend ran on. CPUs are left out (no spec-sheet rows).
    """
    names: dict[str, str] = {}
    infos = (run_doc.get("run") or {}).get("backend_info") or {}
    infos = {str(k): v for k, v in infos.items() if isinstance(v, dict)} if isinstance(infos, dict) else {}
    for spec, info in infos.items():
        key = ceilings_key(spec)
        if key and physical_device_key(spec, info) != "cpu":
            name = info.get("device_name") or info.get("device_kind")
            if name:
                names.setdefault(key, str(name))
    for key, entry in ((ceilings or {}).get("ceilings") or {}).items():
        if isinstance(entry, dict) and entry.get("device_name") and not key.endswith(":cpu"):
            names.setdefault(key, str(entry["device_name"]))
    by_key: dict[str, str] = {}  # "cuda1" -> its name
    by_kind: dict[str, set[str]] = {}  # "tpu" -> the names of every TPU chip
    for a in (run_doc.get("machine") or {}).get("accelerators") or []:
        if isinstance(a, dict) and a.get("kind") and a.get("name"):
            by_key.setdefault(f"{a['kind']}{a.get('index', 0)}", str(a["name"]))
            by_kind.setdefault(str(a["kind"]), set()).add(str(a["name"]))
    for m in run_doc.get("measurements") or []:
        spec = str(m.get("backend", ""))
        key = ceilings_key(spec)
        dev = physical_device_key(spec, infos.get(spec))
        if not key or key in names or dev in ("cpu", None):
            continue
        # by index; else the one name every device of that kind shares (TPU chips of a slice)
        same = by_kind.get(dev.rstrip("0123456789"), set())
        hit = by_key.get(dev) or (next(iter(same)) if len(same) == 1 else None)
        if hit:
            names[key] = hit
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
        key = ceilings_key(m.get("backend", ""))
        spec = specsheet.spec_peaks(names.get(key)) if key else None
        m["roofline"] = roofline_fields(m, ceilings, spec)
    return run_doc

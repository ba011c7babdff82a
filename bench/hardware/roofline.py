"""Roofline arithmetic for one measurement: pure functions, no I/O, no framework.

For a record with FLOPs and/or bytes per step and a median step time:

- achieved FLOP/s and bytes/s, arithmetic intensity = FLOPs / bytes;
- the roofline bound ``min(compute roof, intensity * bandwidth)``. Roofs are per
  device (the best rate any framework measured there, ``device_roofs``) and by kind
  of work: matmul/conv FLOPs against the matmul roof of the precision, element-wise
  and reduction FLOPs (``flops_kind == "vector"``) against the vector roof. The
  vendor spec sheet stands in only where nothing was measured for that device;
- whether the working set fits in the device's last-level cache (then the memory
  roof, a DRAM figure, does not bind it, and the record says ``cache_resident``);
- for training cases, MFU (PaLM, appendix B: model FLOPs per step, no recompute,
  over the median step time) against the measured, spec-sheet and theoretical peak;
- ``warnings``: a fraction of the bound or an MFU above 1 is not a hardware limit
  but a sign something is off, and each says its likely cause
  (``xpubench.hardware.roofline_warnings``).

Anything that cannot be known is ``None``, never 0.
"""

from __future__ import annotations

import math
from typing import Any

from xpubench.hardware.device_roofs import device_roofs, vector_roof
from xpubench.results.view import split_backend

CEILINGS_NONE = "none (run xpubench probe)"
FIELDS = ("achieved_flops_per_s", "achieved_bytes_per_s", "intensity", "flops_kind", "peak_flops_per_s",
          "peak_source", "peak_bytes_per_s", "bytes_source", "bound_flops_per_s", "bound_kind",
          "fraction_of_bound", "mfu_measured", "mfu_spec", "mfu_theoretical", "ceilings_source",
          "spec_peak_flops_per_s", "spec_peak_bytes_per_s", "spec_name", "theoretical_peak_flops_per_s",
          "theoretical_source", "working_set_bytes", "cache_bytes", "cache_resident", "above_roof", "warnings")
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


def matmul_peak(peaks: dict | None, precision: str | None) -> float | None:
    """The matmul peak that applies to a precision mode (autocast bf16/fp16 -> that dtype)."""
    if not peaks or not precision:
        return None
    return _pos(peaks.get(precision))


def compute_roof(roof: dict | None, kind: str, precision: str | None) -> tuple[float | None, str | None]:
    """(FLOP/s, source) of the roof a kind of FLOPs is held against on a device."""
    if not roof:
        return None, None
    if kind == "vector":
        return vector_roof(roof, precision)
    peak = matmul_peak(roof.get("matmul_flops_per_s"), precision)
    return peak, (roof.get("matmul_source") or {}).get(precision) if peak else None


def roofline_fields(record: dict, ceilings: dict | None, spec_peaks: dict | None,
                    device: str | None = None, roofs: dict | None = None) -> dict[str, Any]:
    """The ``roofline`` block of one measurement.

    ``ceilings``: the ceilings document (``xpubench.hardware.ceilings``) or None.
    ``spec_peaks``: a spec-sheet row (``xpubench.hardware.specsheet.spec_peaks``) for the
    record's device, or None. ``device``: the physical device it ran on (default: from
    its backend); ``roofs``: ``device_roofs(ceilings)``, when the caller has it already.
    """
    from xpubench.hardware.roofline_warnings import warnings_for

    out: dict[str, Any] = {k: None for k in FIELDS}
    precision = backend_precision(record)
    device = device or physical_device_key(record.get("backend", ""))
    roof = (roofs if roofs is not None else device_roofs(ceilings)).get(device or "")
    # records written before FLOPs had a kind were all held against the matmul roof
    kind = record.get("flops_kind") or "matmul"

    spec_flops = matmul_peak((spec_peaks or {}).get("matmul_flops_per_s"), precision)
    spec_bytes = _pos((spec_peaks or {}).get("memory_bytes_per_s"))
    out.update(spec_peak_flops_per_s=spec_flops, spec_peak_bytes_per_s=spec_bytes,
               spec_name=(spec_peaks or {}).get("name"), flops_kind=kind if record.get("flops_per_step") else None)

    if roof is not None:
        peak_flops, peak_source = compute_roof(roof, kind, precision)
        peak_bytes, bytes_source = _pos(roof.get("memory_bytes_per_s")), roof.get("memory_source")
        when = roof.get("measured_at") or (ceilings or {}).get("measured_at")
        out["ceilings_source"] = f"measured (xpubench probe{', ' + when if when else ''}; best of {', '.join(roof['frameworks'])})"
        theory = roof.get("theoretical") or {}
        # element-wise work runs on the vector units: their peak is the fp32 FMA rate
        theory_precision = "fp32" if kind == "vector" else precision
        out.update(theoretical_peak_flops_per_s=matmul_peak(theory.get("matmul_flops_per_s"), theory_precision),
                   theoretical_source=theory.get("source") or theory.get("name"), cache_bytes=roof.get("cache_bytes"))
    elif spec_peaks:
        # the sheet lists matmul peaks only: element-wise work is held against memory alone
        peak_flops = spec_flops if kind == "matmul" else None
        peak_bytes = spec_bytes
        peak_source = bytes_source = f"spec sheet: {spec_peaks.get('name')}"
        out["ceilings_source"] = f"spec sheet: {spec_peaks.get('name')} ({spec_peaks.get('source')})"
        out.update(theoretical_peak_flops_per_s=spec_flops, theoretical_source=out["ceilings_source"])
    else:
        peak_flops = peak_bytes = peak_source = bytes_source = None
        out["ceilings_source"] = CEILINGS_NONE
    out.update(peak_flops_per_s=peak_flops, peak_bytes_per_s=peak_bytes,
               peak_source=peak_source if peak_flops else None, bytes_source=bytes_source if peak_bytes else None)

    median = _pos((record.get("time_s") or {}).get("median")) if record.get("status", "ok") == "ok" else None
    flops = _pos(record.get("flops_per_step"))
    nbytes = _pos(record.get("bytes_per_step"))
    achieved_flops = _div(flops, median)
    achieved_bytes = _div(nbytes, median)
    intensity = _div(flops, nbytes)
    out.update(achieved_flops_per_s=achieved_flops, achieved_bytes_per_s=achieved_bytes, intensity=intensity)
    out.update(_bound(achieved_flops, achieved_bytes, intensity, peak_flops, peak_bytes,
                      memory_alone=kind == "vector"))

    working_set = _pos(record.get("working_set_bytes")) or nbytes
    out["working_set_bytes"] = working_set
    if working_set is not None and _pos(out["cache_bytes"]) is not None:
        out["cache_resident"] = working_set <= out["cache_bytes"]

    if record.get("suite") in MFU_SUITES and achieved_flops is not None:
        measured_peak, _ = compute_roof(roof, "matmul", precision)
        out.update(mfu_measured=_div(achieved_flops, measured_peak), mfu_spec=_div(achieved_flops, spec_flops),
                   mfu_theoretical=_div(achieved_flops, out["theoretical_peak_flops_per_s"]))
    out["warnings"] = warnings_for(record, out, roof)
    out["above_roof"] = any(_pos(out[k]) is not None and out[k] > 1.0 for k in ("fraction_of_bound", "mfu_measured"))
    return out


def _bound(achieved_flops: float | None, achieved_bytes: float | None, intensity: float | None,
           peak_flops: float | None, peak_bytes: float | None, memory_alone: bool = False) -> dict[str, Any]:
    """bound_flops_per_s, bound_kind and fraction_of_bound from what is known.

    ``memory_alone``: element-wise work with no vector roof measured is held against
    the memory roof alone; a matmul with no matmul roof has no bound.
    """
    if achieved_flops is not None and intensity is not None:
        memory_roof = intensity * peak_bytes if peak_bytes is not None else None
        roofs = [r for r in (peak_flops, memory_roof) if r is not None]
        if not roofs or (peak_flops is None and not memory_alone):
            return {}
        bound = min(roofs)
        return {"bound_flops_per_s": bound, "fraction_of_bound": achieved_flops / bound,
                "bound_kind": "compute" if peak_flops is not None and bound == peak_flops else "memory"}
    if achieved_flops is not None and peak_flops is not None:  # bytes unknown: compute roof only
        return {"bound_flops_per_s": peak_flops, "bound_kind": "compute",
                "fraction_of_bound": achieved_flops / peak_flops}
    if achieved_bytes is not None and peak_bytes is not None:  # no FLOPs: pure data movement
        return {"bound_kind": "memory", "fraction_of_bound": achieved_bytes / peak_bytes}
    return {}


# --------------------------------------------------------------------------- whole runs
def device_names(run_doc: dict, ceilings: dict | None = None) -> dict[str, str]:
    """Ceilings key -> the accelerator's name as the framework or NVML reported it.

    Sources, best first: the worker's setup facts (``run.backend_info``: the backend's
    ``device_name``; JAX's ``device_kind`` in older runs), the probe's entry, then the
    machine's accelerator list (NVML names; ``TPU_ACCELERATOR_TYPE`` on TPU VMs), matched
    by the device the backend ran on. CPUs are left out (no spec-sheet rows).
    """
    names: dict[str, str] = {}
    infos = _backend_infos(run_doc)
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


def _backend_infos(run_doc: dict) -> dict[str, dict]:
    infos = (run_doc.get("run") or {}).get("backend_info") or {}
    return {str(k): v for k, v in infos.items() if isinstance(v, dict)} if isinstance(infos, dict) else {}


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
    infos = _backend_infos(run_doc)
    roofs = device_roofs(ceilings)
    for m in run_doc.get("measurements") or []:
        if not isinstance(m, dict):
            continue
        backend = str(m.get("backend", ""))
        key = ceilings_key(backend)
        spec = specsheet.spec_peaks(names.get(key)) if key else None
        m["roofline"] = roofline_fields(m, ceilings, spec, physical_device_key(backend, infos.get(backend)), roofs)
    return run_doc

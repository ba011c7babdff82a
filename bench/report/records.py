"""Values derived from one measurement record, and its text for hover and tables.

Every string that comes from a results file goes through :func:`esc` before it
reaches plotly (plotly renders a few HTML-like tags in text, so ``<`` must
arrive as ``&lt;``, which plotly shows as a literal ``<``) or the HTML pages.
"""

from __future__ import annotations

import html
import math
from typing import Any, Mapping

from xpubench.results.files import FAILED_STATUSES

REDUCED_PRECISIONS_ORDER = ("tf32", "bf16", "fp16", "fp8", "int8", "int4")

Record = Mapping[str, Any]


def esc(value: Any) -> str:
    """Text from a results file, made inert for HTML text and plotly's text renderer.

    Plotly decodes ``&lt; &gt; &amp;`` (and numeric entities) back to characters
    for display but not ``&quot;``, so quotes stay as they are here; use
    :func:`attr` for HTML attribute values.
    """
    return html.escape(str(value), quote=False)


def attr(value: Any) -> str:
    """Text from a results file, made safe inside a double-quoted HTML attribute."""
    return html.escape(str(value), quote=True)


def num(x: Any) -> float | None:
    """A finite float, or None (JSON null, NaN, strings, booleans)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def short_num(x: float | None, digits: int = 5) -> float | None:
    """Round for embedding: the pages carry 5 significant digits, not 17."""
    if x is None:
        return None
    return float(f"{x:.{digits}g}")


# --------------------------------------------------------------------------- identity
def backend_parts(backend: str) -> tuple[str, str, str]:
    parts = (str(backend).split(":") + ["", "", ""])[:3]
    return parts[0], parts[1], parts[2]


def status(m: Record) -> str:
    return str(m.get("status") or "ok")


def is_ok(m: Record) -> bool:
    return status(m) == "ok"


def case_name(m: Record) -> str:
    """The case without a ``suite/`` prefix (some writers include it)."""
    case = str(m.get("case", ""))
    suite = str(m.get("suite", ""))
    return case[len(suite) + 1:] if suite and case.startswith(suite + "/") else case


def case_label(m: Record, with_mode: bool = True) -> str:
    mode = m.get("mode")
    return f"{case_name(m)} · {mode}" if with_mode and mode else case_name(m)


def unit(m: Record) -> str:
    return str(m.get("unit") or "units")


def singular(u: str) -> str:
    """``samples`` -> ``sample`` (for "J per sample"); words that are not plurals stay."""
    return u[:-1] if len(u) > 3 and u.endswith("s") and not u.endswith("ss") else u


# --------------------------------------------------------------------------- derived values
def median_time(m: Record) -> float | None:
    t = m.get("time_s")
    return num(t.get("median")) if isinstance(t, dict) else None


def time_ci(m: Record) -> tuple[float, float] | None:
    t = m.get("time_s")
    ci = t.get("ci95") if isinstance(t, dict) else None
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        lo, hi = num(ci[0]), num(ci[1])
        if lo is not None and hi is not None and 0 < lo <= hi:
            return lo, hi
    return None


def units_per_step(m: Record) -> float | None:
    u = num(m.get("units_per_step"))
    if u is None:
        thr, med = num(m.get("throughput_per_s")), median_time(m)
        if thr is not None and med is not None:
            u = thr * med
    return u


def throughput(m: Record) -> float | None:
    """Units of work per second (stored value, else units / median)."""
    thr = num(m.get("throughput_per_s"))
    if thr is None:
        u, med = num(m.get("units_per_step")), median_time(m)
        if u is not None and med:
            thr = u / med
    return thr if thr and thr > 0 else None


def throughput_ci(m: Record) -> tuple[float, float] | None:
    """CI of the throughput from the CI of the median time (slow end -> low throughput)."""
    ci, u = time_ci(m), units_per_step(m)
    if ci is None or not u:
        return None
    return u / ci[1], u / ci[0]


def peak_memory(m: Record) -> tuple[float, str, str] | None:
    """(bytes, "device" | "host", method) of the headline peak: device when measured, else host."""
    mem = m.get("memory")
    if not isinstance(mem, dict):
        return None
    dev = num(mem.get("device_peak_bytes"))
    if dev is not None and dev > 0:
        return dev, "device", str(mem.get("device_method") or mem.get("method") or "")
    host = num(mem.get("host_peak_bytes"))
    if host is not None and host > 0:
        return host, "host", str(mem.get("host_method") or mem.get("method") or "")
    return None


def is_estimate(block: Any) -> bool:
    return isinstance(block, dict) and (block.get("method") == "estimate" or block.get("is_estimate") is True)


def energy_per_unit(m: Record) -> tuple[float, str, bool] | None:
    """(joules per unit of work, method, is_estimate)."""
    e = m.get("energy")
    if not isinstance(e, dict):
        return None
    per_unit = num(e.get("joules_per_unit"))
    if per_unit is None:
        per_step, u = num(e.get("joules_per_step")), units_per_step(m)
        per_unit = per_step / u if per_step is not None and u else None
    if per_unit is None or per_unit <= 0:
        return None
    return per_unit, str(e.get("method") or "unknown"), is_estimate(e)


def roofline_block(m: Record) -> dict[str, Any] | None:
    """The record's ``roofline`` block (``xpubench.hardware.roofline.FIELDS``), or None."""
    rf = m.get("roofline")
    return rf if isinstance(rf, dict) else None


def ceilings_kind(rf: Mapping[str, Any] | None) -> str:
    """``measured`` | ``spec`` | ``none``: where a roofline block's peaks came from."""
    src = str((rf or {}).get("ceilings_source") or "")
    if src.startswith("measured"):
        return "measured"
    if src.startswith("spec"):
        return "spec"
    return "none"


# --------------------------------------------------------------------------- formatting
DASH = "\u2013"  # shown where a value is unknown (never 0)


def fmt_pct(x: float | None) -> str:
    """A fraction as a percent with 3 significant digits (``0.612`` -> ``61.2%``); en dash if unknown."""
    x = num(x)
    if x is None:
        return DASH
    p = x * 100
    return f"{p:.0f}%" if abs(p) >= 100 else f"{p:.3g}%"


def fmt_si(x: float | None, unit: str = "") -> str:
    """``1.9e12, "FLOP/s"`` -> ``1.9 TFLOP/s``; en dash if unknown."""
    x = num(x)
    if x is None:
        return DASH
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale * 0.9995:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def roofline_lines(m: Record) -> list[str]:
    """Roofline and MFU numbers of a record in two or three short lines (raw text)."""
    rf = roofline_block(m)
    if rf is None:
        return []
    af, ab, ai = num(rf.get("achieved_flops_per_s")), num(rf.get("achieved_bytes_per_s")), num(rf.get("intensity"))
    if af is None and ab is None:
        return []
    achieved = " · ".join(x for x in (fmt_si(af, "FLOP/s") if af is not None else "",
                                      fmt_si(ab, "B/s") if ab is not None else "",
                                      f"{ai:.3g} FLOP/B" if ai is not None else "") if x)
    lines = [f"roofline: {achieved}"]
    frac = num(rf.get("fraction_of_bound"))
    if frac is not None:
        kind = rf.get("bound_kind") or "unknown"
        bound = num(rf.get("bound_flops_per_s"))
        lines.append(f"efficiency: {fmt_pct(frac)} of the {kind} bound"
                     + (f" ({fmt_si(bound, 'FLOP/s')})" if bound is not None else "")
                     + f" · ceilings: {rf.get('ceilings_source') or 'unknown'}")
    else:
        lines.append(f"efficiency: unknown · ceilings: {rf.get('ceilings_source') or 'unknown'}")
    mm, ms = num(rf.get("mfu_measured")), num(rf.get("mfu_spec"))
    if mm is not None or ms is not None:
        spec = f" ({rf.get('spec_name')})" if rf.get("spec_name") else ""
        lines.append(f"MFU: {fmt_pct(mm)} of the measured peak · {fmt_pct(ms)} of the spec peak{spec}")
    return lines


def fmt_time(s: float | None) -> str:
    if s is None:
        return "n/a"
    a = abs(s)
    for scale, u in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if a >= scale:
            return f"{s / scale:.4g} {u}"
    return f"{s / 1e-9:.4g} ns"


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "n/a"
    for scale, u in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(b) >= scale:
            return f"{b / scale:.4g} {u}"
    return f"{b:.0f} B"


def fmt_num(x: float | None, suffix: str = "") -> str:
    return "n/a" if x is None else f"{x:.4g}{suffix}"


def fmt_value(key: str, v: Any) -> str:
    """Format one field by what its name says it holds (``_s`` seconds, ``_bytes`` ...)."""
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else "null"
    x = num(v)
    if x is None:
        if isinstance(v, (list, tuple)):
            if v and len(v) <= 4 and all(num(i) is not None for i in v):
                return "[" + ", ".join(fmt_value(key, i) for i in v) + "]"
            return f"[{len(v)} items]"
        text = str(v)
        return text if len(text) <= 120 else text[:117] + "..."
    k = key.lower()
    if k.endswith("_bytes") or k == "bytes":
        return fmt_bytes(x)
    if k.endswith("_per_s"):
        return fmt_num(x, "/s")
    if k.endswith("_s") or k in ("median", "mean", "min", "max", "iqr", "stdev", "q1", "q3", "ci95"):
        return fmt_time(x)
    if k.endswith("_w"):
        return fmt_num(x, " W")
    if k.startswith("joules"):
        return fmt_num(x, " J")
    if k.startswith("fraction") or k.endswith("fraction") or k in ("mfu", "drift"):
        return f"{x:.3g} ({x:.1%})"
    return fmt_num(x)


# Shown first, in this order and format, by the record view (``roofline`` as the
# short lines of :func:`roofline_lines`); every other field (including ones added
# by later versions, e.g. ``mfu``) follows flattened, so new numbers appear
# without code changes.
_HEADLINE = {"suite", "case", "name", "params", "mode", "backend", "framework", "device", "precision",
             "status", "reason", "time_s", "unit", "units_per_step", "throughput_per_s", "memory",
             "energy", "traceback", "size", "roofline"}
_SKIP = {"samples", "traceback", "flags", "thread_env"}


def flatten(value: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """``[(dotted.key, formatted value)]`` of a JSON value, numbers and short text only."""
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        if depth >= 3:
            return [(prefix, f"{{{len(value)} fields}}")]
        for k, v in value.items():
            if k in _SKIP or k.startswith("_"):
                continue
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
        return out
    key = prefix.rsplit(".", 1)[-1]
    return [(prefix, fmt_value(key, value))]


def record_lines(m: Record, *, machine_id: str | None = None, run_label: str | None = None,
                 full: bool = True) -> list[str]:
    """Human lines describing a measurement (raw text; escape before display)."""
    t = m.get("time_s") if isinstance(m.get("time_s"), dict) else {}
    lines = [f"{case_name(m)} · {m.get('mode', '')}", f"backend: {m.get('backend', '')}"]
    if machine_id is not None:
        lines.append(f"machine: {machine_id}")
    if run_label:
        lines.append(f"run: {run_label}")
    st = status(m)
    lines.append(f"status: {st}" + (f" — {m.get('reason')}" if m.get("reason") else ""))
    if t:
        ci = time_ci(m)
        lines.append(f"median: {fmt_time(num(t.get('median')))}"
                     + (f"  (95% CI {fmt_time(ci[0])} – {fmt_time(ci[1])})" if ci else "  (no CI)"))
        rounds = t.get("rounds")
        ipr = t.get("iterations_per_round")
        lines.append(f"rounds: {rounds if rounds is not None else 'n/a'}"
                     + (f" × {ipr} it" if ipr else "")
                     + (f" · stop: {t.get('stop_reason')}" if t.get("stop_reason") else "")
                     + (f" · IQR {fmt_time(num(t.get('iqr')))}" if num(t.get("iqr")) is not None else ""))
    thr = throughput(m)
    if thr is not None:
        ci = throughput_ci(m)
        lines.append(f"throughput: {thr:.4g} {unit(m)}/s"
                     + (f"  (95% CI {ci[0]:.4g} – {ci[1]:.4g})" if ci else ""))
    if m.get("units_per_step") is not None:
        lines.append(f"work: {fmt_num(num(m.get('units_per_step')))} {unit(m)} per step")
    mem = m.get("memory")
    if isinstance(mem, dict):
        parts = []
        for kind in ("device", "host"):
            b = num(mem.get(f"{kind}_peak_bytes"))
            meth = mem.get(f"{kind}_method") or (mem.get("method") if kind == "device" else None)
            if b is not None or meth:
                parts.append(f"{kind} peak {fmt_bytes(b)}" + (f" ({meth})" if meth else ""))
        if parts:
            lines.append("memory: " + " · ".join(parts))
    e = m.get("energy")
    if isinstance(e, dict):
        per_unit = energy_per_unit(m)
        tag = " — ESTIMATE, not measured" if is_estimate(e) else ""
        lines.append(f"energy: {fmt_num(num(e.get('joules_per_step')), ' J')}/step"
                     + (f" · {per_unit[0]:.4g} J/{singular(unit(m))}" if per_unit else "")
                     + (f" · {fmt_num(num(e.get('avg_power_w')), ' W')} avg" if num(e.get("avg_power_w")) else "")
                     + f" (method: {e.get('method', 'unknown')}){tag}")
    lines += roofline_lines(m)
    if not full:
        return lines
    extras: list[tuple[str, str]] = []
    for k in ("first_call_s", "warmup_s", "compile_s", "error_vs_fp32"):
        if k in m:
            extras.append((k, fmt_value(k, m[k])))
    for k, v in m.items():
        if k in _HEADLINE or k in ("first_call_s", "warmup_s", "compile_s", "error_vs_fp32"):
            continue
        extras += flatten(v, k)
    for k, v in t.items():
        if k not in ("median", "ci95", "rounds", "iterations_per_round", "stop_reason", "iqr", "samples"):
            extras += flatten(v, f"time_s.{k}")
    if isinstance(m.get("params"), dict) and m["params"]:
        extras.insert(0, ("params", ", ".join(f"{k}={v}" for k, v in m["params"].items())))
    lines += [f"{k}: {v}" for k, v in extras if v not in ("null", "")]
    return lines


def hover_text(m: Record, **kw: Any) -> str:
    """Escaped, ``<br>``-joined record text for a plotly hover label."""
    lines = [esc(line) for line in record_lines(m, **kw)]
    if lines:
        lines[0] = f"<b>{lines[0]}</b>"
    return "<br>".join(lines)

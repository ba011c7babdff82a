"""One measurement as text for hover labels and tables, read through the Measurement view.

Every string that comes from a results file goes through :func:`esc` before it
reaches plotly (plotly renders a few HTML-like tags in text, so ``<`` must
arrive as ``&lt;``, which plotly shows as a literal ``<``) or the HTML pages.
"""

from __future__ import annotations

import html
from typing import Any, Mapping

from xpubench.fmt import fmt_bytes, fmt_pct, fmt_si, fmt_time
from xpubench.results.view import Measurement, finite

REDUCED_PRECISIONS_ORDER = ("tf32", "bf16", "fp16", "fp8", "int8", "int4")
NA = "n/a"  # the record view's word for an unknown value


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


def short_num(x: float | None, digits: int = 5) -> float | None:
    """Round for embedding: the pages carry 5 significant digits, not 17."""
    if x is None:
        return None
    return float(f"{x:.{digits}g}")


def case_label(m: Measurement, with_mode: bool = True) -> str:
    return f"{m.case_name} · {m.mode}" if with_mode and m.mode else m.case_name


def singular(u: str) -> str:
    """``samples`` -> ``sample`` (for "J per sample"); words that are not plurals stay."""
    return u[:-1] if len(u) > 3 and u.endswith("s") and not u.endswith("ss") else u


def ceilings_kind(rf: Mapping[str, Any] | None) -> str:
    """``measured`` | ``spec`` | ``none``: where a roofline block's peaks came from."""
    src = str((rf or {}).get("ceilings_source") or "")
    if src.startswith("measured"):
        return "measured"
    if src.startswith("spec"):
        return "spec"
    return "none"


def fmt_num(x: float | None, suffix: str = "") -> str:
    return NA if x is None else f"{x:.4g}{suffix}"


def roofline_lines(m: Measurement) -> list[str]:
    """Roofline and MFU numbers of a record in two or three short lines (raw text)."""
    rf = m.roofline
    if rf is None:
        return []
    af, ab, ai = finite(rf.get("achieved_flops_per_s")), finite(rf.get("achieved_bytes_per_s")), finite(
        rf.get("intensity"))
    if af is None and ab is None:
        return []
    achieved = " · ".join(x for x in (fmt_si(af, "FLOP/s") if af is not None else "",
                                      fmt_si(ab, "B/s") if ab is not None else "",
                                      f"{ai:.3g} FLOP/B" if ai is not None else "") if x)
    lines = [f"roofline: {achieved}"]
    frac = finite(rf.get("fraction_of_bound"))
    if frac is not None:
        kind = rf.get("bound_kind") or "unknown"
        bound = finite(rf.get("bound_flops_per_s"))
        lines.append(f"efficiency: {fmt_pct(frac)} of the {kind} bound"
                     + (f" ({fmt_si(bound, 'FLOP/s')})" if bound is not None else "")
                     + f" · ceilings: {rf.get('ceilings_source') or 'unknown'}")
    else:
        lines.append(f"efficiency: unknown · ceilings: {rf.get('ceilings_source') or 'unknown'}")
    mm, ms = finite(rf.get("mfu_measured")), finite(rf.get("mfu_spec"))
    if mm is not None or ms is not None:
        spec = f" ({rf.get('spec_name')})" if rf.get("spec_name") else ""
        lines.append(f"MFU: {fmt_pct(mm)} of the measured peak · {fmt_pct(ms)} of the spec peak{spec}")
    return lines


def fmt_value(key: str, v: Any) -> str:
    """Format one field by what its name says it holds (``_s`` seconds, ``_bytes`` ...)."""
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else "null"
    x = finite(v)
    if x is None:
        if isinstance(v, (list, tuple)):
            if v and len(v) <= 4 and all(finite(i) is not None for i in v):
                return "[" + ", ".join(fmt_value(key, i) for i in v) + "]"
            return f"[{len(v)} items]"
        text = str(v)
        return text if len(text) <= 120 else text[:117] + "..."
    k = key.lower()
    if k.endswith("_bytes") or k == "bytes":
        return fmt_bytes(x, unknown=NA)
    if k.endswith("_per_s"):
        return fmt_num(x, "/s")
    if k.endswith("_s") or k in ("median", "mean", "min", "max", "iqr", "stdev", "q1", "q3", "ci95"):
        return fmt_time(x, unknown=NA)
    if k.endswith("_w"):
        return fmt_num(x, " W")
    if k.startswith("joules"):
        return fmt_num(x, " J")
    if k.startswith("fraction") or k.endswith("fraction") or k in ("mfu", "drift"):
        return f"{x:.3g} ({x:.1%})"
    return fmt_num(x)


_SKIP = {"samples", "traceback", "flags", "thread_env"}


def flatten(value: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """``[(dotted.key, formatted value)]`` of a JSON value, numbers and short text only."""
    out: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        if depth >= 3:
            return [(prefix, f"{{{len(value)} fields}}")]
        for k, v in value.items():
            if k in _SKIP or k.startswith("_"):
                continue
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
        return out
    key = prefix.rsplit(".", 1)[-1]
    return [(prefix, fmt_value(key, value))]


def _time_lines(m: Measurement) -> list[str]:
    ci = m.ci95
    lines = [f"median: {fmt_time(m.median, unknown=NA)}"
             + (f"  (95% CI {fmt_time(ci[0])} – {fmt_time(ci[1])})" if ci else "  (no CI)")]
    ipr = m.iterations_per_round
    lines.append(f"rounds: {m.rounds if m.rounds is not None else NA}"
                 + (f" × {ipr} it" if ipr else "")
                 + (f" · stop: {m.stop_reason}" if m.stop_reason else "")
                 + (f" · IQR {fmt_time(m.iqr)}" if m.iqr is not None else ""))
    return lines


def _telemetry_lines(m: Measurement) -> list[str]:
    lines = []
    mem = m.memory
    if mem is not None:
        parts = []
        for kind in ("device", "host"):
            b, meth = mem.peak(kind), mem.method(kind)
            if b is not None or meth:
                parts.append(f"{kind} peak {fmt_bytes(b, unknown=NA)}" + (f" ({meth})" if meth else ""))
        if parts:
            lines.append("memory: " + " · ".join(parts))
    e = m.energy
    if e is not None:
        tag = " — ESTIMATE, not measured" if e.is_estimate else ""
        lines.append(f"energy: {fmt_num(e.joules_per_step, ' J')}/step"
                     + (f" · {e.joules_per_unit:.4g} J/{singular(m.unit)}"
                        if e.joules_per_unit and e.joules_per_unit > 0 else "")
                     + (f" · {fmt_num(e.avg_power_w, ' W')} avg" if e.avg_power_w else "")
                     + f" (method: {e.method}){tag}")
    return lines


def record_lines(m: Measurement, *, machine_id: str | None = None, run_label: str | None = None,
                 full: bool = True) -> list[str]:
    """Human lines describing a measurement (raw text; escape before display).

    The named fields come first; with ``full`` every other field of the record
    follows, flattened (fields a newer version adds appear without code changes).
    """
    lines = [f"{m.case_name} · {m.mode}", f"backend: {m.backend}"]
    if machine_id is not None:
        lines.append(f"machine: {machine_id}")
    if run_label:
        lines.append(f"run: {run_label}")
    lines.append(f"status: {m.status}" + (f" — {m.reason}" if m.reason else ""))
    if m.time_block:
        lines += _time_lines(m)
    thr = m.throughput
    if thr is not None:
        ci = m.throughput_ci
        lines.append(f"throughput: {thr:.4g} {m.unit}/s" + (f"  (95% CI {ci[0]:.4g} – {ci[1]:.4g})" if ci else ""))
    if m.units_per_step is not None:
        lines.append(f"work: {fmt_num(m.units_per_step)} {m.unit} per step")
    lines += _telemetry_lines(m) + roofline_lines(m)
    if not full:
        return lines
    extras: list[tuple[str, str]] = []
    if m.params:
        extras.append(("params", ", ".join(f"{k}={v}" for k, v in m.params.items())))
    for k, v in (("first_call_s", m.first_call_s), ("warmup_s", m.warmup_s), ("compile_s", m.compile_s),
                 ("error_vs_fp32", m.error_vs_fp32)):
        if v is not None:
            extras.append((k, fmt_value(k, v)))
    for k, v in m.other_fields():
        extras += flatten(v, k)
    for k, v in m.other_time_fields():
        extras += flatten(v, f"time_s.{k}")
    lines += [f"{k}: {v}" for k, v in extras if v not in ("null", "")]
    return lines


def hover_text(m: Measurement, **kw: Any) -> str:
    """Escaped, ``<br>``-joined record text for a plotly hover label."""
    lines = [esc(line) for line in record_lines(m, **kw)]
    if lines:
        lines[0] = f"<b>{lines[0]}</b>"
    return "<br>".join(lines)


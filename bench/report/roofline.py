"""The roofline chart: one machine, one precision; log-log FLOP/s against FLOP/byte.

The measured ceilings are drawn as roofs (memory slope ``intensity x bandwidth``
up to the matmul peak), one per framework:device; each measurement with FLOPs and
bytes is a point, hovering with its numbers. ``roofline_spec`` builds the figure as
a plain JSON-ready dict (like the other figures of the report package);
``roofline_figure`` wraps it as a ``plotly.graph_objects.Figure``.

All strings that come from results files are escaped.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any, Iterable

from bench.roofline import backend_precision, device_ceilings, device_key, memory_bandwidth, roofline_fields

if TYPE_CHECKING:
    import plotly.graph_objects as go

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
ROOF_POINTS = 64


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=False)


def _si(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    for suffix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {suffix}{unit}"
    return f"{x:.3g} {unit}"


def _fields(m: dict, ceilings: dict | None) -> dict:
    rf = m.get("roofline")
    return rf if isinstance(rf, dict) else roofline_fields(m, ceilings, None)


def _hover(m: dict, rf: dict) -> str:
    med = (m.get("time_s") or {}).get("median")
    frac = rf.get("fraction_of_bound")
    lines = [
        f"<b>{_esc(m.get('case', m.get('name', '?')))}</b>",
        f"{_esc(m.get('mode', ''))} · {_esc(m.get('backend', ''))}",
        f"median step: {_si(med, 's') if med is not None else '-'}",
        f"achieved: {_si(rf.get('achieved_flops_per_s'), 'FLOP/s')}, {_si(rf.get('achieved_bytes_per_s'), 'B/s')}",
        f"intensity: {rf.get('intensity'):.3g} FLOP/B" if rf.get("intensity") else "intensity: -",
        f"bound: {_si(rf.get('bound_flops_per_s'), 'FLOP/s')} ({_esc(rf.get('bound_kind') or 'unknown')})",
        f"fraction of bound: {frac:.1%}" if frac is not None else "fraction of bound: -",
    ]
    if rf.get("mfu_measured") is not None or rf.get("mfu_spec") is not None:
        mm, ms = rf.get("mfu_measured"), rf.get("mfu_spec")
        lines.append(f"MFU: {mm:.1%} measured" if mm is not None else "MFU: - measured")
        lines[-1] += f", {ms:.1%} spec" if ms is not None else ""
    return "<br>".join(lines)


def _roof_x(lo: float, hi: float, ridge: float) -> list[float]:
    """Log-spaced intensities over [lo, hi], with the ridge point itself included."""
    a, b = math.log10(lo), math.log10(hi)
    xs = [10 ** (a + (b - a) * i / (ROOF_POINTS - 1)) for i in range(ROOF_POINTS)]
    if lo < ridge < hi:
        xs.append(ridge)
    return sorted(xs)


def roofline_spec(records: Iterable[dict], ceilings: dict | None, title: str) -> dict[str, Any]:
    """The chart as a plotly JSON dict: {"data": [...], "layout": {...}}.

    ``records``: measurements of one machine (one precision, usually); those with a
    ``roofline`` block use it, others are computed against ``ceilings``.
    ``ceilings``: that machine's ceilings document (``bench.ceilings``) or None.
    """
    points: dict[str, list[tuple[float, float, str]]] = {}
    roofs: dict[tuple[str, str], tuple[float | None, float | None]] = {}
    left_out = 0
    for m in records:
        if not isinstance(m, dict) or m.get("status", "ok") != "ok":
            continue
        rf = _fields(m, ceilings)
        x, y = rf.get("intensity"), rf.get("achieved_flops_per_s")
        if not x or not y:
            left_out += 1
            continue
        backend = str(m.get("backend", "?"))
        points.setdefault(backend, []).append((x, y, _hover(m, rf)))
        key = device_key(backend) or backend
        prec = backend_precision(m) or ""
        entry = device_ceilings(ceilings, key)
        peak = ((entry or {}).get("matmul_flops_per_s") or {}).get(prec) if entry else rf.get("peak_flops_per_s")
        bw = memory_bandwidth(entry) if entry else rf.get("peak_bytes_per_s")
        roofs.setdefault((key, prec), (peak, bw))

    xs_all = [p[0] for pts in points.values() for p in pts]
    ridges = [pk / bw for pk, bw in roofs.values() if pk and bw]
    lo = min(xs_all + ridges, default=0.1) / 10
    hi = max(xs_all + ridges, default=100.0) * 10

    data: list[dict[str, Any]] = []
    for i, ((key, prec), (peak, bw)) in enumerate(sorted(roofs.items())):
        color = COLORS[i % len(COLORS)]
        label = _esc(f"{key} {prec} roof")
        if peak and bw:
            ridge = peak / bw
            xs = _roof_x(lo, hi, ridge)
            ys = [min(peak, x * bw) for x in xs]
            hover = (f"{label}<br>matmul peak {_si(peak, 'FLOP/s')}<br>bandwidth {_si(bw, 'B/s')}"
                     f"<br>ridge {ridge:.3g} FLOP/B")
        elif peak:  # no bandwidth: the flat roof alone
            xs, ys = [lo, hi], [peak, peak]
            hover = f"{label}<br>matmul peak {_si(peak, 'FLOP/s')} (bandwidth unknown)"
        elif bw:  # no matmul peak at this precision: the slope alone
            xs = _roof_x(lo, hi, 0.0)
            ys = [x * bw for x in xs]
            hover = f"{label}<br>bandwidth {_si(bw, 'B/s')} (matmul peak unknown)"
        else:
            continue
        data.append({"type": "scatter", "mode": "lines", "name": label, "x": xs, "y": ys,
                     "line": {"color": color, "width": 2}, "hoverinfo": "text", "text": hover,
                     "legendgroup": label})
    for i, (backend, pts) in enumerate(sorted(points.items())):
        data.append({"type": "scatter", "mode": "markers", "name": _esc(backend),
                     "x": [p[0] for p in pts], "y": [p[1] for p in pts],
                     "text": [p[2] for p in pts], "hoverinfo": "text",
                     "marker": {"size": 9, "color": COLORS[(i + 3) % len(COLORS)], "symbol": "circle",
                                "line": {"width": 1, "color": "#333"}}})
    annotations = []
    if not roofs or not any(pk or bw for pk, bw in roofs.values()):
        annotations.append({"text": "no measured ceilings: run `xpubench probe`", "showarrow": False,
                            "xref": "paper", "yref": "paper", "x": 0.01, "y": 0.99, "xanchor": "left"})
    if left_out:
        annotations.append({"text": f"{left_out} measurement(s) without FLOPs and bytes not shown",
                            "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.99, "y": 0.01,
                            "xanchor": "right", "font": {"size": 10, "color": "#666"}})
    layout = {
        "title": {"text": _esc(title), "x": 0.0, "xanchor": "left", "font": {"size": 15}},
        "height": 460,
        "margin": {"l": 70, "r": 30, "t": 56, "b": 50},
        "font": {"family": FONT, "size": 12, "color": "#222"},
        "xaxis": {"title": {"text": "arithmetic intensity (FLOP/byte)"}, "type": "log",
                  "gridcolor": "#e8e8e8", "range": [math.log10(lo), math.log10(hi)]},
        "yaxis": {"title": {"text": "FLOP/s"}, "type": "log", "gridcolor": "#e8e8e8", "exponentformat": "SI"},
        "hoverlabel": {"align": "left", "font": {"size": 11, "family": FONT}},
        "legend": {"font": {"size": 11}},
        "annotations": annotations,
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
    }
    return {"data": data, "layout": layout}


def roofline_figure(records: list[dict], ceilings: dict, title: str) -> "go.Figure":
    """The roofline chart of one machine and precision as a plotly Figure."""
    import plotly.graph_objects as go

    return go.Figure(roofline_spec(records, ceilings, title))


def roofline_groups(run_docs: Iterable[dict]) -> list[tuple[str, str, list[dict], dict | None]]:
    """(machine_id, precision, records, ceilings) per machine and precision, for one chart each.

    The newest run's embedded ceilings of each machine are used (``run_doc["ceilings"]``).
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    ceilings: dict[str, tuple[str, dict | None]] = {}
    for doc in run_docs:
        mid = str((doc.get("machine") or {}).get("machine_id", "?"))
        started = str((doc.get("run") or {}).get("started_at") or "")
        if doc.get("ceilings") and (mid not in ceilings or started >= ceilings[mid][0]):
            ceilings[mid] = (started, doc["ceilings"])
        for m in doc.get("measurements") or []:
            if isinstance(m, dict) and m.get("flops_per_step") and m.get("bytes_per_step"):
                groups.setdefault((mid, backend_precision(m) or "?"), []).append(m)
    return [(mid, prec, recs, ceilings.get(mid, ("", None))[1]) for (mid, prec), recs in sorted(groups.items())]

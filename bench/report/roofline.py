"""The roofline chart: one machine, one precision; log-log FLOP/s against FLOP/byte.

The ceilings are drawn as roofs (memory slope ``intensity x bandwidth`` up to the
matmul peak), one per device (the best any framework measured there): solid where
``xpubench probe`` measured them, dashed where the vendor spec sheet stands in. Each
measurement with FLOPs
and bytes is a point (coloured like its backend everywhere in the report),
hovering with its numbers. ``roofline_spec`` builds the figure as a plain
JSON-ready dict (like the other figures of the report package);
``roofline_figure`` wraps it as a ``plotly.graph_objects.Figure``.

All strings that come from results files are escaped.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from xpubench.fmt import fmt_pct, fmt_si, fmt_time
from xpubench.hardware.device_roofs import device_roofs
from xpubench.hardware.roofline import matmul_peak, physical_device_key, roofline_fields
from xpubench.report import figures as F
from xpubench.report import records as R
from xpubench.report.records import esc
from xpubench.results.run_view import Run
from xpubench.results.view import Measurement, finite

Record = Measurement | Mapping[str, Any]

if TYPE_CHECKING:
    import plotly.graph_objects as go

ROOF_POINTS = 64
EXPLANATION = ("Log-log. Lines: the roofs min(matmul peak, intensity × memory bandwidth) of each device at "
               "that precision, the best any framework reached there; solid where xpubench probe measured them "
               "on this machine, dashed where the vendor spec sheet stands in. Element-wise cases (normalization, "
               "dropout, optimizer updates) are held against the device's vector roof, lower than the matmul "
               "line drawn. Points: each case's achieved FLOP/s (FLOPs per step ÷ median step time) at its "
               "arithmetic intensity (FLOPs ÷ bytes moved per step, at the dtype moved). The distance below a "
               "point's own bound is the efficiency column of the suite pages. A point above its bound is not "
               "faster than the hardware: its hover says why (a working set that stays in cache, a roof the "
               "probe did not reach, ceilings probed on a busy machine).")
CAPTION = ("Solid roofs: measured by xpubench probe; dashed: vendor spec sheet. Points coloured like their "
           "backend (and its roof). Hover a point for its numbers.")


def _fields(m: Measurement, ceilings: dict | None) -> dict:
    rf = m.roofline
    return rf if rf is not None else roofline_fields(m.raw, ceilings, None)


def _hover(m: Measurement, rf: dict) -> str:
    frac = finite(rf.get("fraction_of_bound"))
    lines = [
        f"<b>{esc(m.case_name or '?')}</b>",
        f"{esc(m.suite)} · {esc(m.mode)} · {esc(m.backend)}",
        f"median step: {fmt_time(m.median, unknown=R.NA)}",
        f"achieved: {fmt_si(rf.get('achieved_flops_per_s'), 'FLOP/s')} · "
        f"{fmt_si(rf.get('achieved_bytes_per_s'), 'B/s')}",
        f"intensity: {finite(rf.get('intensity')):.3g} FLOP/byte" if finite(rf.get("intensity")) else "intensity: –",
        f"bound: {fmt_si(rf.get('bound_flops_per_s'), 'FLOP/s')} ({esc(rf.get('bound_kind') or 'unknown')})",
        f"fraction of bound: {fmt_pct(frac)}",
        f"ceilings: {esc(rf.get('ceilings_source') or 'unknown')}",
    ]
    if rf.get("flops_kind"):
        lines.append(f"FLOPs held against the {esc(rf['flops_kind'])} roof"
                     + (f" ({esc(rf['peak_source'])})" if rf.get("peak_source") else ""))
    if rf.get("cache_resident"):
        lines.append(f"cache-resident: working set {fmt_si(finite(rf.get('working_set_bytes')), 'B')} ≤ "
                     f"{fmt_si(finite(rf.get('cache_bytes')), 'B')} last-level cache")
    mm, ms = finite(rf.get("mfu_measured")), finite(rf.get("mfu_spec"))
    if mm is not None or ms is not None:
        lines.append(f"MFU: {fmt_pct(mm)} measured peak · {fmt_pct(ms)} spec peak")
    lines += [f"⚠ {esc(w)}" for w in rf.get("warnings") or []]
    return "<br>".join(lines)


def _roof_x(lo: float, hi: float, ridge: float) -> list[float]:
    """Log-spaced intensities over [lo, hi], with the ridge point itself included."""
    a, b = math.log10(lo), math.log10(hi)
    xs = [10 ** (a + (b - a) * i / (ROOF_POINTS - 1)) for i in range(ROOF_POINTS)]
    if lo < ridge < hi:
        xs.append(ridge)
    return sorted(xs)


def _roof(ceilings: dict | None, key: str, prec: str, rf: dict) -> tuple[float | None, float | None, str]:
    """(matmul peak FLOP/s, bandwidth B/s, source) of one device's roof: measured, else the record's peaks."""
    roof = device_roofs(ceilings).get(key)
    if roof is not None:
        return matmul_peak(roof.get("matmul_flops_per_s"), prec), roof.get("memory_bytes_per_s"), "measured"
    kind = R.ceilings_kind(rf)
    source = f"spec: {rf.get('spec_name')}" if kind == "spec" and rf.get("spec_name") else kind
    return finite(rf.get("peak_flops_per_s")), finite(rf.get("peak_bytes_per_s")), source


def _log_ticks(lo: float, hi: float, label) -> tuple[list[float], list[str]]:
    """Ticks at powers of ten, and at 2 and 5 times them when the axis spans three decades or less."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1, 2, 5) if b - a <= 3 else (1,)
    vals = [float(f"{k * 10.0 ** e:.3g}") for e in range(a, b + 1) for k in steps]
    return vals, [label(v) for v in vals]


def roofline_spec(records: Iterable[Record], ceilings: dict | None, title: str) -> dict[str, Any]:
    """The chart as a plotly JSON dict: {"data": [...], "layout": {...}}.

    ``records``: measurements of one machine (one precision, usually); those with a
    ``roofline`` block use it, others are computed against ``ceilings``.
    ``ceilings``: that machine's ceilings document (``xpubench.hardware.ceilings``) or None.
    ``title``: raw text (escaped here).
    """
    points: dict[str, list[tuple[float, float, str]]] = {}
    roofs: dict[tuple[str, str], tuple[float | None, float | None, str]] = {}
    roof_backend: dict[tuple[str, str], str] = {}  # a backend on that device: the roof takes its colour
    left_out = 0
    for m in map(Measurement.of, records):
        if not m.ok:
            continue
        rf = _fields(m, ceilings)
        x, y = finite(rf.get("intensity")), finite(rf.get("achieved_flops_per_s"))
        if not x or not y:
            left_out += 1
            continue
        backend = m.backend or "?"
        points.setdefault(backend, []).append((x, y, _hover(m, rf)))
        key = (physical_device_key(backend) or backend, m.precision)
        roof_backend.setdefault(key, backend)
        if key not in roofs:
            roofs[key] = _roof(ceilings, key[0], key[1], rf)

    xs_all = [p[0] for pts in points.values() for p in pts]
    ridges = [pk / bw for pk, bw, _ in roofs.values() if pk and bw]
    lo = min(xs_all + ridges, default=0.1) / 10
    hi = max(xs_all + ridges, default=100.0) * 10

    backends = F.backend_order(points)
    data: list[dict[str, Any]] = []
    ys_all: list[float] = [p[1] for pts in points.values() for p in pts]
    for i, ((key, prec), (peak, bw, source)) in enumerate(sorted(roofs.items())):
        b = roof_backend[(key, prec)]
        color = F.color(backends.index(b) if b in backends else i, b)
        label = esc(f"{key} {prec} roof ({source})")
        if peak and bw:
            ridge = peak / bw
            xs = _roof_x(lo, hi, ridge)
            ys = [min(peak, x * bw) for x in xs]
            hover = (f"<b>{label}</b><br>matmul peak {fmt_si(peak, 'FLOP/s')}<br>bandwidth {fmt_si(bw, 'B/s')}"
                     f"<br>ridge {ridge:.3g} FLOP/byte")
        elif peak:  # no bandwidth: the flat roof alone
            xs, ys = [lo, hi], [peak, peak]
            hover = f"<b>{label}</b><br>matmul peak {fmt_si(peak, 'FLOP/s')} (bandwidth unknown)"
        elif bw:  # no matmul peak at this precision: the slope alone
            xs = _roof_x(lo, hi, 0.0)
            ys = [x * bw for x in xs]
            hover = f"<b>{label}</b><br>bandwidth {fmt_si(bw, 'B/s')} (matmul peak unknown)"
        else:
            continue
        ys_all += [ys[0], ys[-1]]
        data.append({"type": "scatter", "mode": "lines", "name": label,
                     "x": xs, "y": ys,
                     "line": {"color": color, "width": 2, "dash": "solid" if source == "measured" else "dash"},
                     "hoverinfo": "text", "text": hover, "legendgroup": label})
    for b in backends:
        pts = points[b]
        data.append({"type": "scatter", "mode": "markers", "name": esc(b),
                     "x": [R.short_num(p[0]) for p in pts], "y": [R.short_num(p[1]) for p in pts],
                     "text": [p[2] for p in pts], "hoverinfo": "text",
                     "marker": {"size": 10, "color": F.color(backends.index(b), b), "symbol": "circle",
                                "opacity": 0.9, "line": {"width": 1, "color": "#333"}}})
    annotations = []
    if not any(pk or bw for pk, bw, _ in roofs.values()):
        annotations.append({"text": "no measured ceilings: run `xpubench probe`", "showarrow": False,
                            "xref": "paper", "yref": "paper", "x": 0.01, "y": 0.99, "xanchor": "left"})
    if left_out:
        annotations.append({"text": f"{left_out} measurement(s) without FLOPs and bytes not shown",
                            "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.99, "y": 0.01,
                            "xanchor": "right", "font": {"size": 10, "color": "#666"}})
    layout = F.layout(esc(title), "arithmetic intensity (FLOP/byte, log scale)",
                      "performance (FLOP/s, log scale)", y_type="log", height=480)
    layout["xaxis"].update(type="log", range=[math.log10(lo), math.log10(hi)])
    layout["xaxis"]["tickvals"], layout["xaxis"]["ticktext"] = _log_ticks(lo, hi, lambda v: f"{v:g}")
    layout["yaxis"].pop("dtick", None)
    if ys_all:
        layout["yaxis"]["tickvals"], layout["yaxis"]["ticktext"] = _log_ticks(
            min(ys_all), max(ys_all), lambda v: fmt_si(v, "FLOP/s"))
    layout["annotations"] = annotations
    layout["hovermode"] = "closest"
    # legend under the plot: roof names are long and the chart needs its width
    layout["legend"].update(orientation="h", x=0, xanchor="left", y=-0.2, yanchor="top")
    layout["margin"]["b"] = 20
    return {"data": data, "layout": layout}


def roofline_figure(records: list[Record], ceilings: dict, title: str) -> "go.Figure":
    """The roofline chart of one machine and precision as a plotly Figure."""
    import plotly.graph_objects as go

    return go.Figure(roofline_spec(records, ceilings, title))


def roofline_fig(records: list[Measurement], ceilings: dict | None, machine_id: str, precision: str) -> F.Fig:
    """The chart as a report :class:`figures.Fig` (caption, filter text)."""
    spec = roofline_spec(records, ceilings, f"Roofline: {machine_id} · {precision}")
    search = " ".join([machine_id, precision] + sorted({R.case_label(m) for m in records})
                      + sorted({m.backend for m in records}))
    return F.Fig(spec, caption=CAPTION, search=search, kind="roofline")


def precision_groups(records: Iterable[Measurement]) -> dict[str, list[Measurement]]:
    """The records with both FLOPs and bytes per step, by precision: one chart each."""
    groups: dict[str, list[Measurement]] = {}
    for m in records:
        if m.flops_per_step and m.bytes_per_step:
            groups.setdefault(m.precision or "?", []).append(m)
    return groups


def roofline_groups(runs: Iterable[Run | Mapping[str, Any]]) -> list[tuple[str, str, list[Measurement], dict | None]]:
    """(machine_id, precision, records, ceilings) per machine and precision, for one chart each.

    The newest run's embedded ceilings of each machine are used.
    """
    groups: dict[tuple[str, str], list[Measurement]] = {}
    ceilings: dict[str, Run] = {}
    for run in sorted(map(Run.of, runs), key=lambda r: r.sort_key):
        if run.ceilings:
            ceilings[run.machine_id] = run
        for prec, recs in precision_groups(run.measurements).items():
            groups.setdefault((run.machine_id, prec), []).extend(recs)
    return [(mid, prec, recs, ceilings[mid].ceilings if mid in ceilings else None)
            for (mid, prec), recs in sorted(groups.items())]

"""Plotly figures as plain dicts (``{"data": [...], "layout": {...}}``).

One small function per chart; each takes measurement entries and returns a
:class:`Fig` or None when there is nothing to draw. Figures are built as plain
JSON-ready dicts (no ``plotly.graph_objects``: validating thousands of points
in Python would cost seconds) and drawn by plotly.js in the page. A new chart
is one more function here plus one call in ``pages.py`` (the roofline chart
lives in ``roofline.py``).

All strings from results files pass through :func:`records.esc`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from xpubench.report import records as R
from xpubench.report.records import esc

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#843c39", "#7b4173"]
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
LOG_SPAN = 30.0  # a positive axis spanning this factor or more is drawn on a log scale
LOG_SPAN_LINES = 10.0  # the same for lines over time (relative changes matter most)


@dataclass
class Entry:
    """A measurement record with where it came from."""

    m: dict[str, Any]
    machine_id: str
    run_label: str = ""


@dataclass
class Fig:
    spec: dict[str, Any]
    caption: str = ""  # plain text (escaped by the page)
    search: str = ""  # text the page's filter box matches against
    kind: str = ""


@dataclass
class HistoryPoint:
    t_ms: int  # run start, ms since the epoch (plotly date axis)
    entry: Entry
    commit: str = ""
    flag: str | None = None  # compare verdict against the previous run: regression / improvement
    change: float | None = None


@dataclass
class Series:
    label: str  # e.g. "laptop · torch:cpu:fp32" (raw text)
    points: list[HistoryPoint] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers
_NAMED_COLORS: dict[str, str] = {}


def use_palette(names: Iterable[str]) -> None:
    """Fix one colour per name (backend, machine) for every figure built afterwards."""
    _NAMED_COLORS.clear()
    for i, n in enumerate(sorted(set(names))):
        _NAMED_COLORS[n] = COLORS[i % len(COLORS)]


def color(i: int, name: str | None = None) -> str:
    """The colour of ``name`` when a palette is in use, else the ``i``-th colour."""
    if name is not None and name in _NAMED_COLORS:
        return _NAMED_COLORS[name]
    return COLORS[i % len(COLORS)]


def rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def axis_type(values: Iterable[float | None], span: float = LOG_SPAN) -> str:
    """``log`` when all values are positive and span at least ``span`` (well over a decade)."""
    vs = [v for v in values if v is not None]
    if not vs or min(vs) <= 0:
        return "linear"
    return "log" if max(vs) / min(vs) >= span else "linear"


_SI = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"),
       (1e-12, "p")]


def si(x: float) -> str:
    """``0.0025`` -> ``2.5m``; ``12000`` -> ``12k``."""
    if x == 0:
        return "0"
    for scale, prefix in _SI:
        if abs(x) >= scale * 0.9995:
            return f"{x / scale:.3g}{prefix}"
    return f"{x:.3g}"


def si_axis(axis: dict[str, Any], suffix: str = "", values: Iterable[float | None] = ()) -> None:
    """Tick labels with SI prefixes and a unit (``2.5ms``, ``10k``, ``100µJ``).

    Log axes get explicit 1-2-5 ticks (plotly drops the suffix on its minor log labels).
    """
    vs = [v for v in values if v is not None and v > 0]
    if axis.get("type") == "log" and vs:
        lo = math.floor(math.log10(min(vs))) - 1
        hi = math.ceil(math.log10(max(vs))) + 1
        steps = (1, 2, 5) if hi - lo <= 6 else (1,)
        ticks = [m * 10.0 ** e for e in range(lo, hi + 1) for m in steps]
        axis.pop("dtick", None)
        axis["tickvals"] = [float(f"{t:.3g}") for t in ticks]
        axis["ticktext"] = [si(t) + suffix for t in ticks]
    else:
        axis["tickformat"] = "~s"
        if suffix:
            axis["ticksuffix"] = suffix


def layout(title: str, x_title: str, y_title: str, *, y_type: str = "linear", height: int = 430,
           **extra: Any) -> dict[str, Any]:
    """Common layout; titles are our own text (escape results strings before passing them)."""
    lay: dict[str, Any] = {
        "title": {"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 15}},
        "height": height,
        "margin": {"l": 70, "r": 20, "t": 60, "b": 40},
        "font": {"family": FONT, "size": 12, "color": "#222"},
        "xaxis": {"title": {"text": x_title}, "automargin": True, "gridcolor": "#e8e8e8"},
        "yaxis": {"title": {"text": y_title}, "type": y_type, "automargin": True, "gridcolor": "#e8e8e8",
                  "exponentformat": "SI"},
        "legend": {"font": {"size": 11}, "tracegroupgap": 2},
        "showlegend": True,  # even for one trace: the legend names the backend or machine
        "hoverlabel": {"align": "left", "font": {"size": 11, "family": FONT}},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "colorway": COLORS,
    }
    if y_type == "log":
        lay["yaxis"]["dtick"] = "D2"  # label 1, 2, 5 x 10^n, not every digit
    lay.update(extra)
    return lay


singular = R.singular


def _ordered(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for i in items:
        seen.setdefault(i, None)
    return list(seen)


def _backend_order(backends: Iterable[str], first: str | None = None) -> list[str]:
    bs = sorted(set(backends), key=lambda b: (R.backend_parts(b)[1], R.backend_parts(b)[0],
                                              _precision_rank(R.backend_parts(b)[2]), b))
    if first in bs:
        bs.remove(first)
        bs.insert(0, first)
    return bs


def _precision_rank(p: str) -> int:
    order = ("fp64", "fp32") + R.REDUCED_PRECISIONS_ORDER
    return order.index(p) if p in order else len(order)


def _hover(e: Entry, full: bool = True) -> str:
    return R.hover_text(e.m, machine_id=e.machine_id, run_label=e.run_label, full=full)


def _r(x: float | None) -> float | None:
    return R.short_num(x)


def _ratio_ticks(zmax: float) -> tuple[list[float], list[str]]:
    """Colorbar ticks for log2(speedup), powers of two up to ±zmax (1/4096× .. 4096×)."""
    vals, text = [], []
    for k in range(-12, 13):
        if abs(k) <= zmax + 1e-9:
            vals.append(float(k))
            text.append(f"{2.0 ** k:g}×" if k >= 0 else f"1/{2 ** -k:g}×")
    step = max(1, math.ceil(len(vals) / 9))
    keep = [i for i in range(len(vals)) if (vals[i] % step) == 0]
    return [vals[i] for i in keep], [text[i] for i in keep]


# --------------------------------------------------------------------------- bars by backend
def _bars_by_backend(entries: Sequence[Entry], value, title: str, y_title: str, *,
                     error=None, pattern=None, first_backend: str | None = None,
                     kind: str = "") -> Fig | None:
    """Grouped bars: x = case, one trace per backend; ``value(m)`` gives the bar height."""
    rows = [(e, value(e.m)) for e in entries if R.is_ok(e.m)]
    rows = [(e, v) for e, v in rows if v is not None]
    if not rows:
        return None
    cases = _ordered(esc(R.case_label(e.m)) for e, _ in rows)
    traces = []
    for i, b in enumerate(_backend_order((e.m.get("backend", "") for e, _ in rows), first_backend)):
        mine = [(e, v) for e, v in rows if e.m.get("backend", "") == b]
        trace: dict[str, Any] = {
            "type": "bar", "name": esc(b),
            "x": [esc(R.case_label(e.m)) for e, _ in mine],
            "y": [_r(v) for _, v in mine],
            "hovertext": [_hover(e) for e, _ in mine],
            "hovertemplate": "%{hovertext}<extra></extra>",
            "marker": {"color": color(i, b)},
        }
        if error is not None:
            cis = [error(e.m) for e, _ in mine]
            trace["error_y"] = {
                "type": "data", "symmetric": False, "thickness": 1.2, "width": 3, "color": "#333",
                "array": [_r(max(ci[1] - v, 0.0)) if ci else None for ci, (_, v) in zip(cis, mine)],
                "arrayminus": [_r(max(v - ci[0], 0.0)) if ci else None for ci, (_, v) in zip(cis, mine)],
            }
        if pattern is not None:
            shapes = [pattern(e.m) for e, _ in mine]
            trace["marker"]["pattern"] = {"shape": shapes, "fillmode": "overlay", "solidity": 0.35}
        traces.append(trace)
    values = [v for _, v in rows]
    lay = layout(title, "case", y_title, y_type=axis_type(values), barmode="group", bargap=0.25,
                 height=min(820, max(430, 360 + 9 * max(len(c) for c in cases))))
    lay["xaxis"].update(categoryorder="array", categoryarray=cases)
    if len(cases) > 3:
        lay["xaxis"]["tickangle"] = -30  # otherwise plotly turns labels only when they collide
    search = " ".join(sorted({R.case_label(e.m) for e, _ in rows}))
    return Fig({"data": traces, "layout": lay}, search=search, kind=kind)


def throughput_bars(entries: Sequence[Entry], unit: str, *, title: str | None = None,
                    baseline: str | None = None) -> Fig | None:
    """Throughput of each case by backend, with 95% CI error bars (one unit of work per figure)."""
    mine = [e for e in entries if R.unit(e.m) == unit]
    fig = _bars_by_backend(mine, R.throughput, title or f"Throughput ({esc(unit)}/s, higher is better)",
                           f"throughput ({esc(unit)}/s)", error=R.throughput_ci, first_backend=baseline,
                           kind="throughput")
    if fig:
        si_axis(fig.spec["layout"]["yaxis"], "", [R.throughput(e.m) for e in mine if R.is_ok(e.m)])
        fig.caption = "Bars: median throughput; whiskers: 95% confidence interval of the median."
    return fig


def memory_bars(entries: Sequence[Entry], *, baseline: str | None = None) -> Fig | None:
    """Peak memory per case and backend (device peak where measured, else host peak)."""
    def mib(m: dict) -> float | None:
        peak = R.peak_memory(m)
        return peak[0] / 2**20 if peak else None

    fig = _bars_by_backend(entries, mib,
                           "Peak memory (MiB, lower is better)", "peak memory (MiB)", first_backend=baseline,
                           kind="memory")
    if fig:
        fig.caption = ("Device peak where the backend measures it (e.g. CUDA allocator), otherwise the "
                       "host process peak; the method is in the hover text.")
    return fig


def energy_bars(entries: Sequence[Entry], unit: str, *, baseline: str | None = None) -> Fig | None:
    """Energy per unit of work; estimates are hatched and labelled, never shown as measurements."""
    mine = [e for e in entries if R.unit(e.m) == unit]
    per_unit = lambda m: (R.energy_per_unit(m) or (None,))[0]  # noqa: E731
    estimated = any((R.energy_per_unit(e.m) or (0, "", False))[2] for e in mine if R.is_ok(e.m))
    one = esc(singular(unit))
    title = f"Energy per {one} (J/{one}, lower is better)"
    if estimated:
        title += "<br><sup>hatched bars are ESTIMATES, not measurements</sup>"
    fig = _bars_by_backend(mine, per_unit, title, f"energy (J per {one})", first_backend=baseline,
                           pattern=lambda m: "/" if (R.energy_per_unit(m) or (0, "", False))[2] else "",
                           kind="energy")
    if fig:
        si_axis(fig.spec["layout"]["yaxis"], "J", [per_unit(e.m) for e in mine if R.is_ok(e.m)])
        fig.caption = ("Energy over the timed window divided by the work done. Hatched bars are estimates "
                       "(modelled, not measured); the method of each bar is in its hover text.")
    return fig


# --------------------------------------------------------------------------- MFU
MFU_CAPTION = ("MFU, model FLOPs utilization (PaLM, Chowdhery et al. 2022, appendix B): the FLOPs the model "
               "needs per training step (forward and backward, recomputation not counted) divided by the median "
               "step time, over the peak matmul FLOP/s of the device at that precision. Solid bars: against the "
               "peak xpubench probe measured on this machine; hatched bars: against the vendor spec-sheet peak. "
               "A missing bar means that peak is unknown (no probe for the device, or no spec-sheet row, e.g. "
               "CPUs).")


def mfu_bars(entries: Sequence[Entry]) -> Fig | None:
    """MFU of each training case x backend, against the measured and the spec-sheet peak."""
    rows = []
    for e in entries:
        rf = R.roofline_block(e.m)
        if not R.is_ok(e.m) or rf is None:
            continue
        mm, ms = R.num(rf.get("mfu_measured")), R.num(rf.get("mfu_spec"))
        if mm is not None or ms is not None:
            rows.append((e, rf, mm, ms))
    if not rows:
        return None
    backends = _backend_order({e.m.get("backend", "") for e, *_ in rows})
    rows.sort(key=lambda r: (R.case_label(r[0].m), backends.index(r[0].m.get("backend", ""))))
    x = [[esc(R.case_label(e.m)) for e, *_ in rows], [esc(e.m.get("backend", "")) for e, *_ in rows]]
    traces = []
    for idx, (label, col, shape) in enumerate((("MFU vs measured peak (xpubench probe)", "#1f5fbf", ""),
                                               ("MFU vs spec-sheet peak", "#7fa7e0", "/"))):
        ys, hovers = [], []
        for e, rf, mm, ms in rows:
            v = (mm, ms)[idx]
            ys.append(_r(v))
            ach = R.fmt_si(rf.get("achieved_flops_per_s"), "FLOP/s")
            if idx == 0:
                peak_text = ("measured matmul peak " + R.fmt_si(R.num(rf.get("peak_flops_per_s")), "FLOP/s")
                             if R.ceilings_kind(rf) == "measured" else "no measured peak for this device")
            else:
                spec = R.num(rf.get("spec_peak_flops_per_s"))
                peak_text = (f"spec peak {R.fmt_si(spec, 'FLOP/s')} ({esc(rf.get('spec_name') or '?')})"
                             if spec is not None else "no spec-sheet peak for this device")
            hovers.append(f"<b>{esc(R.case_label(e.m))}</b><br>{esc(e.m.get('backend', ''))}"
                          f"<br>{label}: {R.fmt_pct(v)}<br>achieved {ach} (model FLOPs per step ÷ median step "
                          f"time)<br>{peak_text}<br>median step: {R.fmt_time(R.median_time(e.m))}")
        traces.append({"type": "bar", "name": label, "x": x, "y": ys, "hovertext": hovers,
                       "hovertemplate": "%{hovertext}<extra></extra>",
                       "text": [R.fmt_pct(v) if v is not None else "" for v in ys], "textposition": "outside",
                       "cliponaxis": False,
                       "marker": {"color": col, "line": {"color": "#1f3d7a", "width": 1},
                                  "pattern": {"shape": shape, "fillmode": "overlay", "solidity": 0.4}}})
    vals = [v for *_, mm, ms in rows for v in (mm, ms) if v is not None]
    lay = layout("MFU: model FLOPs utilization (higher is better)", "case / backend",
                 "MFU (% of peak FLOP/s)", barmode="group", bargap=0.3, height=480)
    lay["xaxis"].update(type="multicategory", tickangle=-30)
    top = max(vals)
    digits = 0 if top >= 0.05 else 1 if top >= 0.005 else 2  # small MFUs still get distinct ticks
    lay["yaxis"].update(tickformat=f".{digits}%", range=[0, top * 1.18])
    lay["yaxis"].pop("exponentformat", None)
    search = " ".join(sorted({R.case_label(e.m) for e, *_ in rows} | set(backends) | {"MFU"}))
    return Fig({"data": traces, "layout": lay}, caption=MFU_CAPTION, search=search, kind="mfu")


# --------------------------------------------------------------------------- speedup heatmap
def speedup_heatmap(entries: Sequence[Entry], baseline: str) -> Fig | None:
    """Case x backend speedup of throughput relative to ``baseline`` (log2 colour scale)."""
    by_key = {(R.case_label(e.m), e.m.get("backend", "")): e for e in entries}
    cases = _ordered(R.case_label(e.m) for e in entries
                     if e.m.get("backend") == baseline and R.is_ok(e.m) and R.throughput(e.m))
    if not cases:
        return None
    backends = _backend_order({e.m.get("backend", "") for e in entries}, baseline)
    z, text, hover = [], [], []
    for c in cases:
        base_thr = R.throughput(by_key[(c, baseline)].m)
        zrow, trow, hrow = [], [], []
        for b in backends:
            e = by_key.get((c, b))
            thr = R.throughput(e.m) if e and R.is_ok(e.m) else None
            if e is None:
                zrow.append(None), trow.append(""), hrow.append(f"{esc(c)}<br>{esc(b)}: not run")
                continue
            if thr is None:
                st = R.status(e.m)
                zrow.append(None), trow.append(esc(st)), hrow.append(_hover(e, full=False))
                continue
            s = thr / base_thr
            zrow.append(_r(math.log2(s)))
            trow.append(f"{s:.3g}×")
            hrow.append(f"<b>speedup {s:.3g}× vs {esc(baseline)}</b><br>" + _hover(e, full=False))
        z.append(zrow), text.append(trow), hover.append(hrow)
    finite = [abs(v) for row in z for v in row if v is not None]
    zmax = max(1.0, max(finite, default=1.0))
    tickvals, ticktext = _ratio_ticks(zmax)
    trace = {
        "type": "heatmap", "x": [esc(b) for b in backends], "y": [esc(c) for c in cases], "z": z,
        "text": text, "texttemplate": "%{text}", "textfont": {"size": 11},
        "hovertext": hover, "hovertemplate": "%{hovertext}<extra></extra>",
        "colorscale": [[0.0, "#b2182b"], [0.25, "#ef8a62"], [0.5, "#f2f2f2"], [0.75, "#67a9cf"],
                       [1.0, "#2166ac"]], "zmid": 0, "zmin": -zmax, "zmax": zmax, "xgap": 2, "ygap": 2,
        "colorbar": {"title": {"text": "speedup (×, log scale)"}, "tickvals": tickvals, "ticktext": ticktext},
    }
    lay = layout(f"Speedup vs {esc(baseline)} (throughput ratio, higher is better)", "backend", "case",
                 height=max(320, 200 + 36 * len(cases)))
    lay["yaxis"].update(autorange="reversed", type="category")
    lay["xaxis"].update(type="category", side="bottom")
    lay["yaxis"].pop("exponentformat", None)
    return Fig({"data": [trace], "layout": lay},
               caption=f"Throughput of each backend divided by {baseline} on the same case and machine; "
                       "blue is faster, red is slower. Empty cells did not run (status shown when known).",
               search=" ".join(cases), kind="speedup")


# --------------------------------------------------------------------------- precision view
def precision_scatter(entries: Sequence[Entry]) -> Fig | None:
    """Speedup of each reduced-precision mode over its fp32 twin against its error vs fp32."""
    by_key = {(R.case_label(e.m), e.m.get("backend", "")): e for e in entries if R.is_ok(e.m)}
    points: dict[str, list[tuple[Entry, float, float | None, str]]] = {}
    for (c, b), e in by_key.items():
        fw, dev, prec = R.backend_parts(b)
        if prec in ("fp32", "fp64", ""):
            continue
        twin_backend = f"{fw}:{dev}:fp32"
        twin = by_key.get((c, twin_backend))
        t, tt = R.median_time(e.m), R.median_time(twin.m) if twin else None
        if not t or not tt:
            continue
        points.setdefault(b, []).append((e, tt / t, R.num(e.m.get("error_vs_fp32")), twin_backend))
    if not points:
        return None
    with_error = [p for ps in points.values() for p in ps if p[2] is not None and p[2] > 0]
    no_error = [p for ps in points.values() for p in ps if p[2] is None or p[2] <= 0]
    traces = []
    use_x = bool(with_error)
    for i, b in enumerate(_backend_order(points)):
        ps = [p for p in points[b] if (p[2] is not None and p[2] > 0) or not use_x]
        if not ps:
            continue
        traces.append({
            "type": "scatter", "mode": "markers", "name": esc(b),
            "x": [_r(p[2]) for p in ps] if use_x else [esc(R.case_label(p[0].m)) for p in ps],
            "y": [_r(p[1]) for p in ps],
            "marker": {"size": 10, "color": color(i, b), "symbol": i % 8, "line": {"width": 1, "color": "#fff"}},
            "hovertext": [f"<b>{p[1]:.3g}× vs {esc(p[3])}</b><br>error vs fp32: "
                          f"{'n/a' if p[2] is None else f'{p[2]:.3g}'}<br>" + _hover(p[0], full=False)
                          for p in ps],
            "hovertemplate": "%{hovertext}<extra></extra>",
        })
    ys = [p[1] for ps in points.values() for p in ps]
    y_type = "log" if min(ys) > 0 and max(ys) / min(ys) >= 10 else "linear"
    if use_x:
        x_title, x_type = "error vs fp32 (relative error of the outputs, log scale)", "log"
    else:
        x_title, x_type = "case (no error_vs_fp32 recorded)", "category"
    lay = layout("Reduced precision: speedup over the fp32 twin vs error", x_title,
                 "speedup over fp32 twin (×)", y_type=y_type)
    lay["xaxis"]["type"] = x_type
    if x_type == "log":
        lay["xaxis"].update(exponentformat="power", dtick="D2")
    lay["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": 1, "y1": 1,
                      "line": {"dash": "dot", "color": "#777", "width": 1}}]
    caption = ("Each point is one case: the fp32 twin's median time divided by this mode's (same framework, "
               "device, case and machine); above the dotted line is faster. Further left is more accurate.")
    if use_x and no_error:
        caption += " Not plotted (no error recorded or exactly 0): " + "; ".join(
            f"{R.case_label(p[0].m)} on {p[0].m.get('backend')} ({p[1]:.3g}×)" for p in no_error[:20])
    return Fig({"data": traces, "layout": lay}, caption=caption,
               search=" ".join(R.case_label(p[0].m) for ps in points.values() for p in ps), kind="precision")


# --------------------------------------------------------------------------- machines
def machines_bars(entries: Sequence[Entry], unit: str, suite: str) -> Fig | None:
    """The same case across machines: x = case / backend, one bar per machine."""
    rows = [(e, R.throughput(e.m)) for e in entries if R.unit(e.m) == unit and R.is_ok(e.m)]
    rows = [(e, v) for e, v in rows if v is not None]
    if not rows:
        return None
    backends = _backend_order({e.m.get("backend", "") for e, _ in rows})
    cats = sorted({(R.case_label(e.m), e.m.get("backend", "")) for e, _ in rows},
                  key=lambda c: (c[0], backends.index(c[1])))
    by_cat = {(e.machine_id, R.case_label(e.m), e.m.get("backend", "")): (e, v) for e, v in rows}
    x = [[esc(c) for c, _ in cats], [esc(b) for _, b in cats]]
    traces = []
    for i, machine in enumerate(sorted({e.machine_id for e, _ in rows})):
        # every trace lists every category (None where the machine lacks it): a stable order
        cells = [by_cat.get((machine, c, b)) for c, b in cats]
        cis = [R.throughput_ci(cell[0].m) if cell else None for cell in cells]
        traces.append({
            "type": "bar", "name": esc(machine), "x": x,
            "y": [_r(cell[1]) if cell else None for cell in cells],
            "error_y": {"type": "data", "symmetric": False, "thickness": 1.2, "width": 3, "color": "#333",
                        "array": [_r(max(ci[1] - cell[1], 0)) if ci and cell else None for ci, cell in zip(cis, cells)],
                        "arrayminus": [_r(max(cell[1] - ci[0], 0)) if ci and cell else None
                                       for ci, cell in zip(cis, cells)]},
            "hovertext": [_hover(cell[0]) if cell else "" for cell in cells],
            "hovertemplate": "%{hovertext}<extra></extra>",
            "marker": {"color": color(i, machine)},
        })
    lay = layout(f"{esc(suite)}: throughput by machine ({esc(unit)}/s, higher is better)",
                 "case / backend", f"throughput ({esc(unit)}/s)", y_type=axis_type(v for _, v in rows),
                 barmode="group", bargap=0.2, height=540)
    lay["xaxis"].update(type="multicategory", tickangle=-30)
    si_axis(lay["yaxis"], "", [v for _, v in rows])
    return Fig({"data": traces, "layout": lay},
               caption="Latest run of each machine. Whiskers: 95% confidence interval of the median.",
               search=" ".join({R.case_label(e.m) for e, _ in rows} | {e.machine_id for e, _ in rows}),
               kind="machines")


# --------------------------------------------------------------------------- history
def history_lines(title: str, series: Sequence[Series]) -> Fig | None:
    """Median time per step over run dates, with a 95% CI band; flagged points marked."""
    traces: list[dict[str, Any]] = []
    ys_all: list[float] = []
    flagged: dict[str, list[tuple[HistoryPoint, float]]] = {"regression": [], "improvement": []}
    for i, s in enumerate(series):
        pts = sorted(s.points, key=lambda p: p.t_ms)
        if not any(R.is_ok(p.entry.m) and R.median_time(p.entry.m) for p in pts):
            continue
        c = color(i)
        group = f"g{i}"
        band_x, band_hi, band_lo = [], [], []
        xs, ys, custom = [], [], []
        for p in pts:
            med = R.median_time(p.entry.m) if R.is_ok(p.entry.m) else None
            ci = R.time_ci(p.entry.m) if med is not None else None
            xs.append(p.t_ms)
            ys.append(_r(med))
            t_block = p.entry.m.get("time_s") if isinstance(p.entry.m.get("time_s"), dict) else {}
            rounds = t_block.get("rounds")
            flag = ""
            if p.flag in flagged and med is not None:
                flagged[p.flag].append((p, med))
                flag = f"{p.flag} {p.change:+.1%} vs previous run" if p.change is not None else p.flag
            ci_text = f"95% CI {R.fmt_time(ci[0])} – {R.fmt_time(ci[1])}" if ci else "no CI"
            custom.append([ci_text, esc(p.commit or "-"), rounds if isinstance(rounds, int) else "n/a",
                           esc(R.status(p.entry.m)) if med is None else flag])
            if med is not None:
                ys_all.append(med)
            if ci:
                band_x.append(p.t_ms)
                band_lo.append(_r(ci[0]))
                band_hi.append(_r(ci[1]))
        if band_x:
            traces.append({"type": "scatter", "mode": "lines", "x": band_x + band_x[::-1],
                           "y": band_hi + band_lo[::-1], "fill": "toself", "fillcolor": rgba(c, 0.16),
                           "line": {"width": 0, "color": rgba(c, 0)}, "hoverinfo": "skip", "showlegend": False,
                           "legendgroup": group, "name": esc(s.label) + " 95% CI"})
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": esc(s.label), "legendgroup": group,
            "x": xs, "y": ys, "customdata": custom, "line": {"color": c, "width": 1.6},
            "marker": {"size": 4, "color": c},
            "hovertemplate": ("<b>%{fullData.name}</b><br>%{x|%Y-%m-%d %H:%M} UTC · commit %{customdata[1]}"
                              "<br>median %{y:.4s}s (%{customdata[0]})<br>rounds %{customdata[2]}"
                              "<br>%{customdata[3]}<extra></extra>"),
        })
    if not traces:
        return None
    for flag, symbol, col in (("regression", "triangle-up", "#d62728"), ("improvement", "triangle-down", "#2ca02c")):
        pts = flagged[flag]
        if pts:
            traces.append({
                "type": "scatter", "mode": "markers", "name": f"{flag} (compare)",
                "x": [p.t_ms for p, _ in pts], "y": [_r(v) for _, v in pts],
                "marker": {"symbol": symbol, "size": 13, "color": col, "line": {"width": 1, "color": "#000"}},
                "hovertext": [f"<b>{flag}</b> {p.change:+.1%} vs previous run (significant, past threshold)"
                              if p.change is not None else flag for p, _ in pts],
                "hovertemplate": "%{hovertext}<extra></extra>",
            })
    lay = layout(title, "run date (UTC)", "median time per step (s, lower is better)",
                 y_type=axis_type(ys_all, LOG_SPAN_LINES), height=400)
    lay["xaxis"]["type"] = "date"
    si_axis(lay["yaxis"], "s", ys_all)
    xs_all = [x for t in traces for x in t["x"] if isinstance(x, int)]
    if xs_all and max(xs_all) - min(xs_all) < 86_400_000:  # under a day: show a readable window
        mid = (max(xs_all) + min(xs_all)) // 2
        lay["xaxis"]["range"] = [mid - 43_200_000, mid + 43_200_000]
    lay["hovermode"] = "closest"
    return Fig({"data": traces, "layout": lay}, kind="history",
               caption="Line: median time per step of each run; band: its 95% confidence interval. "
                       "Triangles: points that xpubench compare flags against the previous run of the same "
                       "machine. Click a legend entry to hide it, double-click to show it alone.")

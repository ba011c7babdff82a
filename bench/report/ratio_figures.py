"""Charts of ratios between backends: the speedup heatmap and the reduced-precision trade-off."""

from __future__ import annotations

import math
from typing import Sequence

from xpubench.report import records as R
from xpubench.report.figures import Entry, Fig, backend_order, color, hover, layout, ordered, rounded
from xpubench.report.records import esc


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


# --------------------------------------------------------------------------- speedup heatmap
def speedup_heatmap(entries: Sequence[Entry], baseline: str) -> Fig | None:
    """Case x backend speedup of throughput relative to ``baseline`` (log2 colour scale)."""
    by_key = {(R.case_label(e.m), e.m.backend): e for e in entries}
    cases = ordered(R.case_label(e.m) for e in entries
                    if e.m.backend == baseline and e.m.ok and e.m.throughput)
    if not cases:
        return None
    backends = backend_order({e.m.backend for e in entries}, baseline)
    z, text, hovers = [], [], []
    for c in cases:
        base_thr = by_key[(c, baseline)].m.throughput
        zrow, trow, hrow = [], [], []
        for b in backends:
            e = by_key.get((c, b))
            thr = e.m.throughput if e and e.m.ok else None
            if e is None:
                zrow.append(None), trow.append(""), hrow.append(f"{esc(c)}<br>{esc(b)}: not run")
                continue
            if thr is None:
                st = e.m.status
                zrow.append(None), trow.append(esc(st)), hrow.append(hover(e, full=False))
                continue
            s = thr / base_thr
            zrow.append(rounded(math.log2(s)))
            trow.append(f"{s:.3g}×")
            hrow.append(f"<b>speedup {s:.3g}× vs {esc(baseline)}</b><br>" + hover(e, full=False))
        z.append(zrow), text.append(trow), hovers.append(hrow)
    finite = [abs(v) for row in z for v in row if v is not None]
    zmax = max(1.0, max(finite, default=1.0))
    tickvals, ticktext = _ratio_ticks(zmax)
    trace = {
        "type": "heatmap", "x": [esc(b) for b in backends], "y": [esc(c) for c in cases], "z": z,
        "text": text, "texttemplate": "%{text}", "textfont": {"size": 11},
        "hovertext": hovers, "hovertemplate": "%{hovertext}<extra></extra>",
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
    by_key = {(R.case_label(e.m), e.m.backend): e for e in entries if e.m.ok}
    points: dict[str, list[tuple[Entry, float, float | None, str]]] = {}
    for (c, b), e in by_key.items():
        parts = e.m.backend_parts
        if parts.precision in ("fp32", "fp64", ""):
            continue
        twin_backend = parts.with_precision("fp32")
        twin = by_key.get((c, twin_backend))
        t, tt = e.m.median, twin.m.median if twin else None
        if not t or not tt:
            continue
        points.setdefault(b, []).append((e, tt / t, e.m.error_vs_fp32, twin_backend))
    if not points:
        return None
    with_error = [p for ps in points.values() for p in ps if p[2] is not None and p[2] > 0]
    no_error = [p for ps in points.values() for p in ps if p[2] is None or p[2] <= 0]
    traces = []
    use_x = bool(with_error)
    for i, b in enumerate(backend_order(points)):
        ps = [p for p in points[b] if (p[2] is not None and p[2] > 0) or not use_x]
        if not ps:
            continue
        traces.append({
            "type": "scatter", "mode": "markers", "name": esc(b),
            "x": [rounded(p[2]) for p in ps] if use_x else [esc(R.case_label(p[0].m)) for p in ps],
            "y": [rounded(p[1]) for p in ps],
            "marker": {"size": 10, "color": color(i, b), "symbol": i % 8, "line": {"width": 1, "color": "#fff"}},
            "hovertext": [f"<b>{p[1]:.3g}× vs {esc(p[3])}</b><br>error vs fp32: "
                          f"{'n/a' if p[2] is None else f'{p[2]:.3g}'}<br>" + hover(p[0], full=False)
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
            f"{R.case_label(p[0].m)} on {p[0].m.backend} ({p[1]:.3g}×)" for p in no_error[:20])
    return Fig({"data": traces, "layout": lay}, caption=caption,
               search=" ".join(R.case_label(p[0].m) for ps in points.values() for p in ps), kind="precision")

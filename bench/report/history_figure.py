"""The history chart: median time per step over run dates, its 95% CI band, flagged points marked."""

from __future__ import annotations

from typing import Any, Sequence

from xpubench.fmt import fmt_time
from xpubench.report.figures import (LOG_SPAN_LINES, Fig, HistoryPoint, Series, axis_type, color, layout, rgba,
                                     rounded, si_axis)
from xpubench.report.records import esc

def history_lines(title: str, series: Sequence[Series]) -> Fig | None:
    """Median time per step over run dates, with a 95% CI band; flagged points marked."""
    traces: list[dict[str, Any]] = []
    ys_all: list[float] = []
    flagged: dict[str, list[tuple[HistoryPoint, float]]] = {"regression": [], "improvement": []}
    for i, s in enumerate(series):
        pts = sorted(s.points, key=lambda p: p.t_ms)
        if not any(p.entry.m.ok and p.entry.m.median for p in pts):
            continue
        c = color(i)
        group = f"g{i}"
        band_x, band_hi, band_lo = [], [], []
        xs, ys, custom = [], [], []
        for p in pts:
            med = p.entry.m.median if p.entry.m.ok else None
            ci = p.entry.m.ci95 if med is not None else None
            xs.append(p.t_ms)
            ys.append(rounded(med))
            rounds = p.entry.m.rounds
            flag = ""
            if p.flag in flagged and med is not None:
                flagged[p.flag].append((p, med))
                flag = f"{p.flag} {p.change:+.1%} vs previous run" if p.change is not None else p.flag
            ci_text = f"95% CI {fmt_time(ci[0])} – {fmt_time(ci[1])}" if ci else "no CI"
            custom.append([ci_text, esc(p.commit or "-"), rounds if rounds is not None else "n/a",
                           esc(p.entry.m.status) if med is None else flag])
            if med is not None:
                ys_all.append(med)
            if ci:
                band_x.append(p.t_ms)
                band_lo.append(rounded(ci[0]))
                band_hi.append(rounded(ci[1]))
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
                "x": [p.t_ms for p, _ in pts], "y": [rounded(v) for _, v in pts],
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

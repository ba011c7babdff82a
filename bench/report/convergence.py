"""The convergence page's parts: time to target per backend and precision, and the curves.

Reads plain measurement records (dicts as the results file holds them) of the
``train_to_target`` mode. Records of one case and backend from several seeds
(``--repeat``, several run files) are one group: its bar is the median time to
target, its whiskers the fastest and slowest run that reached it (MLPerf reports
the spread across runs). A run that missed its target counts as an infinitely
long one, so a group where half or more missed has no bar and says so.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from xpubench.measure.convergence import TO_TARGET_MODE, median_or_none, summarize_seeds
from xpubench.report import records as R
from xpubench.report.figures import Fig, color, layout
from xpubench.report.records import attr, esc
from xpubench.results.view import Measurement, finite, split_backend

Record = Mapping[str, Any]
TABLE_TITLES = {
    "runs": "runs that reached the target / runs (one per seed)",
    "time to target": "median over runs of training + evaluation seconds until the target was met "
                      "(compile time apart); a missed target counts as infinite",
    "spread": "fastest and slowest run that reached the target",
    "best": "median over runs of the best held-out figure",
    "s/step": "median training seconds per optimizer step",
}


@dataclass
class Group:
    """The runs (seeds) of one case on one backend."""

    case: str
    backend: str
    runs: list[Record]

    @property
    def summary(self) -> dict[str, Any]:
        return summarize_seeds(self.runs)

    @property
    def metric(self) -> str:
        return str(self.runs[0].get("metric_name") or "metric")

    @property
    def target(self) -> float | None:
        return finite(self.runs[0].get("target"))


def is_convergence(m: Record) -> bool:
    return m.get("mode") == TO_TARGET_MODE


def groups(records: Iterable[Record]) -> dict[str, list[Group]]:
    """Case -> its groups, backends ordered framework, device, precision."""
    by: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for m in records:
        if is_convergence(m):
            by[(Measurement.of(m).case_name, str(m.get("backend", "")))].append(m)
    out: dict[str, list[Group]] = defaultdict(list)
    for (case, backend), runs in sorted(by.items(), key=lambda kv: (kv[0][0], _backend_key(kv[0][1]))):
        out[case].append(Group(case, backend, runs))
    return dict(out)


def short_name(case: str) -> str:
    """``mnist_cnn[data=digits,...]`` -> ``mnist_cnn``: the parameters are long for a title."""
    return case.split("[", 1)[0]


def _parts(backend: str) -> tuple[str, str, str]:
    p = split_backend(backend)
    return p.framework, p.device, p.precision


def _backend_key(backend: str) -> tuple:
    fw, dev, prec = _parts(backend)
    order = ("fp32", "tf32") + R.REDUCED_PRECISIONS_ORDER
    return fw, dev, order.index(prec) if prec in order else len(order), prec


def _fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def time_to_target_bars(case: str, gs: Sequence[Group]) -> Fig | None:
    """Bars: median time to target; x = framework:device, one trace per precision; whiskers: min..max."""
    rows = [(g, g.summary) for g in gs]
    if not any(s["time_to_target_s"]["median"] is not None for _, s in rows):
        return None
    traces = []
    precisions = sorted({_parts(g.backend)[2] for g, _ in rows}, key=lambda p: _backend_key(f"::{p}"))
    for i, prec in enumerate(precisions):
        mine = [(g, s) for g, s in rows if _parts(g.backend)[2] == prec]
        med = [s["time_to_target_s"]["median"] for _, s in mine]
        lo = [s["time_to_target_s"]["min"] for _, s in mine]
        hi = [s["time_to_target_s"]["max"] for _, s in mine]
        traces.append({
            "type": "bar", "name": esc(prec),
            "x": [esc(":".join(_parts(g.backend)[:2])) for g, _ in mine],
            "y": [R.short_num(v) for v in med],
            "text": [f"{s['converged']}/{s['runs']}" for _, s in mine], "textposition": "inside",
            "insidetextanchor": "start",
            "hovertext": [f"{esc(g.backend)}<br>median {_fmt(m)} s over {s['runs']} runs, "
                          f"{s['converged']} reached the target<br>fastest {_fmt(a)} s, slowest {_fmt(b)} s"
                          for (g, s), m, a, b in zip(mine, med, lo, hi)],
            "hovertemplate": "%{hovertext}<extra></extra>",
            "marker": {"color": color(i)},
            "error_y": {"type": "data", "symmetric": False, "thickness": 1.2, "width": 3, "color": "#333",
                        "array": [R.short_num(b - m) if None not in (m, b) else None for m, b in zip(med, hi)],
                        "arrayminus": [R.short_num(m - a) if None not in (m, a) else None
                                       for m, a in zip(med, lo)]},
        })
    target = gs[0].target
    title = f"{esc(short_name(case))}: time to {esc(gs[0].metric)} {_fmt(target, 4)} (lower is better)"
    lay = layout(title, "framework:device", "seconds to target (median of runs)", barmode="group", bargap=0.3)
    caption = ("Bars: median seconds of training and evaluation until the held-out target was met, compile "
               "time apart; whiskers: fastest and slowest run that met it; label: runs that met it / runs.")
    return Fig({"data": traces, "layout": lay}, caption=caption, search=f"{case} time to target",
               kind="time_to_target")


def metric_curves(case: str, gs: Sequence[Group]) -> Fig | None:
    """Held-out metric against training + evaluation time, one line per run, a colour per backend."""
    traces = []
    for i, g in enumerate(gs):
        for k, m in enumerate(g.runs):
            curve = [p for p in m.get("curve") or [] if isinstance(p, Mapping)]
            if not curve:
                continue
            traces.append({
                "type": "scatter", "mode": "lines+markers", "name": esc(g.backend),
                "legendgroup": esc(g.backend), "showlegend": k == 0,
                "x": [R.short_num(finite(p.get("time_s"))) for p in curve],
                "y": [R.short_num(finite(p.get("metric"))) for p in curve],
                "hovertext": [f"{esc(g.backend)} seed {esc(m.get('seed'))}<br>epoch {esc(p.get('epoch'))}, "
                              f"{esc(p.get('steps'))} steps" for p in curve],
                "hovertemplate": "%{hovertext}<br>%{x:.3g} s: %{y:.4g}<extra></extra>",
                "line": {"color": color(i), "width": 1.5}, "marker": {"size": 4},
            })
    if not traces:
        return None
    metric, target = gs[0].metric, gs[0].target
    lay = layout(f"{esc(short_name(case))}: held-out {esc(metric)} against time", "seconds (training + evaluation)",
                 esc(metric))
    if target is not None:
        lay["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": target, "y1": target,
                          "line": {"dash": "dot", "color": "#555", "width": 1}}]
    caption = (f"One line per run (seed); dotted: the target {_fmt(target, 4)}. Each point is one evaluation "
               "on the held-out set.")
    return Fig({"data": traces, "layout": lay}, caption=caption, search=f"{case} curves", kind="convergence_curve")


def summary_table(case: str, gs: Sequence[Group]) -> str:
    head = ("backend", "runs", "time to target", "spread", "epochs", "steps", "best", "s/step", "compile s",
            "stopped by")
    rows = []
    for g in gs:
        s = g.summary
        t = s["time_to_target_s"]
        step = [Measurement.of(m).median for m in g.runs if Measurement.of(m).median is not None]
        compile_s = [finite(m.get("compile_s")) for m in g.runs if finite(m.get("compile_s")) is not None]
        decisions = sorted({str((m.get("early_stopping") or {}).get("decision") or Measurement.of(m).status) for m in g.runs})
        cells = (g.backend, f"{s['converged']}/{s['runs']}", _fmt(t["median"]),
                 "—" if t["min"] is None else f"{t['min']:.3g} – {t['max']:.3g}",
                 _fmt(s["epochs_to_target_median"]), _fmt(s["steps_to_target_median"]),
                 _fmt(s["best_metric_median"], 4), _fmt(median_or_none(step)), _fmt(median_or_none(compile_s)),
                 ", ".join(d.replace("_", " ") for d in decisions))
        tds = "".join(f"<td>{esc(c)}</td>" for c in cells)
        rows.append(f'<tr data-filter="{attr(case + " " + g.backend)}">{tds}</tr>')
    ths = "".join(f'<th title="{attr(TABLE_TITLES[h])}">{esc(h)}</th>' if h in TABLE_TITLES else f"<th>{esc(h)}</th>"
                  for h in head)
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def section_html(records: Iterable[Record], figure: Callable[[Fig | None], str]) -> str:
    """The page body: per case a heading, the table, the bars and the curves.

    ``figure`` places a Fig on the page and returns its HTML (``Page.figure`` in pages.py).
    """
    by_case = groups(records)
    if not by_case:
        return '<p class="empty">no convergence runs</p>'
    parts = []
    for case, gs in by_case.items():
        metric = gs[0].metric
        target = gs[0].target
        parts.append(f"<h2>{esc(short_name(case))}</h2><p>Target: held-out {esc(metric)} "
                     f"{'≥' if gs[0].runs[0].get('higher_is_better', True) else '≤'} {esc(_fmt(target, 4))}. "
                     f"Case: <code>{esc(case)}</code>.</p>")
        parts.append(summary_table(case, gs))
        parts.append(figure(time_to_target_bars(case, gs)))
        parts.append(figure(metric_curves(case, gs)))
    return "".join(parts)

"""Plotly figures as plain dicts: the shared parts (entries, palette, axes, layout, ordering).

Each chart family lives in its own module (``bar_figures``, ``ratio_figures``,
``history_figure``, ``roofline``): one small function per chart taking
:class:`Entry` lists and returning a :class:`Fig` or None when there is nothing
to draw. Figures are built as plain JSON-ready dicts (no ``plotly.graph_objects``:
validating thousands of points in Python would cost seconds) and drawn by
plotly.js in the page. A new chart is one more function plus one call in a page
module.

All strings from results files pass through :func:`records.esc`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from xpubench.report import records as R
from xpubench.results.view import Measurement, split_backend

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#843c39", "#7b4173"]
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
LOG_SPAN = 30.0  # a positive axis spanning this factor or more is drawn on a log scale
LOG_SPAN_LINES = 10.0  # the same for lines over time (relative changes matter most)


@dataclass
class Entry:
    """A measurement (its view) with where it came from."""

    m: Measurement
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


def ordered(items: Iterable[str]) -> list[str]:
    """The distinct items in first-seen order."""
    seen: dict[str, None] = {}
    for i in items:
        seen.setdefault(i, None)
    return list(seen)


def precision_rank(p: str) -> int:
    order = ("fp64", "fp32") + R.REDUCED_PRECISIONS_ORDER
    return order.index(p) if p in order else len(order)


def backend_order(backends: Iterable[str], first: str | None = None) -> list[str]:
    """Backends by device, framework, then precision (fp32 first); ``first`` leads when present."""
    def rank(b: str) -> tuple:
        p = split_backend(b)
        return (p.device, p.framework, precision_rank(p.precision), b)

    bs = sorted(set(backends), key=rank)
    if first in bs:
        bs.remove(first)
        bs.insert(0, first)
    return bs


def hover(e: Entry, full: bool = True) -> str:
    return R.hover_text(e.m, machine_id=e.machine_id, run_label=e.run_label, full=full)


def rounded(x: float | None) -> float | None:
    return R.short_num(x)

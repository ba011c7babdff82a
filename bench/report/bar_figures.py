"""Bar charts by backend or machine: throughput, peak memory, energy per unit of work, MFU."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from xpubench.fmt import fmt_pct, fmt_si, fmt_time
from xpubench.report import records as R
from xpubench.report.figures import (Entry, Fig, axis_type, backend_order, color, hover, layout, ordered, rounded,
                                     si_axis, singular)
from xpubench.report.records import esc
from xpubench.results.view import Measurement, finite

Value = Callable[[Measurement], Any]


# --------------------------------------------------------------------------- bars by backend
def _bars_by_backend(entries: Sequence[Entry], value: Value, title: str, y_title: str, *,
                     error: Value | None = None, pattern: Value | None = None, first_backend: str | None = None,
                     kind: str = "") -> Fig | None:
    """Grouped bars: x = case, one trace per backend; ``value(m)`` gives the bar height."""
    rows = [(e, value(e.m)) for e in entries if e.m.ok]
    rows = [(e, v) for e, v in rows if v is not None]
    if not rows:
        return None
    cases = ordered(esc(R.case_label(e.m)) for e, _ in rows)
    traces = []
    for i, b in enumerate(backend_order((e.m.backend for e, _ in rows), first_backend)):
        mine = [(e, v) for e, v in rows if e.m.backend == b]
        trace: dict[str, Any] = {
            "type": "bar", "name": esc(b),
            "x": [esc(R.case_label(e.m)) for e, _ in mine],
            "y": [rounded(v) for _, v in mine],
            "hovertext": [hover(e) for e, _ in mine],
            "hovertemplate": "%{hovertext}<extra></extra>",
            "marker": {"color": color(i, b)},
        }
        if error is not None:
            cis = [error(e.m) for e, _ in mine]
            trace["error_y"] = {
                "type": "data", "symmetric": False, "thickness": 1.2, "width": 3, "color": "#333",
                "array": [rounded(max(ci[1] - v, 0.0)) if ci else None for ci, (_, v) in zip(cis, mine)],
                "arrayminus": [rounded(max(v - ci[0], 0.0)) if ci else None for ci, (_, v) in zip(cis, mine)],
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
    mine = [e for e in entries if e.m.unit == unit]
    fig = _bars_by_backend(mine, lambda m: m.throughput, title or f"Throughput ({esc(unit)}/s, higher is better)",
                           f"throughput ({esc(unit)}/s)", error=lambda m: m.throughput_ci, first_backend=baseline,
                           kind="throughput")
    if fig:
        si_axis(fig.spec["layout"]["yaxis"], "", [e.m.throughput for e in mine if e.m.ok])
        fig.caption = "Bars: median throughput; whiskers: 95% confidence interval of the median."
    return fig


def memory_bars(entries: Sequence[Entry], *, baseline: str | None = None) -> Fig | None:
    """Peak memory per case and backend (device peak where measured, else host peak)."""
    def mib(m: Measurement) -> float | None:
        peak = m.peak_memory
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
    mine = [e for e in entries if e.m.unit == unit]
    def per_unit(m: Measurement) -> float | None:
        j = m.energy.joules_per_unit if m.energy else None
        return j if j is not None and j > 0 else None

    def estimated(m: Measurement) -> bool:
        return per_unit(m) is not None and m.energy.is_estimate

    any_estimate = any(estimated(e.m) for e in mine if e.m.ok)
    one = esc(singular(unit))
    title = f"Energy per {one} (J/{one}, lower is better)"
    if any_estimate:
        title += "<br><sup>hatched bars are ESTIMATES, not measurements</sup>"
    fig = _bars_by_backend(mine, per_unit, title, f"energy (J per {one})", first_backend=baseline,
                           pattern=lambda m: "/" if estimated(m) else "",
                           kind="energy")
    if fig:
        si_axis(fig.spec["layout"]["yaxis"], "J", [per_unit(e.m) for e in mine if e.m.ok])
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
        rf = e.m.roofline
        if not e.m.ok or rf is None:
            continue
        mm, ms = finite(rf.get("mfu_measured")), finite(rf.get("mfu_spec"))
        if mm is not None or ms is not None:
            rows.append((e, rf, mm, ms))
    if not rows:
        return None
    backends = backend_order({e.m.backend for e, *_ in rows})
    rows.sort(key=lambda r: (R.case_label(r[0].m), backends.index(r[0].m.backend)))
    x = [[esc(R.case_label(e.m)) for e, *_ in rows], [esc(e.m.backend) for e, *_ in rows]]
    traces = []
    for idx, (label, col, shape) in enumerate((("MFU vs measured peak (xpubench probe)", "#1f5fbf", ""),
                                               ("MFU vs spec-sheet peak", "#7fa7e0", "/"))):
        ys, hovers = [], []
        for e, rf, mm, ms in rows:
            v = (mm, ms)[idx]
            ys.append(rounded(v))
            ach = fmt_si(rf.get("achieved_flops_per_s"), "FLOP/s")
            if idx == 0:
                peak_text = ("measured matmul peak " + fmt_si(finite(rf.get("peak_flops_per_s")), "FLOP/s")
                             if R.ceilings_kind(rf) == "measured" else "no measured peak for this device")
            else:
                spec = finite(rf.get("spec_peak_flops_per_s"))
                peak_text = (f"spec peak {fmt_si(spec, 'FLOP/s')} ({esc(rf.get('spec_name') or '?')})"
                             if spec is not None else "no spec-sheet peak for this device")
            hovers.append(f"<b>{esc(R.case_label(e.m))}</b><br>{esc(e.m.backend)}"
                          f"<br>{label}: {fmt_pct(v)}<br>achieved {ach} (model FLOPs per step ÷ median step "
                          f"time)<br>{peak_text}<br>median step: {fmt_time(e.m.median, unknown=R.NA)}")
        traces.append({"type": "bar", "name": label, "x": x, "y": ys, "hovertext": hovers,
                       "hovertemplate": "%{hovertext}<extra></extra>",
                       "text": [fmt_pct(v) if v is not None else "" for v in ys], "textposition": "outside",
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


# --------------------------------------------------------------------------- machines
def machines_bars(entries: Sequence[Entry], unit: str, suite: str) -> Fig | None:
    """The same case across machines: x = case / backend, one bar per machine."""
    rows = [(e, e.m.throughput) for e in entries if e.m.unit == unit and e.m.ok]
    rows = [(e, v) for e, v in rows if v is not None]
    if not rows:
        return None
    backends = backend_order({e.m.backend for e, _ in rows})
    cats = sorted({(R.case_label(e.m), e.m.backend) for e, _ in rows},
                  key=lambda c: (c[0], backends.index(c[1])))
    by_cat = {(e.machine_id, R.case_label(e.m), e.m.backend): (e, v) for e, v in rows}
    x = [[esc(c) for c, _ in cats], [esc(b) for _, b in cats]]
    traces = []
    for i, machine in enumerate(sorted({e.machine_id for e, _ in rows})):
        # every trace lists every category (None where the machine lacks it): a stable order
        cells = [by_cat.get((machine, c, b)) for c, b in cats]
        cis = [cell[0].m.throughput_ci if cell else None for cell in cells]
        traces.append({
            "type": "bar", "name": esc(machine), "x": x,
            "y": [rounded(cell[1]) if cell else None for cell in cells],
            "error_y": {"type": "data", "symmetric": False, "thickness": 1.2, "width": 3, "color": "#333",
                        "array": [rounded(max(ci[1] - cell[1], 0)) if ci and cell else None
                                  for ci, cell in zip(cis, cells)],
                        "arrayminus": [rounded(max(cell[1] - ci[0], 0)) if ci and cell else None
                                       for ci, cell in zip(cis, cells)]},
            "hovertext": [hover(cell[0]) if cell else "" for cell in cells],
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

"""The distributed suite's scaling view: throughput against world size beside the ideal line, and efficiencies.

Reads plain record dicts (``world_size``, ``throughput_per_s``, ``scaling_efficiency``
and its CI, ``communication.share``): nothing here imports a backend or a suite.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping

from xpubench.fmt import DASH, fmt_pct
from xpubench.report.figures import Fig, color, layout, si
from xpubench.report.page import table, td
from xpubench.report.records import esc

Record = Mapping[str, Any]


def _case_title(r: Record) -> str:
    params = {k: v for k, v in (r.get("params") or {}).items() if k not in ("world_size",)}
    inner = ",".join(f"{k}={v}" for k, v in params.items())
    return f"{r.get('name')}[{inner}]"


def groups(records: Iterable[Record]) -> dict[str, dict[str, list[Record]]]:
    """case title -> backend -> ok records by world size (the newest per world size wins)."""
    out: dict[str, dict[str, dict[int, Record]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r.get("status") == "ok" and r.get("world_size") and r.get("throughput_per_s"):
            out[_case_title(r)][str(r.get("backend"))][int(r["world_size"])] = r
    return {case: {b: [ws[w] for w in sorted(ws)] for b, ws in by_b.items()} for case, by_b in out.items()}


def scaling_figure(case: str, by_backend: Mapping[str, list[Record]]) -> Fig | None:
    """Throughput against world size per backend, with each backend's ideal line (W x throughput at 1)."""
    traces: list[dict[str, Any]] = []
    unit = ""
    for i, (backend, recs) in enumerate(sorted(by_backend.items())):
        unit = recs[0].get("unit") or unit
        xs = [r["world_size"] for r in recs]
        traces.append({"type": "scatter", "mode": "lines+markers", "name": esc(backend), "x": xs,
                       "y": [r["throughput_per_s"] for r in recs], "marker": {"color": color(i)},
                       "hovertext": [f"{esc(backend)} W={r['world_size']}: {si(r['throughput_per_s'])} {esc(unit)}/s"
                                     f", efficiency {fmt_pct(r.get('scaling_efficiency'))}" for r in recs],
                       "hovertemplate": "%{hovertext}<extra></extra>"})
        one = next((r for r in recs if r["world_size"] == 1), None)
        if one is not None and len(xs) > 1:
            traces.append({"type": "scatter", "mode": "lines", "name": "ideal", "legendgroup": esc(backend),
                           "x": xs, "y": [w * one["throughput_per_s"] for w in xs],
                           "line": {"dash": "dot", "color": color(i)}, "hoverinfo": "skip"})
    if not traces:
        return None
    spec = {"data": traces, "layout": layout(f"{esc(case)}: throughput by world size", "world size (ranks)",
                                             f"{esc(unit)}/s (global)")}
    spec["layout"]["xaxis"]["dtick"] = 1
    return Fig(spec, caption=f"{case}: measured global throughput against W x throughput(1) (dotted)",
               search=case, kind="scaling")


def _row(case: str, r: Record) -> tuple[str, str]:
    ci = r.get("scaling_efficiency_ci95")
    ci_text = f"{fmt_pct(ci[0])} – {fmt_pct(ci[1])}" if ci else DASH
    comm = (r.get("communication") or {}).get("share")
    cells = (td(case) + td(r.get("backend")) + td(r.get("world_size"), "num") + td(r.get("nnodes", 1), "num")
             + td(f"{si(r['throughput_per_s'])}", "num")
             + td(si(r["per_device_throughput_per_s"]) if r.get("per_device_throughput_per_s") else DASH, "num")
             + td(fmt_pct(r.get("scaling_efficiency")), "num") + td(ci_text, "num")
             + td(fmt_pct(comm), "num", title=(r.get("communication") or {}).get("method"))
             + td("simulated" if r.get("simulated_devices") else "real"))
    return (f"{case} {r.get('backend')}", cells)


TITLES = {"efficiency": "throughput(W) / (W x throughput(1)); 1 = perfect scaling",
          "comm share": "1 - (step without the gradient exchange) / (step): the share of the step spent "
                        "communicating; hover for how the comm-free step was made",
          "devices": "simulated: one CPU split into several XLA devices (--xla_force_host_platform_device_count)"}


def scaling_section(records: Iterable[Record], figure: Callable[[Fig | None], str]) -> str:
    """Per case the scaling chart, then one efficiency table of every case and world size."""
    by_case = groups(records)
    if not by_case:
        return ""
    parts = ['<h3>Scaling</h3><p class="muted">Global throughput by world size against the ideal line, '
             "and the efficiency of each world size against world size 1 of the same run.</p>"]
    parts += [figure(scaling_figure(case, by_b)) for case, by_b in by_case.items()]
    rows = [_row(case, r) for case, by_b in by_case.items() for recs in by_b.values() for r in recs]
    parts.append(table(["case", "backend", "world size", "nodes", "throughput/s", "per device/s", "efficiency",
                        "95% CI", "comm share", "devices"], rows, titles=TITLES, cls="scaling"))
    return "".join(parts)

"""The latency–throughput view: per backend, batch-1 latency against batched throughput.

Inference workloads measure each variant twice: a throughput case (the workload's
batch) and a latency case (``latency=True``, batch 1, every call timed on its own;
``latency_s`` holds p50/p90/p99). This figure pairs the two records of one variant
on one backend: x = p50 latency (whisker up to p99), y = throughput of the batched
case. Down-and-right is worse, up-and-left better. One figure per workload (its
unit of work); one trace per backend. Reads plain record dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from xpubench.report.figures import Fig, color, layout, si, si_axis
from xpubench.report.records import esc, short_num

PAIRING_DROPS = ("batch", "latency")  # params that differ between a variant's two cases


@dataclass
class LatencyPoint:
    """One variant on one backend: its latency case and (when measured) its throughput case."""

    workload: str  # suite/name
    variant: str  # the remaining params, e.g. "variant=dense"
    backend: str
    unit: str
    p50: float
    p90: float | None
    p99: float | None
    calls: int | None
    throughput: float | None
    batch: Any


def _variant(params: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items() if k not in PAIRING_DROPS)


def _key(m: Mapping[str, Any]) -> tuple:
    return (m.get("machine_id", ""), m.get("suite"), m.get("name"), _variant(m.get("params") or {}),
            m.get("backend"))


def latency_points(records: Iterable[Mapping[str, Any]]) -> list[LatencyPoint]:
    """Pair each ok latency record with the ok throughput record of the same variant and backend."""
    ok = [m for m in records if (m.get("status") or "ok") == "ok"]
    batched = {_key(m): m for m in ok if not (m.get("params") or {}).get("latency")}
    points = []
    for m in ok:
        lat = m.get("latency_s")
        if not (m.get("params") or {}).get("latency") or not lat or lat.get("p50") is None:
            continue
        twin = batched.get(_key(m))
        points.append(LatencyPoint(
            workload=f"{m.get('suite')}/{m.get('name')}", variant=_variant(m.get("params") or {}),
            backend=str(m.get("backend")), unit=str(m.get("unit") or "units"), p50=float(lat["p50"]),
            p90=lat.get("p90"), p99=lat.get("p99"), calls=lat.get("calls"),
            throughput=twin.get("throughput_per_s") if twin else None,
            batch=(twin.get("params") or {}).get("batch") if twin else None))
    return points


def _hover(p: LatencyPoint) -> str:
    def t(x: float | None) -> str:
        return "–" if x is None else si(x) + "s"

    thr = "not measured" if p.throughput is None else f"{si(p.throughput)} {esc(p.unit)}/s at batch {esc(p.batch)}"
    return (f"<b>{esc(p.workload)} [{esc(p.variant)}]</b><br>{esc(p.backend)}<br>"
            f"batch 1: p50 {t(p.p50)} · p90 {t(p.p90)} · p99 {t(p.p99)} ({esc(p.calls)} calls)<br>"
            f"throughput: {thr}")


def latency_throughput_figures(records: Sequence[Mapping[str, Any]]) -> list[Fig]:
    """One figure per workload with paired points; none when no latency case was measured."""
    points = [p for p in latency_points(records) if p.throughput is not None]
    figs = []
    for workload in sorted({p.workload for p in points}):
        mine = [p for p in points if p.workload == workload]
        unit = mine[0].unit
        traces = []
        for i, backend in enumerate(sorted({p.backend for p in mine})):
            pts = [p for p in mine if p.backend == backend]
            traces.append({
                "type": "scatter", "mode": "markers+text", "name": esc(backend),
                "x": [short_num(p.p50) for p in pts], "y": [short_num(p.throughput) for p in pts],
                "text": [esc(p.variant) for p in pts], "textposition": "top center",
                "error_x": {"type": "data", "symmetric": False, "thickness": 1.2, "width": 3,
                            "array": [short_num(max((p.p99 or p.p50) - p.p50, 0.0)) for p in pts],
                            "arrayminus": [0.0] * len(pts)},
                "hovertext": [_hover(p) for p in pts], "hovertemplate": "%{hovertext}<extra></extra>",
                "marker": {"size": 10, "color": color(i, backend)},
            })
        lay = layout(f"{esc(workload)}: latency at batch 1 vs throughput (up and left is better)",
                     "latency at batch 1 (p50; whisker to p99)", f"throughput ({esc(unit)}/s)")
        lay["xaxis"]["type"] = "log"
        si_axis(lay["xaxis"], "s", [p.p50 for p in mine] + [p.p99 for p in mine if p.p99])
        si_axis(lay["yaxis"], "", [p.throughput for p in mine])
        figs.append(Fig({"data": traces, "layout": lay}, kind="latency",
                        search=f"{workload} latency " + " ".join(sorted({p.backend for p in mine})),
                        caption=("Each point is one variant on one backend: x is the median latency of a "
                                 "batch-1 call, timed call by call (whisker to the 99th percentile), y the "
                                 "median throughput of the batched case.")))
    return figs

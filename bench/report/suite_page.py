"""A suite's page: per machine the comparison charts by backend and the efficiency table against the roofline."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import quote

from xpubench.fmt import DASH, fmt_pct, fmt_si, fmt_time
from xpubench.hardware.roofline import MFU_SUITES
from xpubench.measure.convergence import TO_TARGET_MODE
from xpubench.report import bar_figures, convergence, latency, ratio_figures, scaling
from xpubench.report.figures import Entry, Fig, backend_order, si
from xpubench.report.model import Model
from xpubench.report.page import ROOFLINE, Page, status_table, table, td
from xpubench.report.records import NA, attr, case_label, ceilings_kind, esc
from xpubench.results.view import finite


def choose_baseline(entries: Sequence[Entry], requested: str | None) -> str | None:
    """The requested backend, else the fp32 CPU backend with most ok cases (torch first on ties)."""
    ok = Counter(e.m.backend for e in entries if e.m.ok and e.m.throughput)
    if requested:
        return requested if ok.get(requested) else None
    parts = {e.m.backend: e.m.backend_parts for e in entries}
    cands = [b for b in ok if parts[b].device == "cpu" and parts[b].precision == "fp32"]
    if not cands:
        return None
    return sorted(cands, key=lambda b: (-ok[b], parts[b].framework != "torch", b))[0]


def _units(entries: Iterable[Entry]) -> list[str]:
    return sorted({e.m.unit for e in entries if e.m.ok})


def suite_figures(entries: Sequence[Entry], baseline: str | None) -> list[tuple[Fig, bool]]:
    """The comparison figures of one suite on one machine, in page order: (figure, wide)."""
    figs: list[tuple[Fig | None, bool]] = []
    for u in _units(entries):
        figs.append((bar_figures.throughput_bars(entries, u, baseline=baseline), True))
    if baseline:
        figs.append((ratio_figures.speedup_heatmap(entries, baseline), True))
    figs.append((ratio_figures.precision_scatter(entries), False))
    figs.append((bar_figures.mfu_bars(entries), True))
    figs.append((bar_figures.memory_bars(entries, baseline=baseline), False))
    for u in _units(entries):
        figs.append((bar_figures.energy_bars(entries, u, baseline=baseline), False))
    return [(f, w) for f, w in figs if f is not None]


def suite_page(model: Model, suite: str) -> Page:
    page = Page(model, model.suite_pages[suite], f"Suite: {suite}")
    page.add('<p class="lead">Latest run of each machine: throughput by backend, speedup against a '
             "baseline backend, reduced-precision trade-offs, peak memory and energy"
             + (", MFU" if suite in MFU_SUITES else "")
             + ", and a table of every case with its efficiency against the roofline. Hover a bar for "
             "the full record.</p>")
    all_entries: list[Entry] = []
    for mid in model.machine_ids:
        entries = sorted(model.latest_entries(mid, suite), key=lambda e: (case_label(e.m), e.m.backend))
        if not entries:
            continue
        all_entries += entries
        baseline = choose_baseline(entries, model.baseline)
        runs = sorted({e.run_label for e in entries})
        n_ok = sum(e.m.ok for e in entries)
        parts = [f'<section data-filter="{attr(mid)}"><h2>Machine {esc(mid)}</h2>',
                 f'<p class="muted">{n_ok} of {len(entries)} measurements ok · from '
                 f'{esc("; ".join(runs[-3:]))}{" …" if len(runs) > 3 else ""}</p>']
        if baseline is None:
            wanted = model.baseline or "an fp32 CPU backend"
            parts.append(f'<p class="note">No speedup heatmap: {esc(wanted)} has no ok measurement '
                         "on this machine (choose one with --baseline).</p>")
        else:
            parts.append(f'<p class="muted">Baseline for speedups: {esc(baseline)}</p>')
        if any(e.m.mode == TO_TARGET_MODE for e in entries):
            # every seed of the machine's newest run of this suite: time to target and curves
            newest = [r for r in model.runs if r.machine_id == mid and any(m.suite == suite for m in r.measurements)]
            parts.append(convergence.section_html([m.raw for m in newest[-1].measurements if m.suite == suite],
                                                  page.figure))
        # distributed cases: throughput by world size against the ideal line, efficiency table
        parts.append(scaling.scaling_section([e.m.raw for e in entries], page.figure))
        cards = [page.figure(f, wide=w) for f, w in suite_figures(entries, baseline)]
        # latency cases (batch 1, every call timed): p50/p99 latency against batched throughput
        cards += [page.figure(f, wide=True) for f in latency.latency_throughput_figures([e.m.raw for e in entries])]
        parts.append('<div class="grid">' + "".join(cards) + "</div>" if cards
                     else '<p class="empty">No ok measurements to plot.</p>')
        parts.append(efficiency_section(entries, mid, training=suite in MFU_SUITES))
        parts.append("</section>")
        page.add("".join(parts))
    page.add(status_table(all_entries, "Latest run of each machine, this suite."))
    return page


EFFICIENCY_TITLES = {
    "±95% CI": "half-width of the 95% confidence interval of the median, relative to the median",
    "FLOP/s": "achieved: FLOPs per step (the workload's declared work) ÷ median step time",
    "% of bound": "achieved FLOP/s (or bytes/s for pure data movement) as a percent of the roofline bound "
                  "min(matmul peak, intensity × bandwidth) at this precision; – where FLOPs, bytes or the "
                  "ceilings are unknown. Hover a cell for the bound and the ceilings used.",
    "bound": "which roof binds at this case's arithmetic intensity: memory (slope) or compute (flat)",
    "MFU measured": "model FLOPs utilization (PaLM) against the matmul peak xpubench probe measured",
    "MFU spec": "model FLOPs utilization (PaLM) against the vendor spec-sheet peak",
    "ceilings": "where the peaks came from: measured by xpubench probe on this machine, the vendor spec "
                "sheet, or none (run xpubench probe)",
}


def _ceilings_label(rf: Mapping[str, Any] | None) -> str:
    kind = ceilings_kind(rf)
    if kind == "spec" and rf and rf.get("spec_name"):
        return f"spec: {rf['spec_name']}"
    return kind


def _efficiency_row(e: Entry, training: bool) -> tuple[str, str]:
    m = e.m
    rf = m.roofline or {}
    med, thr = m.median, m.throughput
    ci = m.ci95
    ci_text = f"±{(ci[1] - ci[0]) / 2 / med:.1%}" if ci and med else DASH
    frac = finite(rf.get("fraction_of_bound"))
    source = str(rf.get("ceilings_source") or "no FLOPs or bytes recorded")
    bound = finite(rf.get("bound_flops_per_s"))
    if frac is not None:
        intensity = finite(rf.get("intensity"))
        frac_title = (f"{fmt_pct(frac)} of the {rf.get('bound_kind') or 'unknown'} bound"
                      + (f" {fmt_si(bound, 'FLOP/s')}" if bound is not None else "")
                      + (f" at {intensity:.3g} FLOP/byte" if intensity else "")
                      + f"; ceilings: {source}")
    else:
        frac_title = f"unknown; ceilings: {source}"
    cells = (td(m.case_name) + td(m.mode) + td(m.backend)
             + td(fmt_time(med, unknown=NA), "num") + td(ci_text, "num")
             + td(f"{si(thr)} {m.unit}/s" if thr else DASH, "num")
             + td(fmt_si(rf.get("achieved_flops_per_s"), "FLOP/s"), "num")
             + td(fmt_pct(frac), "num eff", title=frac_title)
             + td(rf.get("bound_kind") or DASH))
    if training:
        peak = finite(rf.get("peak_flops_per_s"))
        measured_title = (f"of the measured matmul peak {fmt_si(peak, 'FLOP/s')}; ceilings: {source}"
                          if ceilings_kind(rf) == "measured" and peak else f"no measured peak; ceilings: {source}")
        cells += (td(fmt_pct(rf.get("mfu_measured")), "num mfu", title=measured_title)
                  + td(fmt_pct(rf.get("mfu_spec")), "num mfu",
                       title=(f"of the spec-sheet peak {fmt_si(rf.get('spec_peak_flops_per_s'), 'FLOP/s')} "
                              f"({rf.get('spec_name')})" if rf.get("spec_name") else "no spec-sheet row")))
    cells += td(_ceilings_label(rf) if rf else DASH, "ceil", title=source)
    return (f"{e.machine_id} {case_label(m)} {m.backend}", cells)


def efficiency_section(entries: Sequence[Entry], machine_id: str, *, training: bool) -> str:
    """Every ok case of one machine and suite: time, throughput, achieved FLOP/s, % of the roofline bound."""
    ok = [e for e in entries if e.m.ok]
    if not ok:
        return ""
    order = backend_order(e.m.backend for e in ok)
    ok.sort(key=lambda e: (case_label(e.m), order.index(e.m.backend)))
    headers = ["case", "mode", "backend", "median", "±95% CI", "throughput", "FLOP/s", "% of bound", "bound"]
    if training:
        headers += ["MFU measured", "MFU spec"]
    headers.append("ceilings")
    link = f"{ROOFLINE}#q={quote(machine_id, safe='')}"
    return (f'<h3>Efficiency: every case against the roofline</h3><p class="muted">Percent of the roofline '
            f'bound each case reached (hover a cell for the bound and the ceilings used); – where it cannot be '
            f'known. <a href="{attr(link)}">Roofline charts of this machine</a>.</p>'
            + table(headers, (_efficiency_row(e, training) for e in ok), titles=EFFICIENCY_TITLES,
                    cls="efficiency"))

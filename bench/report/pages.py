"""The static site: index, one comparison page per suite, roofline, machines, history.

Suite pages end each machine's section with an efficiency table (percent of the
roofline bound, MFU on training); ``roofline.html`` has one roofline chart per
machine and precision. Records from files written before the roofline blocks
existed get theirs worked out here, against the ceilings their run embedded.

Pages are assembled from small HTML helpers; every value from a results file
goes through :func:`records.esc` (text) or :func:`records.attr` (attributes),
and figure data is embedded as JSON with ``<``, ``>`` and ``&`` written as
``\\u003c`` etc., so no results file can inject markup or script.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from urllib.parse import quote

from xpubench.regress import compare
from xpubench.report import assets, figures as F
from xpubench.report import records as R
from xpubench.report import roofline as RL
from xpubench.report.load import LoadedRun, LoadResult
from xpubench.report.records import attr, esc
from xpubench.hardware.roofline import MFU_SUITES, roofline_fields

GENERATOR = "xpubench report"
INDEX = "index.html"
MACHINES = "machines.html"
HISTORY = "history.html"
ROOFLINE = "roofline.html"

Key = tuple[str, str, str, str]  # suite, case, mode, backend (within one machine)


# --------------------------------------------------------------------------- model
@dataclass
class Model:
    """What the pages are made from."""

    runs: list[LoadedRun]
    problems: list[str]
    baseline: str | None
    title: str
    threshold: float
    suite_thresholds: dict[str, float]
    rule: str = compare.DEFAULT_RULE
    gate: Any = None  # a xpubench.ci.matrix.Matrix: mark the history as the nightly gate judges it
    latest: dict[str, dict[Key, F.Entry]] = field(default_factory=dict)  # machine -> key -> entry
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)  # machine -> newest machine block
    ceilings: dict[str, dict[str, Any]] = field(default_factory=dict)  # machine -> newest embedded ceilings
    suites: list[str] = field(default_factory=list)
    suite_pages: dict[str, str] = field(default_factory=dict)  # suite -> file name

    def __post_init__(self) -> None:
        run_ceilings: dict[tuple[str, Key], dict | None] = {}
        for run in self.runs:  # oldest first: newer measurements overwrite older ones
            self.machines[run.machine_id] = run.machine
            ceilings = run.data.get("ceilings") if isinstance(run.data.get("ceilings"), dict) else None
            if ceilings:
                self.ceilings[run.machine_id] = ceilings
            slot = self.latest.setdefault(run.machine_id, {})
            label = run_label(run)
            for m in run.measurements:
                k = _key(m)
                slot[k] = F.Entry(m, run.machine_id, label)
                run_ceilings[(run.machine_id, k)] = ceilings
        # Files written before the roofline existed have no ``roofline`` blocks: work them out
        # here against the ceilings their own run embedded (none: fractions stay unknown).
        for mid, slot in self.latest.items():
            for k, e in slot.items():
                if R.roofline_block(e.m) is None and (e.m.get("flops_per_step") or e.m.get("bytes_per_step")):
                    e.m = {**e.m, "roofline": roofline_fields(e.m, run_ceilings[(mid, k)], None)}
        self.suites = sorted({str(m.get("suite", "")) for r in self.runs for m in r.measurements})
        used: set[str] = set()
        for s in self.suites:
            base = "suite-" + (re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")[:40] or "unnamed")
            name, k = base, 2
            while name in used:
                name, k = f"{base}-{k}", k + 1
            used.add(name)
            self.suite_pages[s] = name + ".html"

    def latest_entries(self, machine: str, suite: str | None = None) -> list[F.Entry]:
        es = self.latest.get(machine, {}).values()
        return [e for e in es if suite is None or e.m.get("suite") == suite]

    @property
    def machine_ids(self) -> list[str]:
        return sorted(self.machines)


def _key(m: Mapping[str, Any]) -> Key:
    return (str(m.get("suite", "")), str(m.get("case", "")), str(m.get("mode", "")), str(m.get("backend", "")))


def run_date(run: LoadedRun) -> str:
    return run.time.strftime("%Y-%m-%d %H:%M") if run.time else (run.started_at or "unknown date")


def run_label(run: LoadedRun) -> str:
    parts = [run_date(run)]
    if run.commit:
        parts.append(f"commit {run.short_commit}")
    parts.append(f"run {run.run_id}")
    return " · ".join(parts)


# --------------------------------------------------------------------------- HTML helpers
def script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script>``, no entities."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def status_cell(st: str) -> str:
    cls = re.sub(r"[^a-z]", "", st.lower()) or "unknown"
    return f'<td class="status status-{cls}">{esc(st)}</td>'


def table(headers: Sequence[str], rows: Iterable[tuple[str, str]], *, empty: str = "none",
          titles: Mapping[str, str] | None = None, cls: str = "") -> str:
    """``rows``: (search text, inner HTML of the <tr>) pairs; cells already escaped.

    ``titles``: header -> tooltip explaining the column.
    """
    body = "".join(f'<tr data-filter="{attr(s)}">{cells}</tr>' for s, cells in rows)
    if not body:
        return f'<p class="empty">{esc(empty)}</p>'
    titles = titles or {}
    head = "".join(f'<th title="{attr(titles[h])}">{esc(h)}</th>' if h in titles else f"<th>{esc(h)}</th>"
                   for h in headers)
    c = f' class="{cls}"' if cls else ""
    return f"<table{c}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def td(value: Any, cls: str = "", title: str | None = None) -> str:
    c = f' class="{cls}"' if cls else ""
    t = f' title="{attr(title)}"' if title else ""
    return f"<td{c}{t}>{esc('' if value is None else value)}</td>"


class Page:
    """One HTML page: body parts and the figures drawn on it."""

    def __init__(self, model: Model, file_name: str, title: str):
        self.model = model
        self.file_name = file_name
        self.title = title
        self.parts: list[str] = []
        self.figs: list[dict[str, Any]] = []

    def add(self, html_text: str) -> None:
        self.parts.append(html_text)

    def figure(self, fig: F.Fig | None, *, wide: bool = False) -> str:
        if fig is None:
            return ""
        fid = f"fig-{len(self.figs) + 1}"
        self.figs.append({"id": fid, "data": fig.spec["data"], "layout": fig.spec["layout"]})
        title = html.unescape(re.sub(r"<[^>]+>", "", str(fig.spec["layout"].get("title", {}).get("text", ""))))
        cls = "card wide" if wide else "card"
        cap = f"<figcaption>{esc(fig.caption)}</figcaption>" if fig.caption else ""
        return (f'<figure class="{cls}" data-filter="{attr(fig.search)}" data-kind="{attr(fig.kind)}">'
                f'<div class="plot" id="{fid}" role="img" aria-label="{attr(title)}"></div>{cap}</figure>')

    def render(self) -> str:
        model = self.model
        nav = [(INDEX, "Overview")] + [(model.suite_pages[s], s) for s in model.suites] + [
            (ROOFLINE, "Roofline"), (MACHINES, "Machines"), (HISTORY, "History")]
        links = "".join(
            f'<a href="{attr(href)}"{" class=active" if href == self.file_name else ""}>{esc(label)}</a>'
            for href, label in nav)
        scripts = ""
        if self.figs:
            scripts = (f'<script type="application/json" id="xpubench-figures">{script_json(self.figs)}</script>'
                       f'<script src="{assets.PLOTLY_JS}"></script>')
        scripts += f'<script src="{assets.REPORT_JS}"></script>'
        return (
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="{GENERATOR}">'
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'self'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:\">"
            f"<title>{esc(self.title)} — {esc(model.title)}</title>"
            f'<link rel="stylesheet" href="{assets.REPORT_CSS}"></head><body>'
            f'<header class="top"><span class="brand">{esc(model.title)}</span><nav>{links}</nav>'
            '<input id="filter" type="search" placeholder="Filter: case, backend, machine, status…" '
            'aria-label="filter"></header>'
            f"<main><h1>{esc(self.title)}</h1>{''.join(self.parts)}</main>{scripts}</body></html>\n"
        )

    def write(self, out_dir: Path) -> Path:
        path = out_dir / self.file_name
        path.write_text(self.render(), encoding="utf-8")
        return path


# --------------------------------------------------------------------------- fingerprints
def _text_of(v: Any) -> str:
    if isinstance(v, dict):
        return " ".join(f"{k} {_text_of(x)}" for k, x in v.items() if x not in (None, "", [], {}))
    return "" if v is None else str(v)


def cpu_summary(machine: Mapping[str, Any]) -> str:
    cpu = machine.get("cpu")
    if not isinstance(cpu, dict):
        return _text_of(cpu) or "unknown CPU"
    name = cpu.get("model") or cpu.get("brand") or cpu.get("name") or cpu.get("brand_raw") or "unknown CPU"
    cores = []
    if cpu.get("physical_cores"):
        cores.append(f"{cpu['physical_cores']} cores")
    if cpu.get("logical_cores"):
        cores.append(f"{cpu['logical_cores']} threads")
    if cpu.get("affinity_cores") and cpu.get("affinity_cores") != cpu.get("logical_cores"):
        cores.append(f"{cpu['affinity_cores']} usable")
    return f"{name} ({', '.join(cores)})" if cores else str(name)


def accelerator_summary(machine: Mapping[str, Any]) -> str:
    accs = machine.get("accelerators")
    if not isinstance(accs, list) or not accs:
        return "none"
    names = []
    for a in accs:
        if isinstance(a, dict):
            n = str(a.get("name") or a.get("model") or a.get("kind") or "accelerator")
            mem = R.num(a.get("memory_bytes"))
            names.append(n + (f" ({R.fmt_bytes(mem)})" if mem else ""))
        else:
            names.append(str(a))
    return ", ".join(f"{k} × {n}" if k > 1 else n for n, k in Counter(names).items())


def software_summary(machine: Mapping[str, Any]) -> str:
    sw = machine.get("software")
    if not isinstance(sw, dict):
        return _text_of(sw)
    parts = []
    for k, v in sw.items():
        if isinstance(v, dict):
            v = v.get("version") or next((x for x in v.values() if isinstance(x, str)), None)
        if v not in (None, ""):
            parts.append(f"{k} {v}")
    return " · ".join(parts)


def os_summary(machine: Mapping[str, Any]) -> str:
    o = machine.get("os")
    if isinstance(o, dict):
        return " ".join(str(o[k]) for k in ("system", "release", "machine") if o.get(k))
    return "" if o is None else str(o)


def _strip_bulky(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_bulky(x) for k, x in v.items() if k not in ("flags",)}
    if isinstance(v, list):
        return [_strip_bulky(x) for x in v]
    return v


def machines_table(model: Model, *, details: bool) -> str:
    runs_by_machine = Counter(r.machine_id for r in model.runs)
    rows = []
    for mid in model.machine_ids:
        m = model.machines[mid]
        mem = R.num(m.get("memory_bytes"))
        cells = (td(mid) + td(m.get("hostname")) + td(cpu_summary(m)) + td(accelerator_summary(m))
                 + td(R.fmt_bytes(mem) if mem else "n/a", "num") + td(os_summary(m)) + td(software_summary(m))
                 + td(runs_by_machine[mid], "num"))
        rows.append((f"{mid} {m.get('hostname', '')}", cells))
    out = table(["machine", "hostname", "CPU", "accelerators", "memory", "OS", "software", "runs"], rows)
    if details:
        for mid in model.machine_ids:
            dump = json.dumps(_strip_bulky(model.machines[mid]), indent=1, sort_keys=True, default=str)
            out += (f'<details data-filter="{attr(mid)}"><summary>Full fingerprint of {esc(mid)}</summary>'
                    f"<pre>{esc(dump)}</pre></details>")
    return out


# --------------------------------------------------------------------------- status tables
STATUS_HEADERS = ["machine", "suite", "case", "mode", "backend", "status", "reason", "run"]


def _status_row(e: F.Entry) -> tuple[str, str]:
    m = e.m
    st = R.status(m)
    reason = m.get("reason") or ""
    cells = (td(e.machine_id) + td(m.get("suite")) + td(R.case_name(m)) + td(m.get("mode")) + td(m.get("backend"))
             + status_cell(st) + td(reason, "reason") + td(e.run_label))
    return (f"{e.machine_id} {m.get('suite')} {R.case_name(m)} {m.get('backend')} {st} {reason}", cells)


def status_table(entries: Iterable[F.Entry], what: str) -> str:
    bad = sorted((e for e in entries if not R.is_ok(e.m)),
                 key=lambda e: (e.machine_id, str(e.m.get("suite")), R.case_label(e.m), str(e.m.get("backend"))))
    counts = Counter(R.status(e.m) for e in bad)
    pills = " ".join(f'<span class="pill {"warn" if s == "skipped" else "bad"}">{esc(s)}: {n}</span>'
                     for s, n in sorted(counts.items()))
    return (f"<h2>Not measured: failed, skipped, diverged ({len(bad)})</h2>"
            f'<p class="muted">{esc(what)} {pills}</p>'
            + table(STATUS_HEADERS, (_status_row(e) for e in bad), empty="Every case ran ok."))


# --------------------------------------------------------------------------- baseline
def choose_baseline(entries: Sequence[F.Entry], requested: str | None) -> str | None:
    """The requested backend, else the fp32 CPU backend with most ok cases (torch first on ties)."""
    ok = Counter(e.m.get("backend", "") for e in entries if R.is_ok(e.m) and R.throughput(e.m))
    if requested:
        return requested if ok.get(requested) else None
    cands = [b for b in ok if R.backend_parts(b)[1] == "cpu" and R.backend_parts(b)[2] == "fp32"]
    if not cands:
        return None
    return sorted(cands, key=lambda b: (-ok[b], R.backend_parts(b)[0] != "torch", b))[0]


# --------------------------------------------------------------------------- pages
def _units(entries: Iterable[F.Entry]) -> list[str]:
    return sorted({R.unit(e.m) for e in entries if R.is_ok(e.m)})


def suite_figures(entries: Sequence[F.Entry], baseline: str | None) -> list[tuple[F.Fig, bool]]:
    """The comparison figures of one suite on one machine, in page order: (figure, wide)."""
    figs: list[tuple[F.Fig | None, bool]] = []
    for u in _units(entries):
        figs.append((F.throughput_bars(entries, u, baseline=baseline), True))
    if baseline:
        figs.append((F.speedup_heatmap(entries, baseline), True))
    figs.append((F.precision_scatter(entries), False))
    figs.append((F.mfu_bars(entries), True))
    figs.append((F.memory_bars(entries, baseline=baseline), False))
    for u in _units(entries):
        figs.append((F.energy_bars(entries, u, baseline=baseline), False))
    return [(f, w) for f, w in figs if f is not None]


def suite_page(model: Model, suite: str) -> Page:
    page = Page(model, model.suite_pages[suite], f"Suite: {suite}")
    page.add('<p class="lead">Latest run of each machine: throughput by backend, speedup against a '
             "baseline backend, reduced-precision trade-offs, peak memory and energy"
             + (", MFU" if suite in MFU_SUITES else "")
             + ", and a table of every case with its efficiency against the roofline. Hover a bar for "
             "the full record.</p>")
    all_entries: list[F.Entry] = []
    for mid in model.machine_ids:
        entries = sorted(model.latest_entries(mid, suite), key=lambda e: (R.case_label(e.m), e.m.get("backend", "")))
        if not entries:
            continue
        all_entries += entries
        baseline = choose_baseline(entries, model.baseline)
        runs = sorted({e.run_label for e in entries})
        n_ok = sum(R.is_ok(e.m) for e in entries)
        parts = [f'<section data-filter="{attr(mid)}"><h2>Machine {esc(mid)}</h2>',
                 f'<p class="muted">{n_ok} of {len(entries)} measurements ok · from '
                 f'{esc("; ".join(runs[-3:]))}{" …" if len(runs) > 3 else ""}</p>']
        if baseline is None:
            wanted = model.baseline or "an fp32 CPU backend"
            parts.append(f'<p class="note">No speedup heatmap: {esc(wanted)} has no ok measurement '
                         "on this machine (choose one with --baseline).</p>")
        else:
            parts.append(f'<p class="muted">Baseline for speedups: {esc(baseline)}</p>')
        cards = [page.figure(f, wide=w) for f, w in suite_figures(entries, baseline)]
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
    kind = R.ceilings_kind(rf)
    if kind == "spec" and rf and rf.get("spec_name"):
        return f"spec: {rf['spec_name']}"
    return kind


def _efficiency_row(e: F.Entry, training: bool) -> tuple[str, str]:
    m = e.m
    rf = R.roofline_block(m) or {}
    med, ci, thr = R.median_time(m), R.time_ci(m), R.throughput(m)
    ci_text = f"±{(ci[1] - ci[0]) / 2 / med:.1%}" if ci and med else R.DASH
    frac = R.num(rf.get("fraction_of_bound"))
    source = str(rf.get("ceilings_source") or "no FLOPs or bytes recorded")
    bound = R.num(rf.get("bound_flops_per_s"))
    if frac is not None:
        frac_title = (f"{R.fmt_pct(frac)} of the {rf.get('bound_kind') or 'unknown'} bound"
                      + (f" {R.fmt_si(bound, 'FLOP/s')}" if bound is not None else "")
                      + (f" at {R.num(rf.get('intensity')):.3g} FLOP/byte" if R.num(rf.get("intensity")) else "")
                      + f"; ceilings: {source}")
    else:
        frac_title = f"unknown; ceilings: {source}"
    cells = (td(R.case_name(m)) + td(m.get("mode")) + td(m.get("backend"))
             + td(R.fmt_time(med), "num") + td(ci_text, "num")
             + td(f"{F.si(thr)} {R.unit(m)}/s" if thr else R.DASH, "num")
             + td(R.fmt_si(rf.get("achieved_flops_per_s"), "FLOP/s"), "num")
             + td(R.fmt_pct(frac), "num eff", title=frac_title)
             + td(rf.get("bound_kind") or R.DASH))
    if training:
        peak = R.num(rf.get("peak_flops_per_s"))
        measured_title = (f"of the measured matmul peak {R.fmt_si(peak, 'FLOP/s')}; ceilings: {source}"
                          if R.ceilings_kind(rf) == "measured" and peak else f"no measured peak; ceilings: {source}")
        cells += (td(R.fmt_pct(rf.get("mfu_measured")), "num mfu", title=measured_title)
                  + td(R.fmt_pct(rf.get("mfu_spec")), "num mfu",
                       title=(f"of the spec-sheet peak {R.fmt_si(rf.get('spec_peak_flops_per_s'), 'FLOP/s')} "
                              f"({rf.get('spec_name')})" if rf.get("spec_name") else "no spec-sheet row")))
    cells += td(_ceilings_label(rf) if rf else R.DASH, "ceil", title=source)
    return (f"{e.machine_id} {R.case_label(m)} {m.get('backend')}", cells)


def efficiency_section(entries: Sequence[F.Entry], machine_id: str, *, training: bool) -> str:
    """Every ok case of one machine and suite: time, throughput, achieved FLOP/s, % of the roofline bound."""
    ok = [e for e in entries if R.is_ok(e.m)]
    if not ok:
        return ""
    order = F._backend_order(e.m.get("backend", "") for e in ok)
    ok.sort(key=lambda e: (R.case_label(e.m), order.index(e.m.get("backend", ""))))
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


def _ceilings_table(ceilings: Mapping[str, Any] | None) -> str:
    entries = (ceilings or {}).get("ceilings")
    if not isinstance(entries, dict) or not entries:
        return ('<p class="note">No measured ceilings in this machine\'s latest runs: run <code>xpubench probe</code> '
                "on it. Roofs come from the vendor spec sheet where a GPU/TPU name matched, otherwise there are "
                "none.</p>")
    rows = []
    for key, entry in sorted(entries.items()):
        if not isinstance(entry, dict):
            continue
        peaks = entry.get("matmul_flops_per_s") if isinstance(entry.get("matmul_flops_per_s"), dict) else {}
        peak_text = " · ".join(f"{p} {R.fmt_si(v, 'FLOP/s')}" for p, v in peaks.items() if R.num(v))
        cells = (td(key) + td(peak_text or R.DASH) + td(R.fmt_si(entry.get("copy_bytes_per_s"), "B/s"), "num")
                 + td(R.fmt_si(entry.get("triad_bytes_per_s"), "B/s"), "num")
                 + td(entry.get("measured_at") or ceilings.get("measured_at") or ""))
        rows.append((str(key), cells))
    return table(["device", "matmul peak per precision", "copy", "triad", "measured at"], rows)


def roofline_page(model: Model) -> Page:
    page = Page(model, ROOFLINE, "Roofline")
    page.add('<p class="lead">Achieved FLOP/s of every case (latest run of each machine) at its arithmetic '
             "intensity, against the ceilings <code>xpubench probe</code> measured on that machine: one chart "
             f"per machine and precision.</p><p class=\"muted\">{esc(RL.EXPLANATION)}</p>")
    drawn = 0
    for mid in model.machine_ids:
        ok = [e.m for e in model.latest_entries(mid) if R.is_ok(e.m)]
        doc = {"machine": {"machine_id": mid}, "ceilings": model.ceilings.get(mid), "measurements": ok}
        groups = sorted(RL.roofline_groups([doc]), key=lambda g: (F._precision_rank(g[1]), g[1]))
        if not groups:
            continue
        cards = [page.figure(RL.roofline_fig(recs, ceilings, mid, prec)) for _, prec, recs, ceilings in groups]
        drawn += len(cards)
        page.add(f'<section data-filter="{attr(mid)}"><h2>Machine {esc(mid)}</h2>'
                 f'<h3>Ceilings</h3>{_ceilings_table(model.ceilings.get(mid))}'
                 f'<div class="grid">{"".join(cards)}</div></section>')
    if not drawn:
        page.add('<p class="empty">No measurement records both FLOPs and bytes per step: nothing to place on a '
                 "roofline.</p>")
    return page


def machines_page(model: Model) -> Page:
    page = Page(model, MACHINES, "Machines")
    page.add('<p class="lead">The same cases across machines (latest run of each), throughput side by side.</p>')
    page.add("<h2>Fingerprints</h2>" + machines_table(model, details=True))
    everything = [e for mid in model.machine_ids for e in model.latest_entries(mid)]
    for suite in model.suites:
        entries = [e for e in everything if e.m.get("suite") == suite]
        cards = [page.figure(F.machines_bars(entries, u, suite), wide=True) for u in _units(entries)]
        cards = [c for c in cards if c]
        if cards:
            page.add(f'<section data-filter="{attr(suite)}"><h2>{esc(suite)}</h2><div class="grid">'
                     + "".join(cards) + "</div></section>")
    page.add(status_table(everything, "Latest run of each machine, all suites."))
    return page


def gate_flags(model: Model) -> dict[tuple[str, str, Key], tuple[str, float | None]]:
    """(run id, machine, key) -> (verdict, ratio) of every change the nightly gate flags.

    Each run of a machine against that machine's previous run, with the leg's
    threshold, rule and per-night alpha (``xpubench.ci.matrix.compare_night``, the code of
    ``xpubench matrix --night``), so the page marks exactly what the gate flagged.
    """
    from xpubench.ci import matrix as M

    by_machine: dict[str, list[LoadedRun]] = defaultdict(list)
    for run in model.runs:  # oldest first
        by_machine[run.machine_id].append(run)
    out: dict[tuple[str, str, Key], tuple[str, float | None]] = {}
    for mid, runs in by_machine.items():
        for prev, run in zip(runs, runs[1:]):
            leg = M.leg_of_run(run, run.source.parent, model.gate)
            lg = model.gate.legs.get(leg) if leg else None
            t = lg.threshold if lg else model.gate.default_threshold
            a = lg.alpha if lg else model.gate.default_alpha
            rule = lg.rule if lg else model.gate.default_rule
            comparisons, _ = M.compare_night(prev, [run], t, a, rule=rule, with_ci=False)
            for c in comparisons:
                if c.verdict in (compare.REGRESSION, compare.IMPROVEMENT):
                    out[(run.run_id, mid, (c.suite, c.case, c.mode, c.backend))] = (c.verdict, c.ratio)
    return out


def history_series(model: Model) -> dict[tuple[str, str, str], list[F.Series]]:
    """(suite, case, mode) -> one series per (machine, backend), flagged like `compare` would."""
    grouped: dict[tuple[str, str, str], dict[tuple[str, str], F.Series]] = defaultdict(dict)
    flags = gate_flags(model) if model.gate is not None else None
    for run in model.runs:  # oldest first
        if run.time is None:
            continue
        t_ms = int(run.time.timestamp() * 1000)
        label = run_label(run)
        for m in run.measurements:
            suite, case, mode, backend = _key(m)
            series = grouped[(suite, case, mode)].setdefault(
                (run.machine_id, backend), F.Series(f"{run.machine_id} · {backend}"))
            point = F.HistoryPoint(t_ms, F.Entry(m, run.machine_id, label), run.short_commit)
            flag = flags.get((run.run_id, run.machine_id, _key(m))) if flags is not None else None
            if flag:
                point.flag, point.change = flag[0], (flag[1] - 1.0 if flag[1] else None)
            series.points.append(point)
    if flags is not None:
        return {k: sorted(v.values(), key=lambda s: s.label) for k, v in grouped.items()}
    for (suite, _, _), by_series in grouped.items():
        threshold = model.suite_thresholds.get(suite, model.threshold)
        for series in by_series.values():
            prev = None
            for p in series.points:
                if prev is not None and R.is_ok(prev.entry.m) and R.is_ok(p.entry.m):
                    d = compare.judge(prev.entry.m, p.entry.m, threshold=threshold, rule=model.rule)
                    if d.verdict in (compare.REGRESSION, compare.IMPROVEMENT):
                        p.flag, p.change = d.verdict, (d.ratio - 1.0 if d.ratio else None)
                if R.is_ok(p.entry.m):
                    prev = p
    return {k: sorted(v.values(), key=lambda s: s.label) for k, v in grouped.items()}


def _marks_text(model: Model) -> str:
    """What the triangles of the history page mean, in one sentence."""
    if model.gate is not None:
        return ("Triangles mark points that the nightly gate (<code>xpubench matrix --night</code>) flags against "
                "the previous run of the same machine: each machine with its leg's threshold, rule and alpha "
                f"from <code>{esc(model.gate.path.name)}</code>.")
    if model.rule == compare.CONFIDENT:
        how = f"significant and the whole 95% CI of the change beyond the {model.threshold:.0%} threshold"
    else:
        how = f"significant and beyond the {model.threshold:.0%} threshold"
    return ("Triangles mark points that <code>xpubench compare</code> flags against the previous run of the same "
            f"machine (rule {esc(model.rule)}: {how}).")


def history_page(model: Model) -> Page:
    page = Page(model, HISTORY, "History")
    dated = sum(1 for r in model.runs if r.time)
    page.add(f'<p class="lead">Median time per step of every case over {dated} runs, per machine and backend, '
             "with its 95% confidence band. " + _marks_text(model) + "</p>")
    if dated < len(model.runs):
        page.add(f'<p class="note">{len(model.runs) - dated} run(s) have no start time and are not plotted.</p>')
    series = history_series(model)
    flagged = 0
    for suite in model.suites:
        cards = []
        for (s, case, mode), ss in sorted(series.items()):
            if s != suite:
                continue
            name = R.case_name({"suite": s, "case": case})
            fig = F.history_lines(f"{esc(name)} · {esc(mode)}", ss)
            if fig is None:
                continue
            flagged += sum(1 for x in ss for p in x.points if p.flag == compare.REGRESSION)
            fig.search = f"{suite} {name} {mode} " + " ".join(x.label for x in ss)
            cards.append(page.figure(fig, wide=True))
        if cards:
            page.add(f'<section data-filter="{attr(suite)}"><h2>{esc(suite)}</h2><div class="grid">'
                     + "".join(cards) + "</div></section>")
    page.parts.insert(1, f'<p class="muted">{flagged} flagged regression point(s).</p>')
    # failures over all runs, grouped so hundreds of nights stay readable
    groups: dict[tuple, list[LoadedRun]] = defaultdict(list)
    for run in model.runs:
        for m in run.measurements:
            if not R.is_ok(m):
                groups[(run.machine_id, *_key(m), R.status(m), str(m.get("reason") or ""))].append(run)
    rows = []
    for (mid, suite, case, mode, backend, st, reason), runs in sorted(groups.items()):
        cells = (td(mid) + td(suite) + td(R.case_name({"suite": suite, "case": case})) + td(mode) + td(backend)
                 + status_cell(st) + td(reason, "reason") + td(len(runs), "num")
                 + td(run_date(runs[0])) + td(run_date(runs[-1])))
        rows.append((f"{mid} {suite} {case} {backend} {st} {reason}", cells))
    page.add(f"<h2>Not measured in any run ({sum(len(v) for v in groups.values())})</h2>"
             + table(["machine", "suite", "case", "mode", "backend", "status", "reason", "runs", "first", "last"],
                     rows, empty="Every case ran ok in every run."))
    return page


def index_page(model: Model) -> Page:
    page = Page(model, INDEX, "Overview")
    all_ms = [m for r in model.runs for m in r.measurements]
    counts = Counter(R.status(m) for m in all_ms)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page.add(f'<p class="lead">{len(model.runs)} runs · {len(model.machines)} machines · '
             f"{len(model.suites)} suites · {len({m.get('backend') for m in all_ms})} backends · "
             f"{len(all_ms)} measurements ({counts.get('ok', 0)} ok, "
             f"{sum(v for k, v in counts.items() if k not in ('ok', 'skipped'))} failed, "
             f"{counts.get('skipped', 0)} skipped) · generated {now}</p>")
    if model.problems:
        items = "".join(f"<li>{esc(p)}</li>" for p in model.problems)
        page.add(f'<div class="note"><b>{len(model.problems)} input file(s) left out:</b><ul>{items}</ul></div>')
    # pages
    latest_all = [e for mid in model.machine_ids for e in model.latest_entries(mid)]
    links = []
    for s in model.suites:
        es = [e for e in latest_all if e.m.get("suite") == s]
        cases = len({(R.case_name(e.m), e.m.get("mode")) for e in es})
        bad = sum(not R.is_ok(e.m) for e in es)
        links.append(f'<li data-filter="{attr(s)}"><a href="{attr(model.suite_pages[s])}">{esc(s)}</a> '
                     f'<span class="muted">{cases} cases, {len({e.m.get("backend") for e in es})} backends'
                     f'{f", {bad} not ok" if bad else ""}</span></li>')
    links.append(f'<li><a href="{ROOFLINE}">Roofline</a> <span class="muted">achieved FLOP/s against the measured '
                 "ceilings, per machine and precision</span></li>")
    links.append(f'<li><a href="{MACHINES}">Machines</a> <span class="muted">the same case across machines</span></li>')
    links.append(f'<li><a href="{HISTORY}">History</a> <span class="muted">medians over time, flagged changes</span></li>')
    page.add("<h2>Pages</h2><ul class=\"links\">" + "".join(links) + "</ul>")
    page.add("<h2>Machines</h2>" + machines_table(model, details=False))
    # backends
    by_backend: dict[str, Counter] = defaultdict(Counter)
    machines_of: dict[str, set[str]] = defaultdict(set)
    for r in model.runs:
        for m in r.measurements:
            b = str(m.get("backend", ""))
            by_backend[b][R.status(m)] += 1
            machines_of[b].add(r.machine_id)
    rows = []
    for b in sorted(by_backend):
        fw, dev, prec = R.backend_parts(b)
        c = by_backend[b]
        failed = sum(v for k, v in c.items() if k not in ("ok", "skipped"))
        cells = (td(b) + td(fw) + td(dev) + td(prec) + td(", ".join(sorted(machines_of[b])))
                 + td(c.get("ok", 0), "num") + td(failed, "num") + td(c.get("skipped", 0), "num"))
        rows.append((f"{b} {' '.join(machines_of[b])}", cells))
    page.add("<h2>Backends</h2>" + table(
        ["backend", "framework", "device", "precision", "machines", "ok", "failed", "skipped"], rows))
    # suites
    rows = []
    for s in model.suites:
        ms = [m for m in all_ms if m.get("suite") == s]
        cells = (f'<td><a href="{attr(model.suite_pages[s])}">{esc(s)}</a></td>'
                 + td(len({(R.case_name(m), m.get("mode")) for m in ms}), "num")
                 + td(", ".join(sorted({str(m.get("backend")) for m in ms})))
                 + td(sum(R.is_ok(m) for m in ms), "num") + td(sum(not R.is_ok(m) for m in ms), "num"))
        rows.append((s, cells))
    page.add("<h2>Suites</h2>" + table(["suite", "cases", "backends", "ok", "not ok"], rows))
    # runs, newest first
    rows = []
    for r in reversed(model.runs):
        st = Counter(R.status(m) for m in r.measurements)
        failed = sum(v for k, v in st.items() if k not in ("ok", "skipped"))
        suites = ", ".join(sorted({str(m.get("suite")) for m in r.measurements}))
        cells = (td(run_date(r)) + td(r.short_commit or "-") + td(r.branch or "") + td(r.machine_id) + td(suites)
                 + td(st.get("ok", 0), "num") + td(failed, "num") + td(st.get("skipped", 0), "num")
                 + td(r.format) + td(r.run_id) + td(r.source.name))
        rows.append((f"{r.machine_id} {r.commit or ''} {r.branch or ''} {suites} {r.run_id} {r.source}", cells))
    page.add(f"<h2>Runs ({len(model.runs)})</h2>" + table(
        ["date (UTC)", "commit", "branch", "machine", "suites", "ok", "failed", "skipped", "format", "run id",
         "file"], rows))
    page.add(status_table(latest_all, "Latest run of each machine, all suites."))
    return page


# --------------------------------------------------------------------------- site
def _remove_stale_pages(out_dir: Path, keep: set[str]) -> None:
    """Delete suite pages of an earlier build that this build does not write (ours only)."""
    for p in out_dir.glob("suite-*.html"):
        if p.name in keep:
            continue
        try:
            head = p.read_text(encoding="utf-8", errors="replace")[:600]
        except OSError:
            continue
        if f'content="{GENERATOR}"' in head:
            p.unlink()


def write_site(result: LoadResult, out_dir: Path, *, baseline: str | None = None, title: str | None = None,
               threshold: float = compare.DEFAULT_THRESHOLD,
               suite_thresholds: Mapping[str, float] | None = None, rule: str = compare.DEFAULT_RULE,
               gate: Any = None) -> Path:
    """Write every page and asset into ``out_dir``; return the index.html path."""
    out_dir = Path(out_dir)
    model = Model(result.runs, list(result.problems), baseline, title or "xpubench report", threshold,
                  dict(suite_thresholds or {}), compare.check_rule(rule), gate)
    assets.write_assets(out_dir)
    F.use_palette({str(m.get("backend", "")) for r in model.runs for m in r.measurements} | set(model.machines))
    pages = [index_page(model)] + [suite_page(model, s) for s in model.suites] + [
        roofline_page(model), machines_page(model), history_page(model)]
    _remove_stale_pages(out_dir, {p.file_name for p in pages})
    for p in pages:
        p.write(out_dir)
    return out_dir / INDEX

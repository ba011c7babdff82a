"""The overview page: counts, links to every page, machines, backends, suites and every run."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone

from xpubench.report.model import Model
from xpubench.report.machines import machines_table
from xpubench.report.page import HISTORY, INDEX, MACHINES, ROOFLINE, Page, status_table, table, td
from xpubench.report.records import attr, esc
from xpubench.results.view import split_backend


def index_page(model: Model) -> Page:
    page = Page(model, INDEX, "Overview")
    all_ms = [m for r in model.runs for m in r.measurements]
    counts = Counter(m.status for m in all_ms)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page.add(f'<p class="lead">{len(model.runs)} runs · {len(model.machines)} machines · '
             f"{len(model.suites)} suites · {len({m.backend for m in all_ms})} backends · "
             f"{len(all_ms)} measurements ({counts.get('ok', 0)} ok, "
             f"{sum(v for k, v in counts.items() if k not in ('ok', 'skipped'))} failed, "
             f"{counts.get('skipped', 0)} skipped) · generated {now}</p>")
    if model.problems:
        items = "".join(f"<li>{esc(p)}</li>" for p in model.problems)
        page.add(f'<div class="note"><b>{len(model.problems)} input file(s) left out:</b><ul>{items}</ul></div>')
    # pages
    latest_all = model.latest_all
    links = []
    for s in model.suites:
        es = [e for e in latest_all if e.m.suite == s]
        cases = len({(e.m.case_name, e.m.mode) for e in es})
        bad = sum(not e.m.ok for e in es)
        links.append(f'<li data-filter="{attr(s)}"><a href="{attr(model.suite_pages[s])}">{esc(s)}</a> '
                     f'<span class="muted">{cases} cases, {len({e.m.backend for e in es})} backends'
                     f'{f", {bad} not ok" if bad else ""}</span></li>')
    links.append(f'<li><a href="{ROOFLINE}">Roofline</a> <span class="muted">achieved FLOP/s against the measured '
                 "ceilings, per machine and precision</span></li>")
    links.append(f'<li><a href="{MACHINES}">Machines</a> <span class="muted">the same case across machines</span></li>')
    links.append(f'<li><a href="{HISTORY}">History</a> '
                 '<span class="muted">medians over time, flagged changes</span></li>')
    page.add("<h2>Pages</h2><ul class=\"links\">" + "".join(links) + "</ul>")
    page.add("<h2>Machines</h2>" + machines_table(model, details=False))
    # backends
    by_backend: dict[str, Counter] = defaultdict(Counter)
    machines_of: dict[str, set[str]] = defaultdict(set)
    for r in model.runs:
        for m in r.measurements:
            b = m.backend
            by_backend[b][m.status] += 1
            machines_of[b].add(r.machine_id)
    rows = []
    for b in sorted(by_backend):
        parts = split_backend(b)
        c = by_backend[b]
        failed = sum(v for k, v in c.items() if k not in ("ok", "skipped"))
        cells = (td(b) + td(parts.framework) + td(parts.device) + td(parts.precision)
                 + td(", ".join(sorted(machines_of[b])))
                 + td(c.get("ok", 0), "num") + td(failed, "num") + td(c.get("skipped", 0), "num"))
        rows.append((f"{b} {' '.join(machines_of[b])}", cells))
    page.add("<h2>Backends</h2>" + table(
        ["backend", "framework", "device", "precision", "machines", "ok", "failed", "skipped"], rows))
    # suites
    rows = []
    for s in model.suites:
        ms = [m for m in all_ms if m.suite == s]
        cells = (f'<td><a href="{attr(model.suite_pages[s])}">{esc(s)}</a></td>'
                 + td(len({(m.case_name, m.mode) for m in ms}), "num")
                 + td(", ".join(sorted({m.backend for m in ms})))
                 + td(sum(m.ok for m in ms), "num") + td(sum(not m.ok for m in ms), "num"))
        rows.append((s, cells))
    page.add("<h2>Suites</h2>" + table(["suite", "cases", "backends", "ok", "not ok"], rows))
    # runs, newest first
    rows = []
    for r in reversed(model.runs):
        st = Counter(m.status for m in r.measurements)
        failed = sum(v for k, v in st.items() if k not in ("ok", "skipped"))
        suites = ", ".join(sorted({m.suite for m in r.measurements}))
        cells = (td(r.date_text) + td(r.short_commit or "-") + td(r.branch or "") + td(r.machine_id) + td(suites)
                 + td(st.get("ok", 0), "num") + td(failed, "num") + td(st.get("skipped", 0), "num")
                 + td(r.format) + td(r.id) + td(r.source.name))
        rows.append((f"{r.machine_id} {r.commit or ''} {r.branch or ''} {suites} {r.id} {r.source}", cells))
    page.add(f"<h2>Runs ({len(model.runs)})</h2>" + table(
        ["date (UTC)", "commit", "branch", "machine", "suites", "ok", "failed", "skipped", "format", "run id",
         "file"], rows))
    page.add(status_table(latest_all, "Latest run of each machine, all suites."))
    return page

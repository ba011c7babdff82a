"""One HTML page of the site and the helpers every page uses: tables, cells, the not-measured table.

Pages are assembled from small HTML helpers; every value from a results file
goes through :func:`records.esc` (text) or :func:`records.attr` (attributes),
and figure data is embedded as JSON with ``<``, ``>`` and ``&`` written as
``\\u003c`` etc., so no results file can inject markup or script.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from xpubench.report import assets
from xpubench.report.figures import Entry, Fig
from xpubench.report.records import attr, esc

if TYPE_CHECKING:
    from xpubench.report.model import Model

GENERATOR = "xpubench report"
INDEX = "index.html"
MACHINES = "machines.html"
HISTORY = "history.html"
ROOFLINE = "roofline.html"


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

    def __init__(self, model: "Model", file_name: str, title: str):
        self.model = model
        self.file_name = file_name
        self.title = title
        self.parts: list[str] = []
        self.figs: list[dict[str, Any]] = []

    def add(self, html_text: str) -> None:
        self.parts.append(html_text)

    def figure(self, fig: Fig | None, *, wide: bool = False) -> str:
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


# --------------------------------------------------------------------------- the not-measured table
STATUS_HEADERS = ["machine", "suite", "case", "mode", "backend", "status", "reason", "run"]


def _status_row(e: Entry) -> tuple[str, str]:
    m = e.m
    cells = (td(e.machine_id) + td(m.suite) + td(m.case_name) + td(m.mode) + td(m.backend)
             + status_cell(m.status) + td(m.reason, "reason") + td(e.run_label))
    return (f"{e.machine_id} {m.suite} {m.case_name} {m.backend} {m.status} {m.reason}", cells)


def status_table(entries: Iterable[Entry], what: str) -> str:
    """Every measurement that is not ok (failed, skipped, diverged), with its reason."""
    bad = sorted((e for e in entries if not e.m.ok),
                 key=lambda e: (e.machine_id, e.m.suite, e.m.case_name, e.m.mode, e.m.backend))
    counts = Counter(e.m.status for e in bad)
    pills = " ".join(f'<span class="pill {"warn" if s == "skipped" else "bad"}">{esc(s)}: {n}</span>'
                     for s, n in sorted(counts.items()))
    return (f"<h2>Not measured: failed, skipped, diverged ({len(bad)})</h2>"
            f'<p class="muted">{esc(what)} {pills}</p>'
            + table(STATUS_HEADERS, (_status_row(e) for e in bad), empty="Every case ran ok."))

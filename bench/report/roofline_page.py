"""The roofline page: per machine its measured ceilings and one roofline chart per precision."""

from __future__ import annotations

from typing import Any, Mapping

from xpubench.fmt import DASH, fmt_si
from xpubench.report import roofline as RL
from xpubench.report.figures import precision_rank
from xpubench.report.model import Model
from xpubench.report.page import ROOFLINE, Page, table, td
from xpubench.report.records import attr, esc
from xpubench.results.view import finite


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
        peak_text = " · ".join(f"{p} {fmt_si(v, 'FLOP/s')}" for p, v in peaks.items() if finite(v))
        cells = (td(key) + td(peak_text or DASH) + td(fmt_si(entry.get("copy_bytes_per_s"), "B/s"), "num")
                 + td(fmt_si(entry.get("triad_bytes_per_s"), "B/s"), "num")
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
        ceilings = model.ceilings.get(mid)
        groups = RL.precision_groups(e.m for e in model.latest_entries(mid) if e.m.ok)
        if not groups:
            continue
        cards = [page.figure(RL.roofline_fig(groups[prec], ceilings, mid, prec))
                 for prec in sorted(groups, key=lambda p: (precision_rank(p), p))]
        drawn += len(cards)
        page.add(f'<section data-filter="{attr(mid)}"><h2>Machine {esc(mid)}</h2>'
                 f'<h3>Ceilings</h3>{_ceilings_table(model.ceilings.get(mid))}'
                 f'<div class="grid">{"".join(cards)}</div></section>')
    if not drawn:
        page.add('<p class="empty">No measurement records both FLOPs and bytes per step: nothing to place on a '
                 "roofline.</p>")
    return page

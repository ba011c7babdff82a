"""The machines page and the fingerprint tables: the same cases across machines, and what each machine is."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Mapping

from xpubench.fmt import fmt_bytes
from xpubench.report.bar_figures import machines_bars
from xpubench.report.model import Model
from xpubench.report.page import MACHINES, Page, status_table, table, td
from xpubench.report.records import NA, attr, esc
from xpubench.results.view import finite


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
            mem = finite(a.get("memory_bytes"))
            names.append(n + (f" ({fmt_bytes(mem)})" if mem else ""))
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
        mem = finite(m.get("memory_bytes"))
        cells = (td(mid) + td(m.get("hostname")) + td(cpu_summary(m)) + td(accelerator_summary(m))
                 + td(fmt_bytes(mem) if mem else NA, "num") + td(os_summary(m)) + td(software_summary(m))
                 + td(runs_by_machine[mid], "num"))
        rows.append((f"{mid} {m.get('hostname', '')}", cells))
    out = table(["machine", "hostname", "CPU", "accelerators", "memory", "OS", "software", "runs"], rows)
    if details:
        for mid in model.machine_ids:
            dump = json.dumps(_strip_bulky(model.machines[mid]), indent=1, sort_keys=True, default=str)
            out += (f'<details data-filter="{attr(mid)}"><summary>Full fingerprint of {esc(mid)}</summary>'
                    f"<pre>{esc(dump)}</pre></details>")
    return out


def machines_page(model: Model) -> Page:
    page = Page(model, MACHINES, "Machines")
    page.add('<p class="lead">The same cases across machines (latest run of each), throughput side by side.</p>')
    page.add("<h2>Fingerprints</h2>" + machines_table(model, details=True))
    everything = model.latest_all
    for suite in model.suites:
        entries = [e for e in everything if e.m.suite == suite]
        units = sorted({e.m.unit for e in entries if e.m.ok})
        cards = [page.figure(machines_bars(entries, u, suite), wide=True) for u in units]
        cards = [c for c in cards if c]
        if cards:
            page.add(f'<section data-filter="{attr(suite)}"><h2>{esc(suite)}</h2><div class="grid">'
                     + "".join(cards) + "</div></section>")
    page.add(status_table(everything, "Latest run of each machine, all suites."))
    return page

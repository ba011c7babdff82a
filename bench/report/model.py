"""What the pages are made from: the runs, the newest measurement per machine and case, suite page names.

Records from files written before the roofline blocks existed get theirs worked
out here, against the ceilings their own run embedded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from xpubench.hardware.roofline import roofline_fields
from xpubench.regress.compare import DEFAULT_RULE
from xpubench.regress.policy import GateBook
from xpubench.report.figures import Entry
from xpubench.results.run_view import Run
from xpubench.results.view import Key


@dataclass
class Model:
    """The runs (oldest first) and what every page derives from them."""

    runs: list[Run]
    problems: list[str]
    baseline: str | None
    title: str
    threshold: float
    suite_thresholds: dict[str, float]
    rule: str = DEFAULT_RULE
    gate: GateBook | None = None  # mark the history as the nightly gate judges it
    latest: dict[str, dict[Key, Entry]] = field(default_factory=dict)  # machine -> key -> entry
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)  # machine -> newest machine block
    ceilings: dict[str, dict[str, Any]] = field(default_factory=dict)  # machine -> newest embedded ceilings
    suites: list[str] = field(default_factory=list)
    suite_pages: dict[str, str] = field(default_factory=dict)  # suite -> file name

    def __post_init__(self) -> None:
        run_ceilings: dict[tuple[str, Key], dict | None] = {}
        for run in self.runs:  # oldest first: newer measurements overwrite older ones
            self.machines[run.machine_id] = run.machine
            if run.ceilings:
                self.ceilings[run.machine_id] = run.ceilings
            slot = self.latest.setdefault(run.machine_id, {})
            for m in run.measurements:
                slot[m.key] = Entry(m, run.machine_id, run.label)
                run_ceilings[(run.machine_id, m.key)] = run.ceilings
        # Files written before the roofline existed have no ``roofline`` blocks: work them out
        # here against the ceilings their own run embedded (none: fractions stay unknown).
        for mid, slot in self.latest.items():
            for k, e in slot.items():
                if e.m.roofline is None and (e.m.flops_per_step or e.m.bytes_per_step):
                    e.m = e.m.with_fields(roofline=roofline_fields(e.m.raw, run_ceilings[(mid, k)], None))
        self.suites = sorted({m.suite for r in self.runs for m in r.measurements})
        used: set[str] = set()
        for s in self.suites:
            base = "suite-" + (re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")[:40] or "unnamed")
            name, k = base, 2
            while name in used:
                name, k = f"{base}-{k}", k + 1
            used.add(name)
            self.suite_pages[s] = name + ".html"

    def latest_entries(self, machine: str, suite: str | None = None) -> list[Entry]:
        es = self.latest.get(machine, {}).values()
        return [e for e in es if suite is None or e.m.suite == suite]

    @property
    def machine_ids(self) -> list[str]:
        return sorted(self.machines)

    @property
    def latest_all(self) -> list[Entry]:
        """The newest measurement of every case on every machine."""
        return [e for mid in self.machine_ids for e in self.latest_entries(mid)]

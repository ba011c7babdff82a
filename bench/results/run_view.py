"""The typed view over one run: id, start time, machine, command, leg, source file and its measurements."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from xpubench.results.view import Measurement, block

UNKNOWN_MACHINE = "unknown-machine"


def parse_time(text: Any) -> datetime | None:
    """ISO-8601 time, naive values read as UTC; None when absent or unparseable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@dataclass(eq=False)
class Run:
    """One run (a results file, or a converted pytest-benchmark file) and where it came from."""

    data: dict[str, Any]
    source: Path = field(default_factory=lambda: Path("<memory>"))
    format: str = "xpubench"  # "xpubench" | "pytest-benchmark"

    @classmethod
    def of(cls, run: "Run | Mapping[str, Any]") -> "Run":
        """A run as it is, or a view over a run document held in memory."""
        if isinstance(run, Run):
            return run
        path = run.get("_path") if isinstance(run, Mapping) else None
        return cls(dict(run), Path(path) if isinstance(path, str) else Path("<memory>"))

    @property
    def meta(self) -> Mapping[str, Any]:
        """The ``run`` block as stored."""
        return block(self.data, "run")

    @property
    def machine(self) -> dict[str, Any]:
        m = self.data.get("machine")
        return m if isinstance(m, dict) else {}

    @cached_property
    def id(self) -> str:
        return str(self.meta.get("id") or self.source.stem)

    @cached_property
    def machine_id(self) -> str:
        m = self.machine
        return str(m.get("machine_id") or m.get("hostname") or UNKNOWN_MACHINE)

    @property
    def started_at(self) -> str | None:
        s = self.meta.get("started_at")
        return s if isinstance(s, str) else None

    @cached_property
    def time(self) -> datetime | None:
        return parse_time(self.started_at)

    @property
    def command(self) -> str:
        return str(self.meta.get("command") or "")

    @property
    def leg(self) -> str | None:
        leg = self.meta.get("leg")
        return leg if isinstance(leg, str) and leg else None

    @cached_property
    def git(self) -> Mapping[str, Any]:
        for holder in (self.meta, self.machine):
            g = holder.get("git")
            if isinstance(g, Mapping):
                return g
        return {}

    @property
    def commit(self) -> str | None:
        sha = self.git.get("commit") or self.git.get("sha") or self.git.get("id")
        return str(sha) if sha else None

    @property
    def branch(self) -> str | None:
        return str(self.git["branch"]) if self.git.get("branch") else None

    @property
    def dirty(self) -> bool | None:
        d = self.git.get("dirty")
        return d if isinstance(d, bool) else None

    @property
    def short_commit(self) -> str:
        if not self.commit:
            return ""
        return self.commit[:10] + ("+dirty" if self.dirty else "")

    @property
    def ceilings(self) -> dict[str, Any] | None:
        """The ceilings document the run embedded (``xpubench.hardware.ceilings``), or None."""
        c = self.data.get("ceilings")
        return c if isinstance(c, dict) and c else None

    @cached_property
    def measurements(self) -> list[Measurement]:
        ms = self.data.get("measurements")
        return [Measurement(m) for m in ms if isinstance(m, Mapping)] if isinstance(ms, list) else []

    @property
    def sort_key(self) -> tuple[float, str]:
        """Start time first (runs without one sort first), then the run id."""
        return (self.time.timestamp() if self.time else -math.inf, self.id)

    @cached_property
    def date_text(self) -> str:
        return self.time.strftime("%Y-%m-%d %H:%M") if self.time else (self.started_at or "unknown date")

    @cached_property
    def label(self) -> str:
        """``2026-11-01 02:00 · commit 0123456789 · run ab12cd34``: how pages and summaries name a run."""
        parts = [self.date_text]
        if self.commit:
            parts.append(f"commit {self.short_commit}")
        parts.append(f"run {self.id}")
        return " · ".join(parts)

"""Collect runs for reports and comparisons.

Inputs are results files, folders of them (searched recursively for ``*.json``)
and pytest-benchmark JSON files (``--benchmark-json`` or autosave output). The
format is told by content, never by file name. Every run comes back in the
results-file shape of DESIGN.md, wrapped in a :class:`LoadedRun` that knows its
source file, machine, start time and commit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from xpubench.errors import UserError
from xpubench.report import pytest_json
from xpubench.results.files import FAILED_STATUSES, ResultsFileError, collect_run_files, load_json_file, validate

UNKNOWN_MACHINE = "unknown-machine"


class InputError(UserError):
    """An input the user named cannot be used (missing, unreadable, foreign)."""


@dataclass
class LoadedRun:
    """One run (results file or converted pytest-benchmark file) and where it came from."""

    source: Path
    format: str  # "xpubench" | "pytest-benchmark"
    data: dict[str, Any]
    run_id: str = field(init=False)
    machine_id: str = field(init=False)
    started_at: str | None = field(init=False)
    time: datetime | None = field(init=False)
    commit: str | None = field(init=False)
    branch: str | None = field(init=False)
    dirty: bool | None = field(init=False)

    def __post_init__(self) -> None:
        run = self.data.get("run") if isinstance(self.data.get("run"), dict) else {}
        machine = self.machine
        self.run_id = str(run.get("id") or self.source.stem)
        self.machine_id = str(machine.get("machine_id") or machine.get("hostname") or UNKNOWN_MACHINE)
        self.started_at = run.get("started_at") if isinstance(run.get("started_at"), str) else None
        self.time = parse_time(self.started_at)
        git = _git_block(run, machine)
        sha = git.get("commit") or git.get("sha") or git.get("id")
        self.commit = str(sha) if sha else None
        self.branch = str(git["branch"]) if git.get("branch") else None
        self.dirty = git.get("dirty") if isinstance(git.get("dirty"), bool) else None

    @property
    def machine(self) -> dict[str, Any]:
        m = self.data.get("machine")
        return m if isinstance(m, dict) else {}

    @property
    def measurements(self) -> list[dict[str, Any]]:
        ms = self.data.get("measurements")
        return [m for m in ms if isinstance(m, dict)] if isinstance(ms, list) else []

    @property
    def short_commit(self) -> str:
        if not self.commit:
            return ""
        return self.commit[:10] + ("+dirty" if self.dirty else "")

    @property
    def sort_key(self) -> tuple[float, str]:
        return (self.time.timestamp() if self.time else -math.inf, self.run_id)


@dataclass
class LoadResult:
    runs: list[LoadedRun]
    problems: list[str]  # files found in folders that could not be used, duplicates


def parse_time(text: str | None) -> datetime | None:
    """ISO-8601 time, naive values read as UTC; None when absent or unparseable."""
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _git_block(run: dict, machine: dict) -> dict:
    for holder in (run, machine):
        g = holder.get("git")
        if isinstance(g, dict):
            return g
    return {}


def _read_json(path: Path) -> Any:
    return load_json_file(path, InputError)


def read_input_file(path: Path) -> LoadedRun:
    """Read one file of either format; raise a one-line :class:`UserError` otherwise."""
    doc = _read_json(path)
    if pytest_json.is_pytest_benchmark(doc):
        try:
            return LoadedRun(path, "pytest-benchmark", pytest_json.convert(doc, source=str(path)))
        except (TypeError, ValueError, KeyError) as e:
            raise InputError(f"{path}: unreadable pytest-benchmark JSON ({e})") from None
    if isinstance(doc, dict) and "schema_version" in doc and "measurements" in doc:
        return LoadedRun(path, "xpubench", validate(doc, str(path)))
    raise InputError(f"{path}: neither an xpubench results file nor pytest-benchmark JSON")


def load_runs(inputs: Iterable[str | Path], *, strict: bool = True) -> LoadResult:
    """Read every file named in ``inputs`` (folders expanded recursively).

    A file named explicitly must be readable. A file found inside a folder that
    cannot be used raises too when ``strict``; otherwise it is reported in
    ``problems`` and left out (a report over a results tree survives one stray file).
    Runs seen twice (same run id and machine, e.g. a copied file) are kept once.
    """
    problems: list[str] = []
    runs: list[LoadedRun] = []
    seen: dict[tuple[str, str], Path] = {}
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        in_folder = p.is_dir()
        try:
            files = collect_run_files([p]) if in_folder else [p]
        except ResultsFileError as e:
            raise InputError(str(e)) from None
        for f in files:
            try:
                lr = read_input_file(f)
            except UserError as e:
                if strict or not in_folder:
                    raise
                problems.append(str(e))
                continue
            key = (lr.machine_id, lr.run_id)
            if key in seen:
                problems.append(f"{f}: same run as {seen[key]} (run id {lr.run_id}); read once")
                continue
            seen[key] = f
            runs.append(lr)
    runs.sort(key=lambda r: r.sort_key)
    return LoadResult(runs, problems)

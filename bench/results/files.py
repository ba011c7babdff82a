"""The results file: one JSON document per run (see DESIGN.md, "The results file").

Written incrementally: every measurement is appended as soon as it exists, and the
file on disk is valid JSON after every append (write a temporary file, then rename
over the old one), so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from xpubench.errors import UserError
from xpubench.results.jsonsafe import json_safe

SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "oom", "timeout", "crashed", "diverged", "not_converged", "error")
FAILED_STATUSES = frozenset(STATUSES) - {"ok", "skipped"}
MEASUREMENT_REQUIRED = ("suite", "case", "mode", "backend", "status")


class ResultsFileError(UserError):
    """A results file that cannot be read: truncated, not ours, or too new."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return secrets.token_hex(4)


def run_file_path(root: Path, machine_id: str, started: datetime, run_id: str) -> Path:
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    return Path(root) / machine_id / f"{stamp}-{run_id}.json"


def atomic_write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; a results file is for sharing
        with os.fdopen(fd, "w") as f:
            json.dump(json_safe(doc), f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class RunWriter:
    """Owns one run file; ``append`` rewrites it atomically after each measurement."""

    def __init__(self, path: Path, run: dict, machine: dict):
        self.path = Path(path)
        self.doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "run": {**run, "finished_at": None},
            "machine": machine,
            "measurements": [],
        }
        self._write()

    def _write(self) -> None:
        atomic_write_json(self.path, self.doc)

    def append(self, measurement: dict) -> None:
        self.doc["measurements"].append(measurement)
        self._write()

    def set_run_field(self, key: str, value: Any) -> None:
        self.doc["run"][key] = value
        self._write()

    def finish(self, interrupted: bool = False) -> None:
        self.doc["run"]["finished_at"] = utc_now()
        self.doc["run"]["interrupted"] = interrupted
        self._write()

    @property
    def measurements(self) -> list[dict]:
        return self.doc["measurements"]


def validate(doc: Any, name: str) -> dict:
    """Check a parsed document is one of our run files; raise ResultsFileError if not."""
    if not isinstance(doc, dict) or "schema_version" not in doc or "measurements" not in doc:
        raise ResultsFileError(f"{name}: not an xpubench results file (no schema_version/measurements)")
    v = doc["schema_version"]
    if not isinstance(v, int):
        raise ResultsFileError(f"{name}: schema_version must be an integer, got {v!r}")
    if v > SCHEMA_VERSION:
        raise ResultsFileError(
            f"{name}: schema_version {v} is newer than this xpubench reads ({SCHEMA_VERSION}); upgrade xpubench")
    if v < 1:
        raise ResultsFileError(f"{name}: unknown schema_version {v}")
    if not isinstance(doc.get("run"), dict) or not isinstance(doc.get("machine"), dict):
        raise ResultsFileError(f"{name}: missing the run or machine block")
    ms = doc["measurements"]
    if not isinstance(ms, list):
        raise ResultsFileError(f"{name}: measurements must be a list")
    for i, m in enumerate(ms):
        missing = [k for k in MEASUREMENT_REQUIRED if not isinstance(m, dict) or k not in m]
        if missing:
            raise ResultsFileError(f"{name}: measurement {i} lacks {', '.join(missing)}")
        if m["status"] not in STATUSES:
            raise ResultsFileError(f"{name}: measurement {i} has unknown status {m['status']!r}")
    return doc


def load_json_file(path: Path, error: type[Exception] = ResultsFileError) -> Any:
    """Parse a JSON file; any problem is one line naming the file, raised as ``error``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, expected a results file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        cut = e.pos >= len(text.rstrip()) - 1 or e.msg.startswith("Unterminated string")
        what = "truncated (the file ends mid-document)" if cut else "not valid JSON"
        raise error(f"{path}: {what} (line {e.lineno}, column {e.colno})") from None


def read_run(path: str | Path) -> dict:
    """Read and validate one run file. Errors are one line naming the file."""
    p = Path(path)
    doc = validate(load_json_file(p), str(p))
    doc.setdefault("_path", str(p))
    return doc


# Files xpubench itself keeps beside the runs in a results folder, which are not runs.
NOT_RUN_FILES = frozenset({"ceilings.json"})


def collect_run_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (recursively, ``*.json``) into a sorted file list."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.json")
                              if not q.name.startswith(".") and q.name not in NOT_RUN_FILES))
        elif p.exists():
            out.append(p)
        else:
            raise ResultsFileError(f"{p}: no such file or folder")
    return out


def read_runs(paths: Iterable[str | Path]) -> list[dict]:
    return [read_run(p) for p in collect_run_files(paths)]

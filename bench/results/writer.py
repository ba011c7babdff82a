"""Writing run files: the atomic JSON write and the RunWriter that appends measurements as they come.

Every measurement is appended as soon as it exists, and the file on disk is valid
JSON after every append (write a temporary file, then rename over the old one), so
an interrupted run keeps what it measured.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xpubench.results.jsonsafe import json_safe
from xpubench.results.schema import SCHEMA_VERSION


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return secrets.token_hex(4)


def run_file_path(root: Path, machine_id: str, started: datetime, run_id: str) -> Path:
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    return Path(root) / machine_id / f"{stamp}-{run_id}.json"


def atomic_write_json(path: Path, doc: dict) -> None:
    path = Path(path)
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

    def replace_measurements(self, measurements: list[dict]) -> None:
        """The whole list at once (a repeated run merges each case's process records at the end)."""
        self.doc["measurements"] = list(measurements)
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

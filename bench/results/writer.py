"""Writing run files: the atomic JSON write and the RunWriter that appends measurements as they come.

Every measurement is appended as soon as it exists, and the file on disk is valid
JSON after every append (write a temporary file, then rename over the old one), so
an interrupted run keeps what it measured. Each measurement is encoded once: the
file is rewritten from the kept texts, so an append costs a copy of the bytes, not
a re-encoding of the whole run (the parent shares the cores with the worker that is
measuring the next case).
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
    atomic_write_text(path, json.dumps(json_safe(doc), indent=1, allow_nan=False))


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``.
    ``durable``: fsync before the rename (a power cut keeps the old or the new file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; a results file is for sharing
        with os.fdopen(fd, "w") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _encode(obj: Any) -> str:
    return json.dumps(json_safe(obj), indent=1, allow_nan=False)


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
        self._encoded: list[str] = []  # each measurement's JSON text, in order
        self._write()

    def _write(self, durable: bool = False) -> None:
        head = _encode({k: v for k, v in self.doc.items() if k != "measurements"})
        body = ",\n".join(self._encoded)
        # the head's closing brace gives way to the measurements list
        text = f'{head[:-2]},\n "measurements": [\n{body}\n ]\n}}' if head.endswith("\n}") else None
        if text is None:  # an empty head ("{}"): nothing to splice into
            text = _encode(self.doc)
        atomic_write_text(self.path, text, durable=durable)

    def append(self, measurement: dict) -> None:
        self.doc["measurements"].append(measurement)
        self._encoded.append(_encode(measurement))
        self._write()

    def replace_measurements(self, measurements: list[dict]) -> None:
        """The whole list at once (a repeated run merges each case's process records at the end)."""
        self.doc["measurements"] = list(measurements)
        self._encoded = [_encode(m) for m in measurements]
        self._write()

    def set_run_field(self, key: str, value: Any) -> None:
        self.doc["run"][key] = value
        self._write()

    def finish(self, interrupted: bool = False) -> None:
        """The final write: every measurement encoded again, since the run's end adds fields
        in place (roofline, scaling) to what was appended."""
        self.doc["run"]["finished_at"] = utc_now()
        self.doc["run"]["interrupted"] = interrupted
        self._encoded = [_encode(m) for m in self.doc["measurements"]]
        self._write(durable=True)

    @property
    def measurements(self) -> list[dict]:
        return self.doc["measurements"]

"""The measured-ceilings file: ``<results root>/<machine_id>/ceilings.json``.

One document per machine, refreshed by ``xpubench probe``::

    {"schema_version": 1, "machine": {fingerprint}, "measured_at": "...",
     "xpubench_version": "...",
     "ceilings": {"torch:cpu": {"matmul_flops_per_s": {"fp32": ..., "bf16": ...},
                                "copy_bytes_per_s": ..., "triad_bytes_per_s": ...,
                                "h2d_bytes_per_s": null, "d2h_bytes_per_s": null,
                                "threads": 2, "measured_at": "...", ...},
                  "jax:cpu": {...}}}

Keys are ``framework:device[index]`` (index 0 written bare: ``torch:cuda``). A probe of
some devices keeps the other devices' entries, so each entry carries its own
``measured_at``; an entry probed while other processes competed carries ``busy``
(why). ``devices`` holds the roofs per physical device ("cpu", "cuda0"): the best of
every framework's entry, with its source and the theoretical peak beside it
(``xpubench.hardware.device_roofs``; derived again from the entries wherever read,
so files without it still work). Written atomically, like run files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from xpubench.errors import UserError
from xpubench.results.writer import atomic_write_json, utc_now

SCHEMA_VERSION = 1
FILE_NAME = "ceilings.json"
DEFAULT_ROOT = Path("results")


class CeilingsFileError(UserError):
    """A ceilings file that cannot be read: truncated, not ours, or too new."""


def ceilings_path(root: str | Path, machine_id: str) -> Path:
    return Path(root) / machine_id / FILE_NAME


def validate(doc: Any, name: str) -> dict:
    if not isinstance(doc, dict) or "ceilings" not in doc or "schema_version" not in doc:
        raise CeilingsFileError(f"{name}: not an xpubench ceilings file (no schema_version/ceilings)")
    v = doc["schema_version"]
    if not isinstance(v, int) or v < 1:
        raise CeilingsFileError(f"{name}: bad schema_version {v!r}")
    if v > SCHEMA_VERSION:
        raise CeilingsFileError(f"{name}: schema_version {v} is newer than this xpubench reads "
                                f"({SCHEMA_VERSION}); upgrade xpubench or re-run `xpubench probe --refresh`")
    if not isinstance(doc["ceilings"], dict) or not all(isinstance(e, dict) for e in doc["ceilings"].values()):
        raise CeilingsFileError(f"{name}: 'ceilings' must map framework:device to an object")
    return doc


def load_ceilings(root: str | Path, machine_id: str) -> dict | None:
    """The cached ceilings of ``machine_id`` under ``root``; None when none were measured.

    Raises CeilingsFileError (one line for the CLI) when the file exists but is broken.
    """
    path = ceilings_path(root, machine_id)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise CeilingsFileError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); "
                                "re-run `xpubench probe --refresh`") from None
    return validate(doc, str(path))


def find_ceilings(machine_id: str, roots: Iterable[str | Path] = (DEFAULT_ROOT,)) -> dict | None:
    """The first readable ceilings file for ``machine_id`` among ``roots``, or None.

    For ``xpubench run``: a missing or broken file must not fail a run, so errors give None.
    """
    seen: set[Path] = set()
    for root in roots:
        p = Path(root).resolve()
        if p in seen:
            continue
        seen.add(p)
        try:
            doc = load_ceilings(root, machine_id)
        except CeilingsFileError:
            continue
        if doc is not None:
            return doc
    return None


def merge(old: dict | None, machine: dict, entries: dict[str, dict], version: str | None = None) -> dict:
    """A new document: ``old``'s entries updated with freshly probed ``entries``."""
    from xpubench.hardware.device_roofs import device_roofs

    kept = dict((old or {}).get("ceilings") or {})
    kept.update(entries)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "machine": machine,
        "measured_at": utc_now(),
        "xpubench_version": version,
        "ceilings": dict(sorted(kept.items())),
    }
    doc["devices"] = device_roofs(doc)  # for people reading the file; readers derive it again
    return doc


def save_ceilings(root: str | Path, doc: dict) -> Path:
    machine_id = doc["machine"]["machine_id"]
    path = ceilings_path(root, machine_id)
    atomic_write_json(path, validate(doc, str(path)))
    return path

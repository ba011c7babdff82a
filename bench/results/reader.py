"""The one reader of runs: results files and pytest-benchmark JSON, named or found in folders.

Inputs are results files, folders of them (searched recursively for ``*.json``)
and pytest-benchmark JSON files (``--benchmark-json`` or autosave output). The
format is told by content, never by file name. Every run comes back as a
:class:`xpubench.results.view.Run` over a document in the results-file shape.
Every problem is one line naming the file (:class:`ResultsFileError`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from xpubench.errors import UserError
from xpubench.results import pytest_benchmark
from xpubench.results.schema import ResultsFileError, validate
from xpubench.results.run_view import Run

# Files xpubench itself keeps beside the runs in a results folder, which are not runs.
NOT_RUN_FILES = frozenset({"ceilings.json"})


def load_json_file(path: Path) -> Any:
    """Parse a JSON file; any problem is one ResultsFileError line naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ResultsFileError(f"{path}: is a folder, expected a results file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsFileError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        cut = e.pos >= len(text.rstrip()) - 1 or e.msg.startswith("Unterminated string")
        what = "truncated (the file ends mid-document)" if cut else "not valid JSON"
        raise ResultsFileError(f"{path}: {what} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise ResultsFileError(f"{path}: nested too deeply to be a results file") from None
    if _deeper_than(doc, MAX_DEPTH):
        raise ResultsFileError(f"{path}: nested deeper than {MAX_DEPTH} levels: not a results file") from None
    return doc


# Our files nest about 8 levels deep; every reader after this one may walk a document
# recursively, so a hostile file is refused here, once, with one line.
MAX_DEPTH = 64


def _deeper_than(doc: Any, limit: int) -> bool:
    """True when containers nest more than ``limit`` levels (walked without recursion)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def read_run(path: str | Path) -> dict:
    """Read and validate one of our run files as its document. Errors are one line naming the file."""
    p = Path(path)
    doc = validate(load_json_file(p), str(p))
    doc.setdefault("_path", str(p))
    return doc


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


def read_input_file(path: Path) -> Run:
    """Read one file of either format; raise a one-line :class:`ResultsFileError` otherwise."""
    doc = load_json_file(path)
    if pytest_benchmark.is_pytest_benchmark(doc):
        try:
            return Run(pytest_benchmark.convert(doc, source=str(path)), path, "pytest-benchmark")
        except (TypeError, ValueError, KeyError) as e:
            raise ResultsFileError(f"{path}: unreadable pytest-benchmark JSON ({e})") from None
    if isinstance(doc, dict) and "schema_version" in doc and "measurements" in doc:
        return Run(validate(doc, str(path)), path, "xpubench")
    raise ResultsFileError(f"{path}: neither an xpubench results file nor pytest-benchmark JSON")


@dataclass
class LoadResult:
    runs: list[Run]  # oldest first
    problems: list[str]  # files found in folders that could not be used, duplicates


def load_runs(inputs: Iterable[str | Path], *, strict: bool = True) -> LoadResult:
    """Read every file named in ``inputs`` (folders expanded recursively), oldest run first.

    A file named explicitly must be readable. A file found inside a folder that
    cannot be used raises too when ``strict``; otherwise it is reported in
    ``problems`` and left out (a report over a results tree survives one stray file).
    Runs seen twice (same run id and machine, e.g. a copied file) are kept once.
    """
    problems: list[str] = []
    runs: list[Run] = []
    seen: dict[tuple[str, str], Path] = {}
    for raw in inputs:
        p = Path(raw)
        in_folder = p.is_dir()
        for f in collect_run_files([p]):
            try:
                run = read_input_file(f)
            except UserError as e:
                if strict or not in_folder:
                    raise
                problems.append(str(e))
                continue
            key = (run.machine_id, run.id)
            if key in seen:
                problems.append(f"{f}: same run as {seen[key]} (run id {run.id}); read once")
                continue
            seen[key] = f
            runs.append(run)
    runs.sort(key=lambda r: r.sort_key)
    return LoadResult(runs, problems)

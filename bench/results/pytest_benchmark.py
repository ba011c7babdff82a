"""pytest-benchmark JSON (``--benchmark-json`` or autosave files) converted to our run shape.

A pytest-benchmark file has top-level ``machine_info``, ``commit_info``,
``datetime``, ``version`` and ``benchmarks[]``; each benchmark has ``name``,
``fullname``, ``group``, ``params``, ``extra_info``, ``options`` and ``stats``
(seconds per call: ``min max mean stddev median iqr q1 q3 rounds iterations
ops``, and with ``--benchmark-json`` the per-round times in ``data``).

Our pytest plugin puts ``suite case mode backend unit units_per_step
throughput_per_s memory energy compile_s error_vs_fp32`` (and anything newer)
into ``extra_info``; those win. A plain user benchmark becomes suite
``pytest``, case = its test name, backend ``python:cpu:fp32``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from xpubench.results.view import finite

DEFAULT_SUITE = "pytest"
DEFAULT_BACKEND = "python:cpu:fp32"
DEFAULT_MODE = "call"
DEFAULT_UNIT = "calls"

# extra_info keys that map onto named measurement fields; everything else in
# extra_info is carried into the measurement as-is (new numeric fields show up
# in the report's record views without code changes here).
_MAPPED = {"suite", "case", "mode", "backend", "unit", "units_per_step", "throughput_per_s",
           "status", "reason", "params", "median_ci95"}
# extra_info keys our plugin writes that belong in the ``time_s`` block
_TIME_KEYS = {"rounds", "iterations_per_round", "timer_overhead_s", "overhead_fraction", "drift", "window_s",
              "time_budget_s"}


def is_pytest_benchmark(doc: Any) -> bool:
    """True for a pytest-benchmark JSON document (decided by content)."""
    return (isinstance(doc, dict) and isinstance(doc.get("benchmarks"), list)
            and ("machine_info" in doc or "commit_info" in doc)
            and "measurements" not in doc)


def _machine(info: dict) -> dict:
    cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    node = info.get("node") or "unknown-host"
    software = {"python": info.get("python_version")}
    if isinstance(info.get("software"), dict):
        software.update(info["software"])
    machine = {
        "machine_id": str(info.get("machine_id") or node),
        "hostname": node,
        "os": {"system": info.get("system"), "release": info.get("release"), "machine": info.get("machine")},
        "cpu": {
            "model": cpu.get("brand_raw") or info.get("processor") or None,
            "vendor": cpu.get("vendor_id_raw"),
            "logical_cores": cpu.get("count"),
            "arch": cpu.get("arch") or info.get("machine"),
            "hz_advertised": cpu.get("hz_advertised_friendly"),
        },
        "accelerators": info.get("accelerators") if isinstance(info.get("accelerators"), list) else [],
        "memory_bytes": info.get("memory_bytes"),
        "software": software,
    }
    fp = info.get("xpubench")
    if isinstance(fp, dict):  # our plugin's full fingerprint: it knows the machine best
        machine.update({k: v for k, v in fp.items() if v not in (None, "", [], {})})
        machine["machine_id"] = str(fp.get("machine_id") or machine["machine_id"])
    return machine


def _run_id(doc: dict) -> str:
    """Stable id: the same file read twice (or copied) is the same run."""
    h = hashlib.sha1()
    h.update(str(doc.get("datetime")).encode())
    h.update(str((doc.get("machine_info") or {}).get("node")).encode())
    h.update(str((doc.get("commit_info") or {}).get("id")).encode())
    for b in doc.get("benchmarks") or []:
        if isinstance(b, dict):
            h.update(str(b.get("fullname") or b.get("name")).encode())
            h.update(repr((b.get("stats") or {}).get("median")).encode())
    return "pytest-" + h.hexdigest()[:10]


def _measurement(b: dict) -> dict:
    extra = b.get("extra_info") if isinstance(b.get("extra_info"), dict) else {}
    stats = b.get("stats") if isinstance(b.get("stats"), dict) else {}
    backend = str(extra.get("backend") or DEFAULT_BACKEND)
    raw = stats.get("data")
    samples = [float(s) for s in raw if finite(s) is not None] if isinstance(raw, list) else None
    median = finite(stats.get("median"))
    units = finite(extra.get("units_per_step"))
    if units is None:
        units = 1.0
    throughput = finite(extra.get("throughput_per_s"))
    if throughput is None and median:
        throughput = units / median
    params = extra.get("params") if isinstance(extra.get("params"), dict) else (
        b.get("params") if isinstance(b.get("params"), dict) else {})
    m: dict[str, Any] = {
        "suite": str(extra.get("suite") or DEFAULT_SUITE),
        "case": str(extra.get("case") or b.get("name") or b.get("fullname") or "unnamed"),
        "params": params,
        "mode": str(extra.get("mode") or DEFAULT_MODE),
        "backend": backend,
        "status": str(extra.get("status") or "ok"),
        "reason": extra.get("reason"),
        "time_s": {
            "median": median,
            "mean": finite(stats.get("mean")),
            "min": finite(stats.get("min")),
            "max": finite(stats.get("max")),
            "stdev": finite(stats.get("stddev")),
            "q1": finite(stats.get("q1")),
            "q3": finite(stats.get("q3")),
            "iqr": finite(stats.get("iqr")),
            "ci95": _given_ci(extra.get("median_ci95")),  # None: the view derives it from the samples
            "rounds": stats.get("rounds"),
            "iterations_per_round": stats.get("iterations"),
            "stop_reason": "pytest-benchmark",
            "samples": samples,
        },
        "unit": str(extra.get("unit") or DEFAULT_UNIT),
        "units_per_step": units,
        "throughput_per_s": throughput,
        "pytest": {"fullname": b.get("fullname"), "group": b.get("group"), "param": b.get("param")},
    }
    for k, v in extra.items():
        if k in _TIME_KEYS:
            if k not in ("rounds", "iterations_per_round"):  # pytest-benchmark's own counts win
                m["time_s"][k] = v
        elif k not in _MAPPED:
            m[k] = v
    return m


def _given_ci(ci: Any) -> list[float] | None:
    if isinstance(ci, list) and len(ci) == 2 and all(finite(x) is not None for x in ci):
        return [float(ci[0]), float(ci[1])]
    return None


def convert(doc: dict, *, source: str = "") -> dict:
    """Turn a pytest-benchmark document into a results-file shaped run dict."""
    if not is_pytest_benchmark(doc):
        raise ValueError("not a pytest-benchmark JSON document")
    info = doc.get("machine_info") if isinstance(doc.get("machine_info"), dict) else {}
    commit = doc.get("commit_info") if isinstance(doc.get("commit_info"), dict) else {}
    sha = commit.get("id")
    started = doc.get("datetime") if isinstance(doc.get("datetime"), str) else None
    return {
        "schema_version": 1,
        "run": {
            "id": _run_id(doc),
            "started_at": started,
            "finished_at": None,
            "command": f"pytest-benchmark {doc.get('version', '')}".strip(),
            "source_format": "pytest-benchmark",
            "source": source,
            "git": {
                "commit": None if sha in (None, "unversioned") else sha,
                "branch": commit.get("branch"),
                "dirty": commit.get("dirty"),
                "project": commit.get("project"),
            },
        },
        "machine": _machine(info),
        "measurements": [_measurement(b) for b in doc["benchmarks"] if isinstance(b, dict)],
    }

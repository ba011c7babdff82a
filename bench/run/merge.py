"""K records of one case x backend (one per fresh process) merged into one record.

Each process keeps its own figures under ``time_s.processes``; the headline median
and CI are the process-level ones (:func:`xpubench.measure.processes.process_level`:
geometric 20%-trimmed mean of the process medians, trimmed t interval over their logs), so they say what
a rerun will show, not only what one process's rounds did. ``time_s.samples`` holds
every process's rounds in pass order (old readers and the rank test still find them).
A process that failed is listed with its status; the case stays ``ok`` while at
least one process measured it, with a warning naming the failures.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Sequence

from xpubench.measure.processes import process_level
from xpubench.measure.stats import quantile

PROCESS_FIELDS = ("median", "ci95", "rounds", "confidence", "n_eff", "stop_reason", "drift", "iterations_per_round")


def _process_entry(rec: dict[str, Any]) -> dict[str, Any]:
    t = rec.get("time_s") or {}
    entry: dict[str, Any] = {"pass": rec.get("pass", 0), "status": rec.get("status")}
    entry.update({k: t.get(k) for k in PROCESS_FIELDS if k in t})
    entry["samples"] = list(t.get("samples") or [])
    entry["worker_pid"] = rec.get("worker_pid")
    if rec.get("paired"):  # its rounds took turns with the other side's process of this pair
        entry["pair"] = rec["paired"].get("pair")
    if rec.get("process"):
        entry["host"] = {k: v for k, v in rec["process"].items() if k != "pid"}
    if rec.get("status") != "ok":
        entry["reason"] = rec.get("reason")
    return entry


def _ok(rec: dict[str, Any]) -> bool:
    med = (rec.get("time_s") or {}).get("median")
    return rec.get("status") == "ok" and isinstance(med, (int, float)) and med > 0


def merge_processes(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One record from the records of the K passes of one case x backend (in pass order)."""
    if len(records) == 1:
        return records[0]
    good = [r for r in records if _ok(r)]
    if not good:  # every process failed or skipped: the first one's status, all listed
        merged = copy.deepcopy(records[0])
        merged["processes"] = [{"pass": r.get("pass", 0), "status": r.get("status"), "reason": r.get("reason")}
                               for r in records]
        return merged
    medians = [r["time_s"]["median"] for r in good]
    # the meters and notes of the process nearest the centre stand for the case
    centre = math.exp(sum(math.log(m) for m in medians) / len(medians))
    merged = copy.deepcopy(min(good, key=lambda r: abs(math.log(r["time_s"]["median"] / centre))))
    merged.pop("pass", None)
    t = merged["time_s"]
    samples = [s for r in good for s in (r["time_s"].get("samples") or [])]
    t["processes"] = [_process_entry(r) for r in records]
    t["samples"] = samples
    t["rounds"] = len(samples) or sum(int(r["time_s"].get("rounds") or 0) for r in good)
    if samples:
        xs = sorted(samples)
        t.update(mean=sum(xs) / len(xs), min=xs[0], max=xs[-1], q1=quantile(xs, 0.25), q3=quantile(xs, 0.75))
        t["iqr"] = t["q3"] - t["q1"]
    if len(good) >= 2:
        level = process_level(medians)
        t.update(median=level.estimate, ci95=list(level.ci95), rel_ci=level.rel_ci, confidence=0.95,
                 level="processes", process_spread=level.spread, stop_reason="processes")
        t.pop("n_eff", None)
        t.pop("tau", None)
    else:
        t["level"] = "one process"
    units = merged.get("units_per_step")
    if units:
        merged["throughput_per_s"] = units / t["median"]
    failed = [r for r in records if not _ok(r)]
    if failed:
        merged.setdefault("warnings", []).append(
            "; ".join(f"process of pass {r.get('pass', 0)}: {r.get('status')} ({r.get('reason') or 'no time'})"
                      for r in failed))
    merged["worker_pid"] = [r.get("worker_pid") for r in records]
    return merged


def merge_passes(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every case x backend's pass records merged, in the order each first appeared.

    A train-to-target record is one seed's whole training run (its pass is its seed), not
    one process's timing of a step: those stay one record per seed, summarised across
    seeds where they are read (median time to target and its spread)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        key = (r.get("suite"), r.get("case"), r.get("mode"), r.get("backend"))
        if r.get("mode") == "train_to_target":
            key += (r.get("pass", 0),)
        groups.setdefault(key, []).append(r)
    return [merge_processes(sorted(g, key=lambda r: r.get("pass", 0))) for g in groups.values()]

"""Self-calibration of verdicts on this machine: between-process noise, false alarms, power, detectable change.

``xpubench calibrate`` measures every selected case x backend in N fresh processes
of the build as it is (A) and N of the same build with an injected slowdown (B,
``--inject-slowdown``), A and B passes alternating. From A's process medians it
learns ``sigma``, the standard deviation of log step time between processes; from
that it gives, per case:

- ``false_alarm``: the A/A rate, measured: every split of A's N processes into two
  halves is compared as two runs with K = N/2 processes each would be (the
  process-level test, Yuen's on log medians, at alpha, the change past the threshold);
  the share flagged;
- ``power``: the chance a real change of 5%, 10%, 20% is flagged, for one process
  per side (the noise-model test) and K per side (the process-level test), from
  sigma (non-central t / normal);
- ``detectable``: the smallest change found with 95% power at a 1% false-alarm rate,
  for one process per side and for K per side;
- ``injected``: the real A/B check: B's measured ratio to A and whether the
  process-level test flags it.

The result is ``<out>/<machine_id>/calibration.json``, which ``compare`` and the
gate read as the noise model of single-process files (xpubench.regress.levels).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

from scipy import stats as sps

from xpubench.measure.processes import compare_processes
from xpubench.regress.levels import detectable_change

POWER_AT = (0.05, 0.10, 0.20)
FALSE_ALARM_ALPHA = 0.01


def log_sd(medians: Sequence[float]) -> float | None:
    logs = [math.log(m) for m in medians if m and m > 0]
    if len(logs) < 2:
        return None
    mean = sum(logs) / len(logs)
    return math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))


def power(change: float, sigma: float, k: int, alpha: float = FALSE_ALARM_ALPHA) -> float:
    """Chance that a true change is significant at ``alpha`` with k processes per side.

    k = 1: the noise-model z test (se = sigma * sqrt 2); k >= 2: a t test on k + k log
    medians (equal spread: 2k - 2 degrees of freedom, non-central t). A model for a
    normal spread: the process-level test itself trims (Yuen), which costs a little
    power where the spread is normal and wins it back where a process is now and
    then far slower.
    """
    effect = abs(math.log1p(change))
    if sigma <= 0:
        return 1.0 if effect > 0 else alpha
    se = sigma * math.sqrt(2 / k)
    if k < 2:
        z = sps.norm.ppf(1 - alpha / 2)
        return float(sps.norm.sf(z - effect / se) + sps.norm.cdf(-z - effect / se))
    dof = 2 * k - 2
    t = sps.t.ppf(1 - alpha / 2, dof)
    nc = effect / se
    p = float(sps.nct.sf(t, dof, nc) + sps.nct.cdf(-t, dof, nc))
    # far in the tail scipy's non-central t returns nan: the normal limit is exact enough there
    return p if math.isfinite(p) else float(sps.norm.sf(t - nc))


def aa_false_alarm(medians: Sequence[float], threshold: float, alpha: float = FALSE_ALARM_ALPHA) -> float | None:
    """Share of the splits of N process medians into two halves that a process-level compare flags."""
    n = len(medians)
    k = n // 2
    if k < 2:
        return None
    idx = range(n)
    flagged = total = 0
    for first in itertools.combinations(idx, k):
        if 0 not in first:  # each split once
            continue
        rest = [medians[i] for i in idx if i not in first][:k]
        t = compare_processes([medians[i] for i in first], rest)
        total += 1
        flagged += t.p_value < alpha and abs(math.log(t.ratio)) > math.log1p(threshold)
    return flagged / total if total else None


def case_calibration(a: Sequence[float], b: Sequence[float], injected: float, *, threshold: float,
                     repeat_for: int) -> dict[str, Any]:
    """The figures of one case x backend from A's and B's process medians."""
    sigma = log_sd(a)
    out: dict[str, Any] = {"processes": len(a), "a_medians": list(a), "b_medians": list(b), "sigma": sigma}
    if sigma is None:
        return out
    out["false_alarm"] = aa_false_alarm(a, threshold)
    out["power"] = {f"{c:.0%}": {"one_process": round(power(c, sigma, 1), 3),
                                 f"k{repeat_for}": round(power(c, sigma, repeat_for), 3)} for c in POWER_AT}
    out["detectable"] = {
        "one_process": detectable_change(sigma * math.sqrt(2), FALSE_ALARM_ALPHA),
        f"k{repeat_for}": detectable_change(sigma * math.sqrt(2 / repeat_for), FALSE_ALARM_ALPHA, 2 * repeat_for - 2)}
    if len(b) >= 2:
        t = compare_processes(a, b)
        out["injected"] = {"fraction": injected, "measured_ratio": t.ratio, "ci95": list(t.ci95),
                           "p_value": t.p_value, "flagged": t.p_value < FALSE_ALARM_ALPHA and t.ratio > 1}
    return out


def process_medians_by_key(records: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """``suite/case:mode|backend`` -> the medians of its ok processes (merged records of a --repeat run)."""
    out: dict[str, list[float]] = {}
    for r in records:
        if r.get("status") != "ok":
            continue
        key = f"{r['suite']}/{r['case']}:{r['mode']}|{r['backend']}"
        procs = (r.get("time_s") or {}).get("processes") or [{"median": (r.get("time_s") or {}).get("median")}]
        out[key] = [p["median"] for p in procs if p.get("status", "ok") == "ok" and (p.get("median") or 0) > 0]
    return out


def calibration_doc(machine_id: str, a_records, b_records, *, injected: float, threshold: float,
                    repeat_for: int, meta: Mapping[str, Any]) -> dict[str, Any]:
    a, b = process_medians_by_key(a_records), process_medians_by_key(b_records)
    return {"machine_id": machine_id, **meta, "threshold": threshold, "repeat_for": repeat_for,
            "false_alarm_alpha": FALSE_ALARM_ALPHA,
            "cases": {key: case_calibration(a[key], b.get(key, []), injected, threshold=threshold,
                                            repeat_for=repeat_for) for key in sorted(a)}}


def calibration_lines(doc: Mapping[str, Any]) -> list[str]:
    """The table ``calibrate`` prints: one line per case x backend."""
    k = doc["repeat_for"]
    head = (f"{'case|backend':60} {'sigma':>6} {'A/A FA':>6}  power 5/10/20% (1 proc | k{k})"
            f"        detectable (1 | k{k})  injected")
    lines = [head, "-" * len(head)]
    for key, c in doc["cases"].items():
        if c.get("sigma") is None:
            lines.append(f"{key:60} too few processes")
            continue
        pw = c["power"]
        p1 = "/".join(f"{pw[x]['one_process']:.2f}" for x in pw)
        pk = "/".join(f"{pw[x][f'k{k}']:.2f}" for x in pw)
        d = c["detectable"]
        fa = "-" if c.get("false_alarm") is None else f"{c['false_alarm']:.2f}"
        inj = c.get("injected")
        inj_text = (f"{inj['measured_ratio'] - 1:+.1%} {'flagged' if inj['flagged'] else 'missed'}" if inj else "-")
        lines.append(f"{key:60} {c['sigma']:6.3f} {fa:>6}  {p1} | {pk}  {d['one_process']:6.1%} | "
                     f"{d[f'k{k}']:6.1%}  {inj_text}")
    return lines

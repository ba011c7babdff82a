"""Ratios between twin backends of one case (bf16 vs fp32, one framework vs another), with CIs.

Twins are two backends of the same case on the same device that differ in one part:
the precision (``torch:cpu:bf16`` vs ``torch:cpu:fp32``) or the framework
(``jax:cpu:fp32`` vs ``torch:cpu:fp32``). The run measured them interleaved, so their
ratio comes from the same minutes. With K passes the ratio of each pass is one
paired observation and the CI is a t interval over their logs; with one pass it is
the two medians' CIs combined on the log scale.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Mapping

from scipy import stats as sps

Record = Mapping[str, Any]


def _parts(backend: str) -> tuple[str, str, str] | None:
    bits = backend.split(":")
    return (bits[0], bits[1], bits[2]) if len(bits) == 3 else None


def twin_kind(a: str, b: str) -> str | None:
    """``precision`` or ``framework`` when the two backends differ in exactly that part."""
    pa, pb = _parts(a), _parts(b)
    if pa is None or pb is None or pa[1] != pb[1]:
        return None
    if pa[0] == pb[0] and pa[2] != pb[2]:
        return "precision"
    if pa[0] != pb[0] and pa[2] == pb[2]:
        return "framework"
    return None


def _median(r: Record) -> float | None:
    m = (r.get("time_s") or {}).get("median")
    return float(m) if isinstance(m, (int, float)) and m > 0 else None


def _log_half_width(r: Record) -> float | None:
    t = r.get("time_s") or {}
    ci, m = t.get("ci95"), _median(r)
    if not m or not isinstance(ci, (list, tuple)) or len(ci) != 2 or not all(isinstance(x, (int, float)) and x > 0
                                                                          for x in ci):
        return None
    return max(math.log(m) - math.log(ci[0]), math.log(ci[1]) - math.log(m))


def _per_pass(r: Record) -> dict[int, float]:
    out = {}
    for p in (r.get("time_s") or {}).get("processes") or []:
        if isinstance(p, Mapping) and isinstance(p.get("pass"), int) and (p.get("median") or 0) > 0:
            out[p["pass"]] = float(p["median"])
    return out


def twin_ratio(base: Record, other: Record) -> dict[str, Any] | None:
    """time(other) / time(base) with its 95% CI and how it was obtained, or None."""
    mb, mo = _median(base), _median(other)
    if mb is None or mo is None:
        return None
    pb, po = _per_pass(base), _per_pass(other)
    common = sorted(pb.keys() & po.keys())
    if len(common) >= 2:
        logs = [math.log(po[k] / pb[k]) for k in common]
        mean = sum(logs) / len(logs)
        sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
        half = float(sps.t.ppf(0.975, len(logs) - 1)) * sd / math.sqrt(len(logs))
        return {"ratio": math.exp(mean), "ci95": [math.exp(mean - half), math.exp(mean + half)],
                "method": f"paired over {len(logs)} interleaved passes (t interval of log ratios)"}
    hb, ho = _log_half_width(base), _log_half_width(other)
    ratio = mo / mb
    if hb is None or ho is None:
        return {"ratio": ratio, "ci95": None, "method": "one pass; a median without a CI"}
    half = math.hypot(hb, ho)
    return {"ratio": ratio, "ci95": [ratio * math.exp(-half), ratio * math.exp(half)],
            "method": "one pass; the medians' CIs combined on the log scale"}


def _base_first(a: str, b: str, kind: str) -> tuple[str, str]:
    """fp32 is the base of a precision pair; otherwise the names' order decides."""
    if kind == "precision":
        if _parts(b)[2] == "fp32":
            return b, a
        if _parts(a)[2] == "fp32":
            return a, b
    return (a, b) if a <= b else (b, a)


def twin_ratios(records: Iterable[Record]) -> list[dict[str, Any]]:
    """Every twin pair of ok records in one run, as ``{suite, case, mode, base, other, kind, ratio, ci95, method}``."""
    by_case: dict[tuple, dict[str, Record]] = defaultdict(dict)
    for r in records:
        if r.get("status") == "ok":
            by_case[(r.get("suite"), r.get("case"), r.get("mode"))][str(r.get("backend"))] = r
    out = []
    for (suite, case, mode), recs in by_case.items():
        names = sorted(recs)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                kind = twin_kind(a, b)
                if kind is None:
                    continue
                base, other = _base_first(a, b, kind)
                got = twin_ratio(recs[base], recs[other])
                if got is not None:
                    out.append({"suite": suite, "case": case, "mode": mode, "base": base, "other": other,
                                "kind": kind, **got})
    return out

"""Why a roofline figure is above a physical limit: the warnings of a ``roofline`` block.

A fraction of the bound or an MFU above 1 is a bug until explained. Each warning
names the figure and the likely causes, most specific first, so a reader (the
record, the CLI summary, the report's hover) is never told that such a point
"runs as fast as the hardware allows".
"""

from __future__ import annotations

from typing import Any

from xpubench.fmt import fmt_si
from xpubench.hardware.device_roofs import ISA_CLOCK_NOTE
from xpubench.hardware.roofline import backend_precision

REDUCED = ("bf16", "fp16", "fp8")


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _mb(x: float) -> str:
    return fmt_si(x, "B")


def _legacy(record: dict) -> bool:
    """Written before FLOPs had a kind and bytes a dtype (every such record lacks flops_kind)."""
    return "flops_kind" not in record


def _memory_causes(record: dict, rf: dict) -> list[str]:
    causes = []
    ws, cache = _num(rf.get("working_set_bytes")), _num(rf.get("cache_bytes"))
    if rf.get("cache_resident"):
        causes.append(f"cache-resident: the working set ({_mb(ws)}) fits in the {_mb(cache)} last-level cache, "
                      "so it runs from cache, above the DRAM roof")
    if _legacy(record) and backend_precision(record) in REDUCED:
        causes.append("bytes counted at 4 B/element though this precision moves 2 (a record written before "
                      "dtype-aware bytes)")
    if rf.get("cache_resident"):
        return causes
    frac = _num(rf.get("fraction_of_bound")) or 0.0
    # reuse between steps saves at most the cache's share of the working set
    reuse_limit = ws / (ws - cache) if ws and cache and ws > cache else None
    if reuse_limit is None or frac <= reuse_limit:
        causes.append("inputs reused every step: part of the working set stays in cache between steps, so fewer "
                      "bytes come from DRAM than are counted")
    if reuse_limit is None or frac > reuse_limit:
        causes.append("the memory roof is low: the probe's bandwidth kernels fell short of this case's traffic rate "
                      "(`xpubench probe --refresh` on a quiet machine)")
    return causes


def _compute_causes(record: dict, rf: dict) -> list[str]:
    causes = []
    if _legacy(record) and rf.get("flops_kind") == "matmul" and record.get("suite") not in ("training", "inference"):
        causes.append("FLOPs of unknown kind held against the matmul roof (a record written before FLOPs by "
                      "kind: element-wise work belongs against the vector roof)")
    if rf.get("flops_kind") == "vector":
        causes.append("the probe's vector kernel is slower than this case's element-wise code (refresh with "
                      "`xpubench probe --refresh`)")
    else:
        causes.append("the probe's matmul sweep did not reach this rate: this case's shapes or kernels beat every "
                      "probed shape (refresh with `xpubench probe --refresh --size large`)")
    return causes


def _common_causes(record: dict, roof: dict | None) -> list[str]:
    causes = []
    if roof and roof.get("busy"):
        causes.append("the ceilings were probed on a busy machine, so the roof is low (`xpubench probe --refresh` "
                      "on a quiet machine)")
    return causes


def warnings_for(record: dict, rf: dict, roof: dict | None) -> list[str]:
    """Warnings for one record's roofline block ``rf`` (on device roofs ``roof``)."""
    out: list[str] = []
    frac = _num(rf.get("fraction_of_bound"))
    if frac is not None and frac > 1.0:
        side = rf.get("bound_kind") or "unknown"
        causes = (_memory_causes if side == "memory" else _compute_causes)(record, rf) + _common_causes(record, roof)
        out.append(f"{frac:.0%} of the {side} bound: above 1 is not a hardware limit; likely "
                   + "; or ".join(causes))
    mfu = _num(rf.get("mfu_measured"))
    if mfu is not None and mfu > 1.0:
        causes = _compute_causes(record, {**rf, "flops_kind": "matmul"}) + _common_causes(record, roof)
        out.append(f"MFU {mfu:.0%} of the device's measured matmul roof: above 1; likely " + "; or ".join(causes))
    achieved, theory = _num(rf.get("achieved_flops_per_s")), _num(rf.get("theoretical_peak_flops_per_s"))
    if achieved is not None and theory is not None and achieved > theory and rf.get("flops_kind") == "matmul":
        isa = "isa" in str(rf.get("theoretical_source") or "")
        why = ISA_CLOCK_NOTE if isa else "a timing or FLOP-count bug, or a spec-sheet row for another part"
        out.append(f"achieved {fmt_si(achieved, 'FLOP/s')} is above the theoretical peak "
                   f"{fmt_si(theory, 'FLOP/s')}: {why}")
    return out


def summary_lines(records: list[dict], limit: int = 20) -> list[str]:
    """One line per record whose roofline carries a warning (for the CLI summary)."""
    lines = []
    for m in records:
        rf = m.get("roofline") if isinstance(m, dict) else None
        for w in (rf or {}).get("warnings") or []:
            lines.append(f"{m.get('suite')}/{m.get('case')}:{m.get('mode')} @ {m.get('backend')}: {w}")
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more (see the report's roofline page)"]
    return lines

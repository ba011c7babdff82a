"""Re-roof a run file: its records against new ceilings and today's rules, before vs after.

    python scripts/reroof.py results/reference/cpu-default-20261126.json \
        --ceilings results/reference/ceilings.json [--out rerooffed.json]

"Before" is the ``roofline`` block each record carries (the rules and the ceilings of
the day it ran). "After" declares each record's work again from today's suites (the
kind of FLOPs, bytes at the dtype the precision moves, the working set; FLOPs a
counter measured are kept) and attaches rooflines against ``--ceilings`` (per device,
by kind of work, with warnings). Nothing is re-measured: the times are the file's.
Prints, per suite x backend, the ok records, the median and largest fraction of the
bound (MFU for training), how many are above 1, and how many of those carry a warning.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

from xpubench.hardware.ceilings import validate
from xpubench.hardware.roofline import attach_roofline
from xpubench.results.reader import read_run
from xpubench.spec import registry as specmod


def redeclare_work(m: dict) -> dict:
    """The record with its work fields as today's suite declares them (counted FLOPs kept)."""
    out = dict(m)
    try:
        case = specmod.find((m["suite"], m["name"], m["mode"], m.get("size", "default")), m.get("params"))
    except (KeyError, TypeError):
        return out  # a case today's suites no longer have: left as it was
    fields = case.work.record_fields(str(m.get("precision") or "fp32"))
    if m.get("flops_analytic") is not None and m.get("flops_per_step") is not None:
        fields.pop("flops_per_step")  # counted by a FLOP counter at build time: still the better figure
    out.update(fields)
    return out


def figure(m: dict) -> float | None:
    rf = m.get("roofline") or {}
    value = rf.get("mfu_measured") if m.get("suite") == "training" else rf.get("fraction_of_bound")
    return value if isinstance(value, (int, float)) else None


def table(before: list[dict], after: list[dict]) -> list[str]:
    groups: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for b, a in zip(before, after):
        if b.get("status") == "ok":
            groups.setdefault((b["suite"], b["backend"]), []).append((b, a))
    head = (f"{'suite':14s} {'backend':16s} {'ok':>3s} | {'before: median':>14s} {'max':>6s} {'>1':>3s} | "
            f"{'after: median':>13s} {'max':>6s} {'>1':>3s} {'warned':>6s}  (training: MFU)")
    lines = [head, "-" * len(head)]
    totals = [0, 0, 0, 0]
    for (suite, backend), pairs in sorted(groups.items()):
        fb = [x for b, _ in pairs if (x := figure(b)) is not None]
        fa = [x for _, a in pairs if (x := figure(a)) is not None]
        over_b = sum(x > 1 for x in fb)
        over_a = [a for _, a in pairs if (figure(a) or 0) > 1]
        warned = sum(bool((a.get("roofline") or {}).get("warnings")) for a in over_a)
        med = lambda xs: f"{statistics.median(xs):.2f}" if xs else "-"  # noqa: E731
        top = lambda xs: f"{max(xs):.2f}" if xs else "-"  # noqa: E731
        lines.append(f"{suite:14s} {backend:16s} {len(pairs):3d} | {med(fb):>14s} {top(fb):>6s} {over_b:3d} | "
                     f"{med(fa):>13s} {top(fa):>6s} {len(over_a):3d} {warned:6d}")
        totals = [totals[0] + len(pairs), totals[1] + over_b, totals[2] + len(over_a), totals[3] + warned]
    lines.append(f"ok records {totals[0]}: above 1 before {totals[1]}, after {totals[2]} ({totals[3]} with a warning)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a results file")
    ap.add_argument("--ceilings", required=True, help="a ceilings.json (xpubench probe)")
    ap.add_argument("--out", help="write the re-roofed run file here")
    args = ap.parse_args(argv)
    doc = read_run(args.run)
    ceilings = validate(json.loads(Path(args.ceilings).read_text()), args.ceilings)
    before = copy.deepcopy(doc["measurements"])
    new = {**doc, "measurements": [redeclare_work(m) for m in doc["measurements"]]}
    attach_roofline(new, ceilings)
    print("\n".join(table(before, new["measurements"])))
    if args.out:
        Path(args.out).write_text(json.dumps(new, indent=1, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

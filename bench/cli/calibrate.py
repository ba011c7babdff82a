"""`xpubench calibrate`: measure A/A and A/B-with-an-injected-slowdown in fresh processes; write calibration.json."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from xpubench.fmt import fraction_arg


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", "-s", action="append", default=[], metavar="NAME", help="suite (repeatable)")
    p.add_argument("--case", "-k", action="append", default=[], metavar="GLOB", help="case glob (repeatable)")
    p.add_argument("--backend", "-b", action="append", default=[], metavar="SPEC", help="backend (repeatable)")
    p.add_argument("--size", default="default", help="smoke | default | large (default: default)")
    p.add_argument("--time-budget", type=float, default=None, metavar="S", help="timed seconds per case")
    p.add_argument("--processes", type=int, default=4, metavar="N",
                   help="fresh processes per side (A and B) and case x backend (default 4; >= 4 for an A/A rate)")
    p.add_argument("--slowdown", type=fraction_arg("slowdown"), default=0.10, metavar="PCT",
                   help="the injected slowdown of side B (default 10%%)")
    p.add_argument("--threshold", type=fraction_arg("threshold"), default=0.05, metavar="PCT",
                   help="the threshold the A/A false-alarm rate is counted at (default 5%%)")
    p.add_argument("--repeat-for", type=int, default=3, metavar="K",
                   help="the K of the process-level figures (runs with --repeat K; default 3)")
    p.add_argument("--out", default="results", metavar="DIR", help="results folder (default: results)")
    p.add_argument("--machine-id", metavar="ID", help="name of this machine (default: from hardware)")


def run(args: argparse.Namespace) -> int:
    from xpubench.backends.base import BackendSpec, default_specs
    from xpubench.errors import UserError
    from xpubench.hardware.fingerprint import fingerprint
    from xpubench.options import RunOptions
    from xpubench.regress.calibrate import calibration_doc, calibration_lines
    from xpubench.regress.levels import CALIBRATION_FILE
    from xpubench.run.merge import merge_passes
    from xpubench.run.supervisor import Runner
    from xpubench.spec import registry as specmod

    if args.processes < 2:
        raise UserError("--processes must be at least 2 (the spread between processes is the point)")
    specs = [BackendSpec.parse(s) for s in args.backend] if args.backend else default_specs()
    cases = specmod.select(args.suite or None, args.case or None, args.size)
    if not cases:
        raise UserError("no cases selected")
    machine = fingerprint(args.machine_id)
    base = dict(backends=tuple(str(s) for s in specs), suites=tuple(args.suite), cases=tuple(args.case),
                size=args.size, time_budget_s=args.time_budget, telemetry=False, accuracy=False)
    a_opts = RunOptions(**base)
    b_opts = RunOptions(**base, inject_slowdown=(f"*={args.slowdown * 100:g}%",))  # every selected case
    started = datetime.now(timezone.utc)
    a_recs: list[dict] = []
    b_recs: list[dict] = []
    for k in range(args.processes):  # A and B passes alternate, first side swapped each pass
        order = [(a_opts, a_recs), (b_opts, b_recs)]
        for opts, into in (order if k % 2 == 0 else order[::-1]):
            print(f"calibrate: pass {k + 1}/{args.processes}, {'B (injected)' if opts.inject_slowdown else 'A'}",
                  file=sys.stderr, flush=True)
            for r in Runner(specs, cases, None, opts).run().records:
                into.append({**r, "pass": k})
    meta = {"created_at": started.isoformat(timespec="seconds"), "size": args.size,
            "processes": args.processes, "slowdown": args.slowdown,
            "software": machine.get("software"), "cpu": (machine.get("cpu") or {}).get("model")}
    doc = calibration_doc(machine["machine_id"], merge_passes(a_recs), merge_passes(b_recs),
                          injected=args.slowdown, threshold=args.threshold, repeat_for=args.repeat_for, meta=meta)
    path = Path(args.out) / machine["machine_id"] / CALIBRATION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    print("\n".join(calibration_lines(doc)))
    print(f"calibration: {path}")
    return 0

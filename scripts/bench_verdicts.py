#!/usr/bin/env python3
"""The Done-when of issue 13: verdicts judged on real fresh-process reruns on this machine.

For each of ``--pairs`` pairs it runs, each as its own ``xpubench run`` (fresh
processes), the same build four times: A, A' (A/A), B10 and B20 (``--inject-slowdown
'normalization/layernorm*=10%'`` and ``=20%``). Then it judges, with ``xpubench
compare``'s default settings (plus ``--confirm K`` when asked):

- A/A: false alarms over all case comparisons (a regression or an improvement);
- A/B: the layernorm cases flagged as regressions at 10% and 20%, and the lines
  that say "cannot resolve < N% here" instead;

and prints the wall time of each run, the load average around it, and what each
confirmation cost (compare confirms by default where NEW was measured here with
this checkout's code: run the pairs and judge them at one commit). The run files stay under ``--out``
(one folder per run, named by pair and side): a second call measures only what is
missing, and ``--rejudge`` measures nothing, so a quiet machine can re-measure and
any machine can re-judge. ``--export DIR`` copies the A runs, stripped to what
compare needs, as the real-rerun nights (tests/data/reruns, scripts/simulate_nights.py).

    .venv/bin/python scripts/bench_verdicts.py --out results/verdicts-bench --pairs 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUITES = ("normalization", "dropout")
BACKENDS = ("torch:cpu:fp32", "jax:cpu:fp32")
INJECT = "normalization/layernorm*"
MACHINE = "verdict-bench"
SIDES = {"a": (), "a2": (), "b10": ("--inject-slowdown", f"{INJECT}=10%"),
         "b20": ("--inject-slowdown", f"{INJECT}=20%")}


def run_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.json")) if folder.is_dir() else []


def finished(folder: Path) -> bool:
    for f in run_files(folder):
        try:
            doc = json.loads(f.read_text())
        except ValueError:
            continue
        if doc.get("run", {}).get("finished_at") and not doc["run"].get("interrupted"):
            return True
    return False


def measure(folder: Path, extra: tuple[str, ...], args) -> dict:
    """One `xpubench run` in its own process tree; its wall time and the load around it."""
    cmd = [sys.executable, "-m", "xpubench", "run", *[a for s in SUITES for a in ("-s", s)],
           *[a for b in BACKENDS for a in ("-b", b)], "--size", args.size, "--out", str(folder),
           "--machine-id", MACHINE, *(["--repeat", str(args.repeat)] if args.repeat > 1 else []), *extra]
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {"folder": str(folder), "wall_s": wall, "load_before": load0, "load_after": os.getloadavg()[0]}


NOTES: list[str] = []  # the confirmations' notes (processes, seconds)


EXTRA_FLAGS: list[str] = []  # compare flags every judgement gets (--base-is-this-build)


def judge(base: Path, new: Path, confirm: int | None) -> list:
    """compare's verdicts; ``confirm`` None = compare's default (it confirms where NEW can be re-measured)."""
    from xpubench.cli.compare import parse, verdicts

    flags = [] if confirm is None else ["--confirm", str(confirm)] if confirm else ["--no-confirm"]
    flags += EXTRA_FLAGS
    # what the confirmation measured (every process's median), beside the pair's runs
    flags += ["--confirm-out", str(base.parent / f"confirmed-{base.name}-{new.name}")]
    t0 = time.monotonic()
    comparisons, note = verdicts(parse([str(base), str(new), *flags]))
    if note:
        NOTES.append(f"{base.parent.name} {base.name} vs {new.name}: {note} (compare took {time.monotonic() - t0:.0f} s)")
        print(f"  {NOTES[-1]}", flush=True)
    return comparisons


def delivered(folder: Path) -> list[float]:
    """What the injection's in-process A/B measured in each slowed record of a run."""
    out = []
    for f in run_files(folder):
        for m in json.loads(f.read_text()).get("measurements", []):
            ab = (m.get("injected_slowdown") or {}).get("delivered_ab")
            if ab is not None:
                out.append(ab)
    return out


def is_layernorm(c) -> bool:
    return c.suite == "normalization" and c.case.startswith("layernorm")


def per_case(rows: list[dict]) -> dict[str, dict]:
    """Each injected case's pairs: how many flagged as regressions, out of how many judged."""
    from xpubench.regress.compare import REGRESSION

    out: dict[str, dict] = {}
    for r in rows:
        d = out.setdefault(r["case"], {"flagged": 0, "of": 0})
        d["of"] += 1
        d["flagged"] += r["verdict"] == REGRESSION
    return out


def summarize(out: Path, pairs: int, confirm: int | None, which: tuple[str, ...] = ("aa", "b10", "b20")) -> dict:
    from xpubench.regress.compare import IMPROVEMENT, REGRESSION

    aa_total = aa_alarms = 0
    alarms, detection = [], {"10%": [], "20%": []}
    ab = {"10%": [], "20%": []}
    for i in range(pairs):
        p = out / f"pair{i}"
        if not finished(p / "a"):
            continue
        for c in judge(p / "a", p / "a2", confirm) if "aa" in which and finished(p / "a2") else []:
            if c.ratio is None:
                continue
            aa_total += 1
            if c.verdict in (REGRESSION, IMPROVEMENT):
                aa_alarms += 1
                alarms.append(f"pair{i} {c.suite}/{c.case}:{c.mode} {c.backend} {c.verdict} {c.ratio - 1:+.1%}")
        for label, side in (("10%", "b10"), ("20%", "b20")):
            if side not in which or not finished(p / side):
                continue
            ab[label] += delivered(p / side)
            for c in judge(p / "a", p / side, confirm):
                if is_layernorm(c) and c.ratio is not None:
                    detection[label].append({"pair": i, "case": f"{c.case}:{c.mode} {c.backend}",
                                             "verdict": c.verdict, "change": c.ratio - 1, "note": c.note})
                    print(f"    {label} {c.case}:{c.mode} {c.backend}: {c.verdict} {c.ratio - 1:+.1%} ({c.note})",
                          flush=True)
    out_doc = {"aa_comparisons": aa_total, "aa_false_alarms": aa_alarms, "aa_alarm_lines": alarms}
    for label, rows in detection.items():
        flagged = sum(r["verdict"] == REGRESSION for r in rows)
        unresolved = sorted({r["note"] for r in rows if "cannot resolve" in r["note"]})
        # a miss that does not say the test could not see it: what the issue forbids
        silent = [r for r in rows if r["verdict"] != REGRESSION and "cannot resolve" not in r["note"]]
        out_doc[f"injected_{label}"] = {"layernorm_comparisons": len(rows), "flagged": flagged,
                                        "rate": flagged / len(rows) if rows else None,
                                        "cannot_resolve": sum("cannot resolve" in r["note"] for r in rows),
                                        "silent_passes": silent,
                                        "cannot_resolve_notes": unresolved, "rows": rows,
                                        "delivered_ab": sorted(ab[label]), "per_case": per_case(rows)}
    return out_doc


def export_reruns(out: Path, dest: Path, pairs: int, also: list[Path] = ()) -> list[Path]:
    """The A and A' runs of every pair (and the runs under ``also``: more runs of the same build),
    without the fields no verdict reads, as the real-rerun nights."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    n = 0
    folders = list(also) + [out / f"pair{i}" / side for i in range(pairs) for side in ("a", "a2")]
    for folder in folders:
        for f in run_files(folder):
            doc = json.loads(f.read_text())
            for m in doc["measurements"]:
                for key in ("traceback", "roofline", "notes", "energy", "memory", "device_state"):
                    m.pop(key, None)
            doc["machine"] = {k: doc["machine"].get(k) for k in ("machine_id", "cpu", "software", "os")}
            doc["machine"]["machine_id"] = MACHINE  # one machine: the nights of one history
            target = dest / f"rerun-{n:02d}.json"
            target.write_text(json.dumps(doc, indent=None, separators=(",", ":")))
            written.append(target)
            n += 1
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/verdicts-bench", type=Path)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--size", default="default")
    ap.add_argument("--repeat", type=int, default=1, help="--repeat K of every run (default 1)")
    ap.add_argument("--confirm", type=int, default=None,
                    help="judge with compare --confirm K (0: --no-confirm; default: compare's default)")
    ap.add_argument("--sides", default="a,a2,b10,b20", help="which runs of each pair to measure")
    ap.add_argument("--rejudge", action="store_true", help="measure nothing; judge the files under --out")
    ap.add_argument("--judge", default="aa,b10,b20", help="which comparisons to judge (A/A, A/B10, A/B20)")
    ap.add_argument("--base-is-this-build", action="store_true",
                    help="pass it to compare: re-judge runs of an earlier commit with this checkout's code "
                         "(the confirmation re-measures both sides here)")
    ap.add_argument("--export", type=Path, help="copy the A runs, stripped, here (tests/data/reruns)")
    ap.add_argument("--export-also", type=Path, action="append", default=[],
                    help="more run folders of the same build and selection to export with them")
    args = ap.parse_args(argv)
    log_path = args.out / "runs.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else []
    if not args.rejudge:
        for i in range(args.pairs):
            for side in args.sides.split(","):
                folder = args.out / f"pair{i}" / side
                if finished(folder):
                    continue
                entry = {"pair": i, "side": side, **measure(folder, SIDES[side], args)}
                print(f"measured pair{i}/{side}: {entry['wall_s']:.0f} s, load {entry['load_before']:.1f} -> "
                      f"{entry['load_after']:.1f}", flush=True)
                log.append(entry)
                args.out.mkdir(parents=True, exist_ok=True)
                log_path.write_text(json.dumps(log, indent=1))
    if args.base_is_this_build:
        EXTRA_FLAGS.append("--base-is-this-build")
    summary = summarize(args.out, args.pairs, args.confirm, tuple(args.judge.split(",")))
    summary["runs"] = log
    summary["confirmations"] = NOTES
    walls = [e["wall_s"] for e in log]
    loads = [e["load_before"] for e in log] + [e["load_after"] for e in log]
    print(f"A/A: {summary['aa_false_alarms']} false alarm(s) in {summary['aa_comparisons']} case comparisons")
    for line in summary["aa_alarm_lines"]:
        print(f"  {line}")
    for label in ("10%", "20%"):
        d = summary[f"injected_{label}"]
        rate = "-" if d["rate"] is None else f"{d['rate']:.0%}"
        print(f"injected {label} on {INJECT}: flagged {d['flagged']} of {d['layernorm_comparisons']} ({rate}); "
              f"{d['cannot_resolve']} say 'cannot resolve'; {len(d['silent_passes'])} silent pass(es)")
        for case, n in d["per_case"].items():
            print(f"  {case}: flagged in {n['flagged']} of {n['of']} pairs")
        if d["delivered_ab"]:
            xs = d["delivered_ab"]
            print(f"  the spin's in-process A/B in the slowed records: {xs[0]:+.0%} to {xs[-1]:+.0%} "
                  f"(median {xs[len(xs) // 2]:+.0%}, {len(xs)} records)")
        for note in d["cannot_resolve_notes"]:
            print(f"  {note}")
        for r in d["silent_passes"]:
            print(f"  SILENT pair{r['pair']} {r['case']}: {r['verdict']} {r['change']:+.1%} {r['note']}")
    if walls:
        print(f"xpubench run wall time: {min(walls):.0f}-{max(walls):.0f} s (median "
              f"{sorted(walls)[len(walls) // 2]:.0f} s) over {len(walls)} runs; load average "
              f"{min(loads):.1f}-{max(loads):.1f}")
    if args.export:
        print(f"exported {len(export_reruns(args.out, args.export, args.pairs, args.export_also))} run files to {args.export}")
    (args.out / "summary.json").parent.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

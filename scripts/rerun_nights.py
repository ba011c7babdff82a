#!/usr/bin/env python3
"""Nights built from real fresh-process reruns: what the gate says when nothing changed.

The 30 simulated nights (scripts/simulate_nights.py) resample the rounds of one real
run, so they never see what differs between processes; these nights are real runs
of one build, each in its own processes (tests/data/reruns, written by
``scripts/bench_verdicts.py --export``). Night i is gated against night i - 1 with
the CPU leg's policy (bench/ci/matrix.toml) as the nightly gate does, the noise
model learned from the nights before it (their spread, once three are there), and,
for contrast, by the old rounds-only gate and by ``compare``'s defaults trusting
rounds. Every flag is a false alarm: the build never changed.

    .venv/bin/python scripts/rerun_nights.py tests/data/reruns
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rerun_nights(folder: Path, leg: str = "cpu") -> dict:
    """False alarms per gate over the nights in ``folder`` (run files, oldest first by start time)."""
    from xpubench.ci.matrix import load_matrix
    from xpubench.regress import compare
    from xpubench.regress.levels import noise_from_history
    from xpubench.regress.policy import compare_night
    from xpubench.results.reader import load_runs

    runs = sorted(load_runs([folder]).runs, key=lambda r: r.sort_key)
    policy = load_matrix(None).gate_book().policy(leg)
    # name -> (policy, learn the noise from earlier nights, alpha per comparison instead of per night)
    gates = {
        "gate (levels: noise model from earlier nights, else unsupported)": (policy, True, False),
        "gate trusting rounds (the old gate)": (replace(policy, trust_rounds=True), False, False),
        "compare defaults trusting rounds (5%, significant, alpha 0.01 each)":
            (replace(policy, threshold=0.05, rule=compare.SIGNIFICANT, trust_rounds=True), False, True),
    }
    out: dict = {"nights": len(runs), "gates": {}}
    for name, (pol, learn, per_comparison) in gates.items():
        per_night, compared, unsupported = [], 0, 0
        for i in range(1, len(runs)):
            noise = noise_from_history(runs[:i]) if learn else None
            if per_comparison:
                cs = compare.compare_runs([runs[i - 1]], [runs[i]], pol.threshold, rule=pol.rule,
                                          one_process_supported=True, with_ci=False)
            else:
                cs, _ = compare_night(runs[i - 1], [runs[i]], pol, with_ci=False, noise=noise)
            compared += sum(c.ratio is not None for c in cs)
            unsupported += sum(c.verdict == compare.UNSUPPORTED for c in cs)
            per_night.append(sum(c.is_regression for c in cs))
        out["gates"][name] = {"false_alarms_per_night": per_night, "nights_failed": sum(n > 0 for n in per_night),
                              "comparisons": compared, "unsupported": unsupported}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, nargs="?", default=ROOT / "tests/data/reruns")
    args = ap.parse_args(argv)
    result = rerun_nights(args.folder)
    print(f"{result['nights']} real rerun nights of one build ({args.folder}):")
    for name, g in result["gates"].items():
        print(f"  {name}: {g['nights_failed']} of {result['nights'] - 1} nights failed, "
              f"{sum(g['false_alarms_per_night'])} false alarms in {g['comparisons']} comparisons"
              + (f", {g['unsupported']} unsupported" if g["unsupported"] else ""))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

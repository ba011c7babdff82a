#!/usr/bin/env python3
"""Thirty simulated nights of the nightly matrix: the regression gate's acceptance test.

1. Runs the real CPU leg once (``xpubench run --leg cpu``, smoke size by default),
   exactly as a nightly leg does.
2. Derives nights 1..N for three machines from that run's per-round samples:
   every night, every measurement's rounds are drawn afresh from a smoothed
   bootstrap of the real rounds (so the real shape of a timing distribution
   stays: skew, outliers, two modes) and scaled by that night's level, which
   moves from night to night:

       level = speed(machine) * offset(machine, case)
               * exp(m[machine, night] + e[machine, case, night])
       round = real round drawn with replacement * level * exp(k[round])

   ``m`` ~ N(0, --machine-drift) hits every case of a machine alike (a different
   host, clock or neighbour that night), ``e`` ~ N(0, --case-drift) each case on
   its own, ``k`` ~ N(0, sqrt(h^2 + --jitter^2)) each round, ``h`` the kernel
   bandwidth of the real rounds (Silverman's rule on log times). With the
   defaults (1%, 1%, 0.5%) a case's level moves from one night to the next with
   a standard deviation of 2% (mean absolute change 1.6%), before the noise of
   its own median. A seed fixes ``m`` for every machine and night on a stream of
   its own, so one seed names the same machine drifts whatever real run feeds
   it. From night ``--inject-night`` on, one case (every backend of it) on one
   machine is ``--slowdown`` slower: by default the case the real run measured
   best (a step no measurement can resolve proves nothing).
3. Does what the nightly's final job does, night after night: the artifacts of
   the night (``xpubench-cpu/<machine_id>/...``) are gated against the history
   with ``xpubench.regress.gate.gate_night`` (the CPU leg's threshold, rule and alpha from
   the matrix's gate book) and merged into it; then the history report is built the way
   the workflow builds it (``xpubench.report.build_site(..., gate=matrix.gate_book())``); these
   resampled nights are one process each, so the gate trusts their rounds (``trust_rounds``).
4. Checks the issue's acceptance: "the slowdown is flagged on night 20 and on no
   other night": the gate fails the injection night because of the injected case
   (at least one of its backends), and no other flag anywhere (each such flag is
   a false alarm); and the history page marks the flagged point and nothing the
   gate did not flag. Exit 0 when all hold, 1 otherwise; the JSON summary says
   which part failed. Whether *every* injected backend was flagged is reported too.

The same nights are also judged by other gates for contrast (the leg's gate
under the other rule, `xpubench compare`'s defaults: 5% and alpha 0.01 per
comparison, among them); they do not decide the exit code. ``--seeds K``
repeats the derivation with K noise draws from the same real run (gate only, no
site; seconds per draw) and reports false alarms and detection per draw: one
draw says little about a rate. The exit code then needs the acceptance in every
draw.

    .venv/bin/python scripts/simulate_nights.py --suite normalization --out /tmp/nights
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import hashlib
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from xpubench.ci import matrix as M  # noqa: E402
from xpubench.fmt import fraction_arg  # noqa: E402
from xpubench.regress import gate as nightly  # noqa: E402
from xpubench.regress.policy import ARTIFACT_PREFIX, GateBook, GatePolicy, compare_night  # noqa: E402
from xpubench.results.reader import read_run  # noqa: E402
from xpubench.results.view import Measurement  # noqa: E402
from xpubench.results.writer import atomic_write_json, run_file_path  # noqa: E402
from xpubench.measure.stats import drift, summarize  # noqa: E402

LEG = "cpu"
# (machine id, speed relative to the real run): three machines, one of them slower, one faster
MACHINES = (("sim-a", 1.0), ("sim-b", 1.35), ("sim-c", 0.8))
FIRST_NIGHT = datetime(2026, 1, 1, 2, 17, tzinfo=timezone.utc)
MIN_SAMPLES = 5
MIN_GATED_ROUNDS = 10  # the rank test reaches the night's split alpha (~2e-4) from about 10 rounds a side

Key = tuple[str, str, str, str]  # suite, case, mode, backend


def key_of(m: dict) -> Key:
    return Measurement(m).key


def key_text(k: Key) -> str:
    return f"{k[0]}/{k[1]}:{k[2]} @ {k[3]}"


# --------------------------------------------------------------------------- 1. the real leg
def run_real_leg(out: Path, size: str, suites: list[str], cases: list[str], budget: float | None,
                 telemetry: bool) -> Path:
    """`xpubench run --leg cpu`, as the nightly leg runs it (size and suites may be narrowed)."""
    # --repeat 1: the nights resample one process's rounds (real reruns: scripts/rerun_nights.py)
    cmd = [sys.executable, "-m", "xpubench", "run", "--leg", LEG, "--repeat", "1", "--size", size, "--out", str(out),
           "--machine-id", "sim-real"] + ([] if telemetry else ["--no-telemetry"])
    cmd += [a for s in suites for a in ("-s", s)] + [a for c in cases for a in ("-k", c)]
    if budget is not None:
        cmd += ["--time-budget", str(budget)]
    print("$ " + " ".join(cmd[1:]).replace("-m xpubench", "xpubench"), flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    print(f"  real CPU leg: exit {proc.returncode} in {time.monotonic() - t0:.0f} s", flush=True)
    if proc.returncode not in (0, 1):  # 1 = some cases failed: what ran is still usable
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"the real CPU leg failed (exit {proc.returncode})")
    files = sorted(out.rglob("*.json"))
    if not files:
        raise SystemExit(f"the real CPU leg wrote no results file under {out}")
    return files[-1]


# --------------------------------------------------------------------------- 2. nights
@dataclass
class Noise:
    machine_drift: float
    case_drift: float
    jitter: float
    machine_spread: float = 0.05  # fixed per machine and case: machines are not pure rescalings

    def describe(self) -> dict[str, float]:
        night_sd = math.sqrt(2 * (self.machine_drift ** 2 + self.case_drift ** 2))
        return {"machine_drift_sd": self.machine_drift, "case_drift_sd": self.case_drift,
                "round_jitter_sd": self.jitter, "night_to_night_change_sd": night_sd,
                "night_to_night_mean_abs_change": night_sd * math.sqrt(2 / math.pi)}


@dataclass
class Plan:
    nights: int
    inject_night: int
    inject_machine: str
    slowdown: float
    injected: list[Key]
    noise: Noise


def usable(m: dict) -> bool:
    v = Measurement(m)
    return v.ok and len(v.samples) >= MIN_SAMPLES


def best_measured(real: dict) -> str:
    """``suite/case:mode`` of the case the real run measured best on all its backends.

    A 15% step can only be found in a case whose own rounds resolve it: enough
    rounds for the rank test to reach the night's alpha, and a tight CI. Injecting
    it into a case measured in 5 rounds to +/-25% on a busy machine would test
    the impossible (the gate reports such changes and does not gate them).
    """
    worst: dict[str, tuple[bool, float]] = {}
    for m in real["measurements"]:
        v = Measurement(m)
        name = f"{v.suite}/{v.case}:{v.mode}"
        rel = v.rel_ci if usable(m) else None
        few, wide = worst.get(name, (False, 0.0))
        worst[name] = (few or not usable(m) or len(v.samples) < MIN_GATED_ROUNDS,
                       max(wide, rel if rel is not None else math.inf))
    return min(worst, key=lambda k: (worst[k], k))


def pick_injected(real: dict, pattern: str) -> list[Key]:
    """Every backend of the first case whose ``suite/case:mode`` matches ``pattern`` ("auto": best measured)."""
    if pattern == "auto":
        pattern = best_measured(real)
    keys = [key_of(m) for m in real["measurements"] if usable(m)]
    literal = pattern.replace("[", "[[]")  # case names hold [params]: only * and ? are wildcards
    match = [k for k in keys if fnmatch.fnmatchcase(f"{k[0]}/{k[1]}:{k[2]}", literal)]
    if not match:
        names = sorted({f"{k[0]}/{k[1]}:{k[2]}" for k in keys})
        raise SystemExit(f"--inject-case {pattern!r} matches no measured case; cases: {', '.join(names[:10])}")
    first = match[0][:3]
    return [k for k in match if k[:3] == first]


def bandwidth(samples: np.ndarray) -> float:
    """Silverman's rule on log times: the smoothing of the bootstrap.

    A plain bootstrap of 5-20 rounds draws the same few values again and again, so
    two nights' samples separate more often than fresh rounds would; drawing from
    a kernel density of the real rounds keeps their spread and makes them new.
    """
    logs = np.log(samples)
    q1, q3 = np.percentile(logs, [25, 75])
    spread = min(float(np.std(logs, ddof=1)), (q3 - q1) / 1.34) or float(np.std(logs, ddof=1))
    return 0.9 * spread * logs.size ** -0.2


def resampled(m: dict, level: float, rng: np.random.Generator, jitter: float) -> dict:
    """A copy of measurement ``m`` whose samples are a new night's, statistics recomputed."""
    out = copy.deepcopy(m)
    real = np.asarray(m["time_s"]["samples"], dtype=float)
    noise = np.hypot(bandwidth(real), jitter)
    xs = real[rng.integers(0, real.size, real.size)] * level * np.exp(rng.normal(0.0, noise, real.size))
    samples = [float(x) for x in xs]
    stats = summarize(samples)
    t = out["time_s"]
    for key in ("processes", "level", "process_spread"):  # a resampled night is one process
        t.pop(key, None)
    t.update(stats.to_dict())
    t["samples"] = samples
    t["drift"] = drift(samples)
    units = out.get("units_per_step")
    if isinstance(units, (int, float)) and stats.median > 0:
        out["throughput_per_s"] = units / stats.median
    return out


def night_doc(real: dict, machine_id: str, night: int, minutes: int, measurements: list[dict],
              rng: np.random.Generator, noise: Noise) -> dict:
    started = FIRST_NIGHT + timedelta(days=night - 1, minutes=minutes)
    sha = hashlib.sha1(f"night-{night}".encode()).hexdigest()
    run = copy.deepcopy(real["run"])
    run.update({
        "id": f"{int(rng.integers(0, 2**32)):08x}",
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": (started + timedelta(minutes=9)).isoformat(timespec="seconds"),
        "git": {"commit": sha, "branch": "main", "dirty": False},
        "simulated": {"night": night, "from_run": real["run"].get("id"), "noise": noise.describe()},
    })
    machine = copy.deepcopy(real["machine"])
    machine.update({"machine_id": machine_id, "hostname": machine_id})
    return {"schema_version": real["schema_version"], "run": run, "machine": machine,
            "measurements": measurements}


def write_nights(real: dict, out: Path, plan: Plan, seed: int) -> list[Path]:
    """Write nights 1..N as the legs' artifacts would arrive: out/night-NN/xpubench-cpu/<machine>/..."""
    # Three streams: a seed names the same machine drifts night by night whatever real run
    # feeds it (they are not shifted by how many rounds that run measured); the cases'
    # offsets and drifts, and the rounds, come from their own streams.
    levels = np.random.default_rng([seed, 0]).normal(0.0, plan.noise.machine_drift, (plan.nights, len(MACHINES)))
    case_rng = np.random.default_rng([seed, 1])
    rng = np.random.default_rng([seed, 2])
    ms = real["measurements"]
    folders = []
    offsets = {mid: {key_of(m): math.exp(case_rng.normal(0.0, plan.noise.machine_spread)) for m in ms if usable(m)}
               for mid, _ in MACHINES}
    for night in range(1, plan.nights + 1):
        folder = out / f"night-{night:02d}"
        for i, (mid, speed) in enumerate(MACHINES):
            m_level = levels[night - 1, i]
            measurements = []
            for m in ms:
                if not usable(m):
                    measurements.append(copy.deepcopy(m))  # skipped/failed cases stay as they were
                    continue
                k = key_of(m)
                level = speed * offsets[mid][k] * math.exp(m_level + case_rng.normal(0.0, plan.noise.case_drift))
                if mid == plan.inject_machine and k in plan.injected and night >= plan.inject_night:
                    level *= 1.0 + plan.slowdown
                measurements.append(resampled(m, level, rng, plan.noise.jitter))
            doc = night_doc(real, mid, night, 7 * i, measurements, rng, plan.noise)
            started = datetime.fromisoformat(doc["run"]["started_at"])
            atomic_write_json(run_file_path(folder / f"{ARTIFACT_PREFIX}{LEG}", mid, started,
                                            doc["run"]["id"]), doc)
        folders.append(folder)
    return folders


# --------------------------------------------------------------------------- 3. the final job, nightly
@dataclass(frozen=True)
class Variant:
    """One way to gate: a rule, a threshold and a significance, per night (Bonferroni) or per comparison."""

    threshold: float
    alpha: float
    per_night: bool  # True: alpha is the machine-night's, split over its comparisons (the nightly gate)
    rule: str = "significant"

    @property
    def label(self) -> str:
        how = "per machine-night (Bonferroni)" if self.per_night else "per comparison"
        return f"rule {self.rule}, threshold {self.threshold:.0%}, alpha {self.alpha:g} {how}"


@dataclass
class Flags:
    variant: Variant
    regressions: dict[tuple[int, str, Key], float] = field(default_factory=dict)  # -> ratio
    improvements: set[tuple[int, str, Key]] = field(default_factory=set)
    compared: int = 0


def replay(folders: list[Path], history: Path, book: GateBook, variants: list[Variant],
           summaries: Path | None) -> list[Flags]:
    """Gate every night against the history, then merge it, as the nightly's final job does.

    ``variants[0]`` is the leg's gate: `xpubench.regress.gate.gate_night` itself decides it.
    The others re-judge the same pairs of runs with `xpubench.regress.compare`, for contrast.
    """
    from xpubench.regress import compare

    flags = [Flags(v) for v in variants]
    for night, folder in enumerate(folders, start=1):
        nights = nightly.gate_night(folder, history, book, with_ci=False)
        if summaries is not None:
            summaries.mkdir(parents=True, exist_ok=True)
            (summaries / f"night-{night:02d}.md").write_text(nightly.night_markdown(nights), encoding="utf-8")
        for n in nights:
            if n.previous is None:
                continue
            per_variant = [n.comparisons]
            for v in variants[1:]:
                if v.per_night:
                    cs, _ = compare_night(n.previous, n.tonight,
                                          GatePolicy(v.threshold, v.alpha, v.rule, trust_rounds=True), with_ci=False)
                else:
                    cs = compare.compare_runs([n.previous], n.tonight, v.threshold, alpha=v.alpha, rule=v.rule,
                                              with_ci=False, one_process_supported=True)
                per_variant.append(cs)
            for f, comparisons in zip(flags, per_variant):
                for c in comparisons:
                    if c.verdict in (compare.ONLY_IN_BASE, compare.ONLY_IN_NEW, compare.NOT_RUN):
                        continue
                    f.compared += 1
                    k = (night, n.machine_id, (c.suite, c.case, c.mode, c.backend))
                    if c.is_regression:
                        f.regressions[k] = c.ratio if c.ratio is not None else math.nan
                    elif c.verdict == compare.IMPROVEMENT:
                        f.improvements.add(k)
        nightly.merge_into_history([r for n in nights for r in n.tonight], history)
    return flags


def score(f: Flags, plan: Plan) -> dict[str, Any]:
    expected = {(plan.inject_night, plan.inject_machine, k) for k in plan.injected}
    flagged = set(f.regressions)
    false_alarms = sorted(flagged - expected)
    detected = flagged & expected
    return {
        # the acceptance: flagged on the injection night, on no other night
        "acceptance": bool(detected) and not false_alarms,
        "gate": f.variant.label,
        "threshold": f.variant.threshold,
        "comparisons": f.compared,
        "clean_comparisons": f.compared - len(expected),
        "detected_on_inject_night": sorted(key_text(k) for (_, _, k) in flagged & expected),
        "detected_changes": {key_text(k): round(f.regressions[(n, mid, k)] - 1, 4)
                             for (n, mid, k) in sorted(flagged & expected)},
        "missed_on_inject_night": sorted(key_text(k) for (_, _, k) in expected - flagged),
        "false_alarm_count": len(false_alarms),
        "false_alarms": [f"night {n} {mid} {key_text(k)} {f.regressions[(n, mid, k)] - 1:+.1%}"
                         for n, mid, k in false_alarms],
        "false_alarm_nights": sorted({n for n, _, _ in false_alarms}),
        "nights_the_gate_failed": sorted({n for n, _, _ in flagged}),
        "improvement_flags": len(f.improvements),
    }


# --------------------------------------------------------------------------- 4. the history page
def history_marks(site: Path, plan: Plan, history: Path) -> dict[str, Any]:
    """Find the regression markers on the history page and check one sits on the injected point.

    The page is built with the matrix (``--gate``, as the workflow does), so its
    marks must be exactly the gate's flags: their count is compared by the caller.
    """
    from xpubench.results.reader import load_runs

    html_text = (site / "history.html").read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="xpubench-figures">(.*?)</script>', html_text, re.S)
    figures = json.loads(m.group(1)) if m else []
    count = re.search(r"(\d+) flagged regression point", html_text)
    runs = load_runs([history]).runs
    t_inject = {int(r.time.timestamp() * 1000) for r in runs
                if r.machine_id == plan.inject_machine and r.meta["simulated"]["night"] == plan.inject_night}
    suite, case, mode, _ = plan.injected[0]
    marked_at_injection = False
    marked_figures = []
    for fig in figures:
        title = str(fig.get("layout", {}).get("title", {}).get("text", ""))
        for trace in fig.get("data", []):
            if trace.get("name") == "regression (compare)":
                marked_figures.append(re.sub(r"<[^>]+>", "", title))
                if case in title and mode in title and t_inject & set(trace.get("x", [])):
                    marked_at_injection = True
    return {"page": str(site / "history.html"), "flagged_points_on_page": int(count.group(1)) if count else None,
            "figures_with_regression_marks": marked_figures, "injected_point_marked": marked_at_injection}


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="working folder (default: a temporary one, removed)")
    p.add_argument("--from-run", type=Path, help="use this results file instead of running the CPU leg")
    p.add_argument("--size", default="smoke", help="size of the real CPU leg run (default smoke)")
    p.add_argument("--suite", "-s", action="append", default=[], help="narrow the real run to a suite")
    p.add_argument("--case", "-k", action="append", default=[], help="narrow the real run to case globs")
    p.add_argument("--time-budget", type=float, help="seconds per case of the real run")
    p.add_argument("--no-telemetry", action="store_true",
                   help="run the real leg without energy/memory meters (their longer timed window "
                        "makes a smoke run several times slower; the timings are what the nights use)")
    p.add_argument("--nights", type=int, default=30)
    p.add_argument("--inject-night", type=int, default=20)
    p.add_argument("--inject-machine", default="sim-b", choices=[mid for mid, _ in MACHINES])
    p.add_argument("--inject-case", default="auto",
                   help="glob on suite/case:mode; every backend of the first match is slowed "
                        "(default auto: the case measured most precisely on all its backends)")
    p.add_argument("--slowdown", type=fraction_arg("--slowdown"), default=0.15, help="injected slowdown (default 15%%)")
    p.add_argument("--machine-drift", type=float, default=0.01, help="sd of a machine's nightly level (log)")
    p.add_argument("--case-drift", type=float, default=0.01, help="sd of a case's nightly level (log)")
    p.add_argument("--jitter", type=float, default=0.005, help="sd of extra per-round jitter (log)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=1, help="repeat the gate over this many noise draws")
    p.add_argument("--json", type=Path, help="write the summary here too")
    p.add_argument("--no-site", action="store_true", help="skip the history report")
    args = p.parse_args(argv)
    if not 1 < args.inject_night <= args.nights:
        p.error("--inject-night must be after the first night and at most --nights")

    matrix = M.load_matrix()
    leg = matrix.leg(LEG)
    leg_threshold = leg.threshold
    # the leg's gate first; then, for contrast: the leg's gate under the other rule,
    # `xpubench compare`'s defaults, the leg's rule without the per-night split, and 5% with it
    other = "significant" if leg.rule == "confident" else "confident"
    variants = [Variant(leg.threshold, leg.alpha, True, leg.rule), Variant(leg.threshold, leg.alpha, True, other),
                Variant(0.05, 0.01, False), Variant(leg.threshold, 0.01, False, leg.rule),
                Variant(0.05, leg.alpha, True, leg.rule)]
    variants = [v for i, v in enumerate(variants) if v not in variants[:i]]

    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="xpubench-nights-")
    out = args.out or Path(tmp.name)
    out.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.monotonic()
        real_path = args.from_run or run_real_leg(out / "real", args.size, args.suite, args.case, args.time_budget,
                                                      not args.no_telemetry)
        real = read_run(real_path)
        t_real = time.monotonic() - t0
        noise = Noise(args.machine_drift, args.case_drift, args.jitter)
        plan = Plan(args.nights, args.inject_night, args.inject_machine, args.slowdown,
                    pick_injected(real, args.inject_case), noise)
        n_usable = sum(usable(m) for m in real["measurements"])
        print(f"  {n_usable} measurements usable of {len(real['measurements'])}; injecting "
              f"{args.slowdown:.0%} on {plan.injected[0][1]}:{plan.injected[0][2]} ({len(plan.injected)} backends) "
              f"on {plan.inject_machine} from night {plan.inject_night}", flush=True)

        runs = []
        flags0: list[Flags] = []
        for r in range(args.seeds):
            seed = args.seed + r
            base = out / (f"seed-{seed}" if args.seeds > 1 else "sim")
            folders = write_nights(real, base / "artifacts", plan, seed)
            book = matrix.gate_book().overridden(trust_rounds=True)  # one process a night: the rounds' gate
            flags = replay(folders, base / "history", book, variants, base / "summaries" if r == 0 else None)
            flags0 = flags if r == 0 else flags0
            runs.append((seed, base, [score(f, plan) for f in flags]))
        t_gate = time.monotonic() - t0 - t_real

        seed0, base0, scores0 = runs[0]
        gate = scores0[0]
        summary: dict[str, Any] = {
            "real_run": str(real_path), "real_run_seconds": round(t_real, 1),
            "measurements_per_night": n_usable, "machines": [mid for mid, _ in MACHINES],
            "nights": args.nights, "inject": {"night": plan.inject_night, "machine": plan.inject_machine,
                                               "slowdown": plan.slowdown, "keys": [key_text(k) for k in plan.injected]},
            "noise": noise.describe(), "seed": seed0, "leg_threshold": leg_threshold,
            "gate": gate, "contrasts": scores0[1:],
        }
        if args.seeds > 1:
            summary["over_seeds"] = [{
                "gate": variants[i].label,
                "seeds": args.seeds,
                "false_alarms_per_seed": [s[i]["false_alarm_count"] for _, _, s in runs],
                "mean_false_alarms": sum(s[i]["false_alarm_count"] for _, _, s in runs) / len(runs),
                "injected_flags": f"{sum(len(s[i]['detected_on_inject_night']) for _, _, s in runs)}"
                                  f"/{len(runs) * len(plan.injected)}",
                "injected_flags_per_seed": [len(s[i]["detected_on_inject_night"]) for _, _, s in runs],
                "seeds_flagged_on_inject_night": sum(bool(s[i]["detected_on_inject_night"]) for _, _, s in runs),
                "seeds_fully_detected": sum(not s[i]["missed_on_inject_night"] for _, _, s in runs),
                "seeds_meeting_acceptance": sum(s[i]["acceptance"] for _, _, s in runs),
                "seeds_failing_acceptance": [seed for seed, _, s in runs if not s[i]["acceptance"]],
            } for i in range(len(variants))]
        ok = all(s[0]["acceptance"] for _, _, s in runs)
        if not args.no_site:
            from xpubench.report import build_site

            t1 = time.monotonic()
            # as the workflow builds it (`xpubench report history --gate`): the marks are the gate's
            index = build_site([base0 / "history"], base0 / "site", title="xpubench: 30 simulated nights",
                               gate=matrix.gate_book().overridden(trust_rounds=True))
            marks = history_marks(index.parent, plan, base0 / "history")
            gate_flags = len(flags0[0].regressions)
            marks["gate_regression_flags"] = gate_flags
            marks["marks_match_gate"] = marks["flagged_points_on_page"] == gate_flags
            marks["build_seconds"] = round(time.monotonic() - t1, 1)
            summary["history_page"] = marks
            ok = ok and marks["injected_point_marked"] and marks["marks_match_gate"]
        summary["gate_seconds"] = round(t_gate, 1)
        summary["passed"] = ok
        text = json.dumps(summary, indent=1)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(text, encoding="utf-8")
        print(text)
        print(f"\n{'PASS' if ok else 'FAIL'}: {gate['gate']}: "
              f"{len(gate['detected_on_inject_night'])}/{len(plan.injected)} injected flagged on night "
              f"{plan.inject_night}, {gate['false_alarm_count']} false alarm(s) over "
              f"{gate['clean_comparisons']} clean comparisons")
        for sc in scores0[1:]:
            print(f"  contrast: {sc['gate']}: {len(sc['detected_on_inject_night'])}/{len(plan.injected)} "
                  f"flagged on night {plan.inject_night}, {sc['false_alarm_count']} false alarm(s)")
        return 0 if ok else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())

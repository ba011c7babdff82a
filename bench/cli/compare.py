"""`xpubench compare BASE NEW`: the command line of compare (arguments, reading both sets, exit code)."""

from __future__ import annotations

import argparse
import sys

from xpubench.fmt import fraction_arg
from xpubench.regress.compare import DEFAULT_ALPHA, DEFAULT_RULE, DEFAULT_THRESHOLD, RULES
from xpubench.regress.confirm import DEFAULT_BUDGET_S, DEFAULT_FOCUS, DEFAULT_MAX_PROCESSES, DEFAULT_PROCESSES

parse_threshold = fraction_arg("threshold")  # "5%" or 0.05
parse_alpha = fraction_arg("alpha")


def parse_suite_threshold(text: str) -> tuple[str, float]:
    """``training=10%`` -> ("training", 0.10)."""
    suite, sep, pct = str(text).partition("=")
    if not sep or not suite.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected SUITE=PCT, e.g. training=10%")
    return suite.strip(), parse_threshold(pct)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", help="results file or folder: the reference (e.g. last night)")
    parser.add_argument("new", help="results file or folder: the candidate (e.g. tonight)")
    parser.add_argument("--threshold", type=parse_threshold, default=DEFAULT_THRESHOLD, metavar="PCT",
                        help="smallest change that counts, e.g. 5%% or 0.05 (default 5%%)")
    parser.add_argument("--suite-threshold", type=parse_suite_threshold, action="append", default=[],
                        metavar="SUITE=PCT", help="threshold for one suite, e.g. training=10%% (repeatable)")
    parser.add_argument("--alpha", type=parse_alpha, default=DEFAULT_ALPHA,
                        help="significance level of the test on per-round samples (default 0.01)")
    parser.add_argument("--rule", choices=RULES, default=DEFAULT_RULE,
                        help="what counts as a regression: 'significant' = significant and the change beyond "
                             "the threshold (default); 'confident' = significant and the whole 95%% CI of "
                             "the change beyond the threshold (the nightly gate's: noisy cases cannot trip it)")
    parser.add_argument("--trust-rounds", action="store_true",
                        help="judge files of one process per side on their rounds alone (the rank test compare "
                             "used before verdict levels); by default such a change is 'unsupported' unless a "
                             "noise model (calibrate, or several BASE runs) says what a rerun shows")
    parser.add_argument("--calibration", metavar="FILE", action="append", default=[],
                        help="calibration.json written by `xpubench calibrate` (repeatable; default: any found "
                             "under BASE, NEW and results/)")
    parser.add_argument("--confirm", type=int, nargs="?", const=DEFAULT_PROCESSES, default=None, metavar="K",
                        help=f"re-measure each suspect (a change, or no change where the files could not have shown "
                             f"one) in K fresh processes per side (default {DEFAULT_PROCESSES}), BASE and NEW "
                             "alternating with each side's recorded options, then decide on process medians (a worker "
                             "start per backend and side and pass, plus each suspect's build and budget: the note "
                             f"says how long). Default: on, K={DEFAULT_PROCESSES}, when NEW was measured on this host "
                             "with this checkout's code (it can be measured again here); off otherwise")
    parser.add_argument("--confirm-budget", type=float, default=DEFAULT_BUDGET_S, metavar="S",
                        help=f"seconds of timed rounds per suspect in each confirming process (default "
                             f"{DEFAULT_BUDGET_S:g}: processes, not rounds, buy power on a noisy machine)")
    parser.add_argument("--confirm-max", type=int, default=DEFAULT_MAX_PROCESSES, metavar="N",
                        help="a suspect that K processes left undecided with its estimate beyond the "
                             f"threshold gets more passes, up to N processes per side (default {DEFAULT_MAX_PROCESSES}; "
                             "N <= K: none); each of its two looks then tests at alpha / 2")
    parser.add_argument("--confirm-escalate-s", type=float, default=None, metavar="S",
                        help="time cap of those extra passes in seconds (default: as long as the first K passes took)")
    parser.add_argument("--confirm-focus", type=int, default=DEFAULT_FOCUS, metavar="M",
                        help="each extra pass measures the M undecided suspects nearest a decision (smallest "
                             f"p-value; default {DEFAULT_FOCUS}), so the cap is not spread over every noisy one")
    parser.add_argument("--no-confirm", dest="confirm", action="store_const", const=0,
                        help="judge the files as they are, even where a confirmation could run")
    parser.add_argument("--confirm-out", metavar="DIR", default=None,
                        help="write what the confirmation measured as results files, DIR/base and DIR/new (each "
                             "suspect with every process's median), to read or report")
    parser.add_argument("--seed", type=int, default=None, help="seed of the confirmation's A/B order")
    parser.add_argument("--base-is-this-build", action="store_true", default=None,
                        help="with --confirm: BASE was measured with this checkout's code (e.g. before a "
                             "commit that changed no measured code), so re-measure it too")
    parser.add_argument("--format", choices=("table", "markdown"), default="table",
                        help="table for the terminal, markdown for CI job summaries")


def parse(argv: list[str]) -> argparse.Namespace:
    """``xpubench compare`` arguments (scripts judge files exactly as the command does)."""
    parser = argparse.ArgumentParser(prog="xpubench compare")
    add_arguments(parser)
    return parser.parse_args(argv)


def auto_confirm(new_runs: list) -> int:
    """compare's default K: a confirmation where NEW can be measured again here (this host, this
    checkout's code), as ``asv continuous`` measures both sides; none for files from elsewhere."""
    from xpubench.regress.compare import newest_runs
    from xpubench.regress.confirm import DEFAULT_PROCESSES, measured_here, same_build

    latest = list(newest_runs(new_runs).values())
    return DEFAULT_PROCESSES if latest and all(measured_here(r) and same_build(r) for r in latest) else 0


def verdicts(args: argparse.Namespace) -> tuple[list, str]:
    """The comparisons ``xpubench compare`` makes of ``args`` and its confirmation note; UserError on bad input."""
    from pathlib import Path

    from xpubench.errors import UserError
    from xpubench.regress.compare import compare_runs
    from xpubench.regress.levels import find_calibrations
    from xpubench.results.reader import load_runs
    from xpubench.results.run_view import Run

    budget = getattr(args, "confirm_budget", DEFAULT_BUDGET_S)
    if not budget > 0:
        raise UserError(f"--confirm-budget {budget:g}: needs seconds > 0, e.g. 0.25")
    escalate_s = getattr(args, "confirm_escalate_s", None)
    if escalate_s is not None and not escalate_s >= 0:
        raise UserError(f"--confirm-escalate-s {escalate_s:g}: needs seconds >= 0, e.g. 120")
    focus = getattr(args, "confirm_focus", DEFAULT_FOCUS)
    if focus < 1:
        raise UserError(f"--confirm-focus {focus}: needs at least 1 suspect per pass, e.g. {DEFAULT_FOCUS}")
    base = load_runs([args.base], strict=True).runs
    new = load_runs([args.new], strict=True).runs
    for label, path, runs in (("BASE", args.base, base), ("NEW", args.new, new)):
        if not runs:
            raise UserError(f"{label} {path}: no results files found")
    alpha = getattr(args, "alpha", DEFAULT_ALPHA)
    rule = getattr(args, "rule", DEFAULT_RULE)
    noise = find_calibrations([Path(p) for p in (getattr(args, "calibration", None) or [])]
                              or [Path(args.base), Path(args.new), Path("results")])
    comparisons = compare_runs(base, new, args.threshold, dict(getattr(args, "suite_threshold", None) or []),
                               alpha=alpha, rule=rule, noise=noise,
                               one_process_supported=getattr(args, "trust_rounds", False))
    confirm_k = getattr(args, "confirm", None)
    if confirm_k is None:
        confirm_k = auto_confirm([Run.of(r) for r in new])
    if confirm_k == 0:
        unwritten = "--confirm-out: nothing written, no confirmation ran" if getattr(args, "confirm_out", None) else ""
        return comparisons, unwritten
    if confirm_k < 0:
        raise UserError("--confirm K needs K >= 1")
    from xpubench.regress.confirm import confirm

    comparisons, info = confirm(comparisons, [Run.of(r) for r in base], [Run.of(r) for r in new],
                                processes=confirm_k, threshold=args.threshold, alpha=alpha, rule=rule,
                                seed=getattr(args, "seed", None),
                                budget_s=budget,
                                max_processes=getattr(args, "confirm_max", DEFAULT_MAX_PROCESSES),
                                escalate_s=escalate_s, focus=focus,
                                base_is_this_build=getattr(args, "base_is_this_build", None))
    note = info.note()
    out_dir = getattr(args, "confirm_out", None)
    if out_dir and info.runs:
        note += "\n" + write_confirmed(Path(out_dir), info.runs)
    return comparisons, note


def write_confirmed(out_dir, runs: dict) -> str:
    """The confirmation's run documents under ``out_dir``/base and /new; a line saying where."""
    from xpubench.results.run_view import Run
    from xpubench.results.writer import atomic_write_json, run_file_path

    try:
        for (side, machine_id), doc in runs.items():
            view = Run.of(doc)
            atomic_write_json(run_file_path(out_dir / side, machine_id, view.time, view.id), doc)
    except OSError as e:  # the verdicts stand; only the files are missing
        return f"--confirm-out {out_dir}: cannot write ({e.strerror or e})"
    return f"confirmation's measurements (every process's median): {out_dir / 'base'} and {out_dir / 'new'}"


def run(args: argparse.Namespace) -> int:
    """Exit code: 1 when a regression was found, 0 otherwise, 2 on bad input."""
    from xpubench.errors import UserError
    from xpubench.regress.compare import find_regressions
    from xpubench.regress.format import format_markdown, format_table

    try:
        comparisons, note = verdicts(args)
    except UserError as e:
        print(f"xpubench compare: {e}", file=sys.stderr)
        return 2
    fmt = format_markdown if getattr(args, "format", "table") == "markdown" else format_table
    print(fmt(comparisons, threshold=args.threshold, alpha=getattr(args, "alpha", DEFAULT_ALPHA),
              rule=getattr(args, "rule", DEFAULT_RULE)))
    if note:
        print(note)
    return 1 if find_regressions(comparisons) else 0

"""`xpubench report RESULTS... -o DIR`: the command line of the static site (and where --gate reads the matrix)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xpubench.cli.compare import parse_threshold
from xpubench.regress.compare import DEFAULT_RULE, DEFAULT_THRESHOLD, RULES

DEFAULT_OUT = "results/report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="RESULTS",
                        help="results files or folders (searched recursively), pytest-benchmark JSON files")
    parser.add_argument("-o", "--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for the site (default {DEFAULT_OUT}); open DIR/index.html")
    parser.add_argument("--baseline", metavar="SPEC", default=None,
                        help="backend the speedup heatmaps divide by, e.g. torch:cpu:fp32 "
                             "(default: each machine's fp32 CPU backend)")
    parser.add_argument("--title", default=None, help="title shown on every page")
    parser.add_argument("--threshold", type=parse_threshold, default=DEFAULT_THRESHOLD, metavar="PCT",
                        help="change the history page marks, as in `xpubench compare` (default 5%%)")
    parser.add_argument("--rule", choices=RULES, default=DEFAULT_RULE,
                        help="what the history page marks as a regression, as `xpubench compare --rule` "
                             "(default significant)")
    parser.add_argument("--gate", action="store_true",
                        help="mark the history exactly as the nightly gate flags it: each machine with its "
                             "leg's threshold, rule and per-night alpha from the matrix definition "
                             "(bench/ci/matrix.toml, $XPUBENCH_MATRIX or --matrix-file); overrides "
                             "--threshold and --rule")
    parser.add_argument("--matrix-file", metavar="TOML", default=None,
                        help="the matrix definition --gate reads (implies --gate)")


def run(args: argparse.Namespace) -> int:
    """Build the site; print the path of index.html. Exit 2 on bad input."""
    from xpubench.errors import UserError
    from xpubench.report.site import write_site
    from xpubench.results.reader import load_runs

    try:
        result = load_runs(args.inputs, strict=False)
        if not result.runs:
            raise UserError(f"no results files found in {', '.join(args.inputs)}")
        gate = None
        if getattr(args, "gate", False) or getattr(args, "matrix_file", None):
            # The command reads the definition and hands the report its gate book:
            # the report package itself never imports the matrix.
            from xpubench.ci.matrix import load_matrix

            gate = load_matrix(getattr(args, "matrix_file", None)).gate_book()
    except UserError as e:
        print(f"xpubench report: {e}", file=sys.stderr)
        return 2
    for problem in result.problems:
        print(f"xpubench report: warning: left out {problem}", file=sys.stderr)
    baseline = getattr(args, "baseline", None)
    if baseline and not any(m.backend == baseline for r in result.runs for m in r.measurements):
        backends = sorted({m.backend for r in result.runs for m in r.measurements})
        print(f"xpubench report: --baseline {baseline}: no such backend in the inputs; "
              f"present: {', '.join(backends)}", file=sys.stderr)
        return 2
    try:
        index = write_site(result, Path(args.out), baseline=baseline, title=getattr(args, "title", None),
                           threshold=getattr(args, "threshold", DEFAULT_THRESHOLD),
                           rule=getattr(args, "rule", DEFAULT_RULE), gate=gate)
    except OSError as e:
        print(f"xpubench report: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(index)
    return 0

"""`xpubench run | list | env | report | compare` — the command line.

Imports are lazy: ``--help``, ``list`` and ``report`` never load torch or jax.
User mistakes print one line (``xpubench: error: ...``) and exit 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from xpubench import __version__
from xpubench.errors import UserError

# Commands that live in their own modules: name -> module with add_arguments/run.
EXTERNAL_COMMANDS = {
    "report": ("xpubench.report.command", "build the static HTML report from results files"),
    "compare": ("xpubench.regress.compare", "compare two sets of runs; exit 1 on a regression"),
    "probe": ("xpubench.cli.probe", "measure this machine's ceilings: matmul and vector FLOP/s, memory bandwidth"),
    "matrix": ("xpubench.ci.matrix", "the nightly CI matrix: plan, GitHub JSON"),
}


def _pct(text: str) -> float:
    t = text.strip()
    v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction like 1% or 0.01, got {text!r}")
    return v


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", "-b", action="append", metavar="SPEC",
                   help="framework:device:precision, repeatable (default: every backend available here)")
    p.add_argument("--suite", "-s", action="append", metavar="NAME", help="suite to run, repeatable (default: all)")
    p.add_argument("--case", "-k", action="append", metavar="GLOB",
                   help="case name glob, e.g. 'layernorm' or 'normalization/*norm:forward' (repeatable)")
    p.add_argument("--size", default="default", help="smoke | default | large (default: default)")
    p.add_argument("--time-budget", type=float, metavar="S", help="seconds of timed rounds per case")
    p.add_argument("--target-ci", type=_pct, default=0.01, metavar="PCT",
                   help="stop when the median's 95%% CI is within +/- this (default 1%%)")
    p.add_argument("--min-rounds", type=int, metavar="N", help="never stop before N rounds")
    p.add_argument("--case-timeout", type=float, default=600.0, metavar="S",
                   help="a case with no result after S seconds is recorded 'timeout' (default 600)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for the frameworks (default: theirs)")
    p.add_argument("--out", default="results", metavar="DIR", help="results folder (default: results)")
    p.add_argument("--machine-id", metavar="ID", help="name of this machine in results (default: from hardware)")
    p.add_argument("--cpu-tdp", type=float, metavar="W", help="CPU TDP in watts for the energy estimate")
    p.add_argument("--cold-cache", action="store_true", help="CUDA: flush L2 before each timed call")
    p.add_argument("--torch-compile", nargs="?", const="default", metavar="MODE",
                   help="torch training cases through torch.compile (inductor; optional mode, e.g. "
                        "max-autotune); compile time is recorded apart as compile_s")
    p.add_argument("--no-telemetry", action="store_true", help="skip energy and host-memory meters")
    p.add_argument("--no-accuracy", action="store_true", help="skip error_vs_fp32 for reduced precisions")
    p.add_argument("--leg", metavar="NAME",
                   help="run one leg of the nightly matrix exactly as CI does (see `xpubench matrix`)")
    p.add_argument("--report", action="store_true",
                   help="build the HTML report of everything under --out afterwards")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xpubench",
        description="Hardware-aware benchmarks of deep-learning building blocks in PyTorch and JAX.")
    parser.add_argument("--version", action="version", version=f"xpubench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_run_arguments(sub.add_parser("run", help="run suites on backends and write a results file"))
    lp = sub.add_parser("list", help="suites, cases and backends (with availability)")
    lp.add_argument("--size", default="default")
    lp.add_argument("--suite", "-s", action="append")
    ep = sub.add_parser("env", help="print this machine's fingerprint as JSON")
    ep.add_argument("--machine-id")
    for name, (module, help_text) in EXTERNAL_COMMANDS.items():
        sp = sub.add_parser(name, help=help_text)
        sp.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(sp)
        except ModuleNotFoundError:
            sp.set_defaults(_missing=True)
    return parser


def cmd_list(args) -> int:
    from xpubench.backends.base import all_specs, make_backend
    from xpubench.spec import registry as specmod
    from xpubench.cli.console import stdout_console
    from rich.markup import escape
    from rich.table import Table

    console = stdout_console()
    cases = specmod.select(args.suite, None, args.size)
    t = Table(title=f"cases ({args.size} size)", title_justify="left")
    for col in ("suite", "case", "mode", "unit", "units/step", "precisions"):
        t.add_column(col)
    for c in cases:
        t.add_row(c.suite, escape(c.case_id), c.mode, c.unit, f"{c.work.units:g}", ",".join(c.workload.precisions))
    console.print(t)
    b = Table(title="backends", title_justify="left")
    for col in ("backend", "available", "reason"):
        b.add_column(col)
    for s in all_specs():
        a = make_backend(s).availability()
        b.add_row(str(s), "[green]yes[/]" if a.ok else "[red]no[/]", escape(a.reason))
    console.print(b)
    return 0


def cmd_env(args) -> int:
    from xpubench.hardware.fingerprint import fingerprint

    print(json.dumps(fingerprint(args.machine_id), indent=2))
    return 0


def cmd_run(args) -> int:
    from xpubench.backends.base import BackendSpec, default_specs
    from xpubench.spec import registry as specmod
    from xpubench.cli.console import RunDisplay, stdout_console, status_counts_line, summary_table
    from xpubench.hardware.fingerprint import fingerprint
    from xpubench.results.files import RunWriter, new_run_id, run_file_path
    from xpubench.run.supervisor import Runner
    from xpubench.run.worker import RunOptions

    if args.leg:
        from xpubench.ci.matrix import apply_leg

        apply_leg(args)  # fills backend/suite/size/time budget from the matrix definition
    specs = [BackendSpec.parse(s) for s in args.backend] if args.backend else default_specs()
    if not specs:
        raise UserError("no backend available here: install torch or jax (see README)")
    cases = specmod.select(args.suite, args.case, args.size)
    if not cases:
        raise UserError("no cases selected")
    try:
        machine = fingerprint(args.machine_id)
    except ValueError as e:
        raise UserError(str(e)) from None
    if args.torch_compile:
        # the suites read it in the workers, which inherit the environment
        os.environ["XPUBENCH_TORCH_COMPILE"] = "1" if args.torch_compile == "default" else args.torch_compile
    opts = RunOptions(size=args.size, time_budget_s=args.time_budget, target_rel_ci=args.target_ci,
                      min_rounds=args.min_rounds, case_timeout_s=args.case_timeout, threads=args.threads,
                      telemetry=not args.no_telemetry, cpu_tdp_w=args.cpu_tdp,
                      accuracy=not args.no_accuracy, cold_cache=args.cold_cache)
    started = datetime.now(timezone.utc)
    run_id = new_run_id()
    path = run_file_path(Path(args.out), machine["machine_id"], started, run_id)
    run_meta = {"id": run_id, "started_at": started.isoformat(timespec="seconds"),
                "command": " ".join(["xpubench"] + sys.argv[1:]), "xpubench_version": __version__,
                "git": machine.get("git"), "size": args.size, "leg": args.leg, "backends": [str(s) for s in specs],
                "options": opts.to_dict()}
    writer = RunWriter(path, run_meta, machine)
    total = len(specs) * len(cases)
    out = stdout_console()
    out.print(f"xpubench: {len(cases)} cases x {len(specs)} backends = {total} measurements -> {path}")
    with RunDisplay(total, opts.timing_config().time_budget_s) as display:
        runner = Runner(specs, cases, writer, opts, display)
        outcome = runner.run()
    writer.set_run_field("backend_info", runner.backend_info)
    # Place every measurement against this machine's measured ceilings (xpubench
    # probe), or the vendor spec sheet for a known accelerator; null where unknown.
    from xpubench.hardware.ceilings import find_ceilings
    from xpubench.hardware.roofline import attach_roofline

    attach_roofline(writer.doc, find_ceilings(machine["machine_id"], [args.out, "results"]))
    writer.finish(interrupted=outcome.interrupted)
    out.print(summary_table(outcome.records))
    from rich.markup import escape

    from xpubench.hardware.roofline_warnings import summary_lines

    for line in summary_lines(writer.measurements):  # figures above a physical roof, with why
        out.print(f"[yellow]roofline:[/] {escape(line)}", highlight=False, soft_wrap=True)
    out.print(status_counts_line(outcome.counts(), outcome.interrupted))
    out.print(f"results: {path}")
    if args.report and not outcome.interrupted:
        from xpubench.report import build_site

        index = build_site([args.out], Path(args.out) / "report")
        out.print(f"report: {index}")
    if outcome.interrupted:
        return 130
    return 0 if outcome.all_good else 1


COMMANDS = {"run": cmd_run, "list": cmd_list, "env": cmd_env}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
        if getattr(args, "_missing", False):
            raise UserError(f"'{args.command}' is not available in this installation")
        return importlib.import_module(args._module).run(args)
    except UserError as e:
        print(f"xpubench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xpubench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

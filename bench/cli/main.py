"""The command line: the `xpubench` parser and the dispatch to each command (run, list, env, report, compare, ...).

Imports are lazy: ``--help``, ``list`` and ``report`` never load torch or jax.
User mistakes print one line (``xpubench: error: ...``) and exit 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from xpubench import __version__
from xpubench.errors import UserError

# Commands that live in their own modules: name -> module with add_arguments/run.
EXTERNAL_COMMANDS = {
    "run": ("xpubench.cli.run", "run suites on backends and write a results file"),
    "report": ("xpubench.report.command", "build the static HTML report from results files"),
    "compare": ("xpubench.regress.compare", "compare two sets of runs; exit 1 on a regression"),
    "probe": ("xpubench.hardware.probe", "measure this machine's ceilings: matmul FLOP/s, memory bandwidth"),
    "matrix": ("xpubench.ci.matrix", "the nightly CI matrix: plan, GitHub JSON"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xpubench",
        description="Hardware-aware benchmarks of deep-learning building blocks in PyTorch and JAX.")
    parser.add_argument("--version", action="version", version=f"xpubench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_module_command(sub, "run")  # first in --help: the main command
    lp = sub.add_parser("list", help="suites, cases and backends (with availability)")
    lp.add_argument("--size", default="default")
    lp.add_argument("--suite", "-s", action="append")
    ep = sub.add_parser("env", help="print this machine's fingerprint as JSON")
    ep.add_argument("--machine-id")
    for name in EXTERNAL_COMMANDS:
        if name != "run":
            _add_module_command(sub, name)
    return parser


def _add_module_command(sub, name: str) -> None:
    module, help_text = EXTERNAL_COMMANDS[name]
    sp = sub.add_parser(name, help=help_text)
    sp.set_defaults(_module=module)
    try:
        importlib.import_module(module).add_arguments(sp)
    except ModuleNotFoundError:
        sp.set_defaults(_missing=True)


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


COMMANDS = {
    "report": ("xpubench.report.command", "build the static HTML report from results files"),
    "compare": ("xpubench.regress.compare", "compare two sets of runs; exit 1 on a regression"),
    "probe": ("xpubench.hardware.probe", "measure this machine's ceilings: matmul FLOP/s, memory bandwidth"),
    "matrix": ("xpubench.ci.matrix", "the nightly CI matrix: plan, GitHub JSON"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xpubench",
        description="Hardware-aware benchmarks of deep-learning building blocks in PyTorch and JAX.")
    parser.add_argument("--version", action="version", version=f"xpubench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_module_command(sub, "run")  # first in --help: the main command
    lp = sub.add_parser("list", help="suites, cases and backends (with availability)")
    lp.add_argument("--size", default="default")
    lp.add_argument("--suite", "-s", action="append")
    ep = sub.add_parser("env", help="print this machine's fingerprint as JSON")
    ep.add_argument("--machine-id")
    for name in EXTERNAL_COMMANDS:
        if name != "run":
            _add_module_command(sub, name)
    return parser


def _add_module_command(sub, name: str) -> None:
    module, help_text = EXTERNAL_COMMANDS[name]
    sp = sub.add_parser(name, help=help_text)
    sp.set_defaults(_module=module)
    try:
        importlib.import_module(module).add_arguments(sp)
    except ModuleNotFoundError:
        sp.set_defaults(_missing=True)


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
    out.print(status_counts_line(outcome.counts(), outcome.interrupted))
    out.print(f"results: {path}")
    if args.report and not outcome.interrupted:
        from xpubench.report import build_site

        index = build_site([args.out], Path(args.out) / "report")
        out.print(f"report: {index}")
    if outcome.interrupted:
        return 130
    return 0 if outcome.all_good else 1


COMMANDS = {"list": cmd_list, "env": cmd_env}


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

"""The command line: the `xpubench` parser, and the dispatch to each command.

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
from xpubench.fmt import fraction_arg

# Commands that live in their own modules: name -> module with add_arguments/run.
EXTERNAL_COMMANDS = {
    "run": ("xpubench.cli.run", "run suites on backends and write a results file"),
    "report": ("xpubench.cli.report", "build the static HTML report from results files"),
    "compare": ("xpubench.cli.compare", "compare two sets of runs; exit 1 on a regression"),
    "probe": ("xpubench.cli.probe", "measure this machine's ceilings: matmul and vector FLOP/s, memory bandwidth"),
    "matrix": ("xpubench.ci.matrix", "the nightly CI matrix: plan, GitHub JSON"),
    "calibrate": ("xpubench.cli.calibrate", "measure A/A and A/B (injected slowdown) in fresh processes: "
                  "false alarms, power, detectable change per case"),
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

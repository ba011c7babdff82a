"""`xpubench run`: measure the selected cases on the selected backends and write a results file."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from xpubench import __version__
from xpubench.errors import UserError
from xpubench.options import RunOptions, add_cli_flags, given_cli_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_cli_flags(p)  # the measuring options, shared with the pytest plugin
    p.add_argument("--out", default="results", metavar="DIR", help="results folder (default: results)")
    p.add_argument("--machine-id", metavar="ID", help="name of this machine in results (default: from hardware)")
    p.add_argument("--leg", metavar="NAME",
                   help="run one leg of the nightly matrix exactly as CI does (see `xpubench matrix`); "
                        "options given here win over the leg's")
    p.add_argument("--report", action="store_true",
                   help="build the HTML report of everything under --out afterwards")


def run_options(args: argparse.Namespace) -> RunOptions:
    """The options of this run: the flags given, over the leg's options with ``--leg``."""
    given = given_cli_options(args)
    if args.leg:
        from xpubench.ci.matrix import leg_options, load_matrix

        return leg_options(load_matrix(None).leg(args.leg), given)
    return RunOptions.from_flags(given)


def run(args: argparse.Namespace) -> int:
    from xpubench.backends.base import BackendSpec, default_specs
    from xpubench.cli.console import RunDisplay, status_counts_line, stdout_console, summary_table, twin_table
    from xpubench.hardware.fingerprint import fingerprint
    from xpubench.results.writer import RunWriter, new_run_id, run_file_path
    from xpubench.run.supervisor import Runner
    from xpubench.spec import registry as specmod

    opts = run_options(args)
    specs = [BackendSpec.parse(s) for s in opts.backends] if opts.backends else default_specs()
    if not specs:
        raise UserError("no backend available here: install torch or jax (see README)")
    cases = specmod.select(list(opts.suites) or None, list(opts.cases) or None, opts.size)
    if not cases:
        raise UserError("no cases selected")
    from xpubench.run.distributed import expand_world_sizes

    cases = expand_world_sizes(cases, opts)  # distributed cases: one per --world-size
    try:
        machine = fingerprint(args.machine_id)
    except ValueError as e:
        raise UserError(str(e)) from None
    started = datetime.now(timezone.utc)
    run_id = new_run_id()
    path = run_file_path(Path(args.out), machine["machine_id"], started, run_id)
    run_meta = {"id": run_id, "started_at": started.isoformat(timespec="seconds"),
                "command": " ".join(["xpubench"] + sys.argv[1:]), "xpubench_version": __version__,
                "git": machine.get("git"), "size": opts.size, "leg": args.leg, "backends": [str(s) for s in specs],
                "options": opts.to_dict()}
    # several nodes: node 0's rank 0 gathers every rank's figures; only node 0 writes a file
    writer = RunWriter(path, run_meta, machine) if opts.node_rank == 0 else None
    total = len(specs) * len(cases) * opts.repeat
    out = stdout_console()
    times = f" x {opts.repeat} processes" if opts.repeat > 1 else ""
    out.print(f"xpubench: {len(cases)} cases x {len(specs)} backends{times} = {total} measurements -> {path}")
    with RunDisplay(total, opts.timing_config().time_budget_s) as display:
        runner = Runner(specs, cases, writer, opts, display)
        outcome = runner.run()
    if writer is None:
        out.print(status_counts_line(outcome.counts(), outcome.interrupted))
        out.print(f"node {opts.node_rank}: node 0 writes the results file")
        return 130 if outcome.interrupted else (0 if outcome.all_good else 1)
    writer.set_run_field("backend_info", runner.backend_info)
    from xpubench.measure.ranks import attach_scaling

    attach_scaling(writer.doc["measurements"])  # distributed: efficiency against world size 1
    writer.set_run_field("schedule", runner.schedule)
    from xpubench.regress.twins import twin_ratios

    ratios = twin_ratios(outcome.records)
    writer.set_run_field("twin_ratios", ratios)
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
    if ratios:
        out.print(twin_table(ratios))
    out.print(status_counts_line(outcome.counts(), outcome.interrupted))
    out.print(f"results: {path}")
    if args.report and not outcome.interrupted:
        from xpubench.report import build_site

        index = build_site([args.out], Path(args.out) / "report")
        out.print(f"report: {index}")
    if outcome.interrupted:
        return 130
    return 0 if outcome.all_good else 1

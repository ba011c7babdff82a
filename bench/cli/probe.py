"""``xpubench probe``: measure this machine's ceilings once, cache them, show the roofs.

The measuring is ``xpubench.hardware.probe`` (one fresh process per framework:device);
the cache is ``<out>/<machine_id>/ceilings.json`` (``xpubench.hardware.ceilings``),
reused until ``--refresh``, except entries probed on a busy machine, which the next
probe measures again. The table shows the roofs per device (the best of every
framework, with its source and the theoretical peak), then each framework's figures.
"""

from __future__ import annotations

import argparse
from typing import Any

from xpubench.errors import UserError
from xpubench.fmt import fmt_si
from xpubench.hardware import probe
from xpubench.hardware.probe_plan import MiB
from xpubench.spec.registry import SIZES

BANDWIDTH_LABELS = (("copy", "copy (r+w)"), ("triad", "triad (2r+1w)"), ("read", "read (sum)"),
                    ("inplace", "in-place (r+w)"), ("h2d", "host->device"), ("d2h", "device->host"))


def _rate(x: float | None, unit: str) -> str:
    from xpubench.cli.console import fmt_rate

    return fmt_rate(x, unit) if x is not None else "-"


def device_rows(doc: dict) -> list[tuple[str, str, str, str, str]]:
    """(device, roof, precision, value, source) rows of the per-device roofs."""
    from xpubench.hardware.device_roofs import device_roofs

    rows = []
    for dev, roof in device_roofs(doc).items():
        theory = (roof.get("theoretical") or {}).get("matmul_flops_per_s") or {}
        label = "ISA estimate" if "isa" in str((roof.get("theoretical") or {}).get("source", "")) else "spec sheet"
        for p, v in roof["matmul_flops_per_s"].items():
            extra = f"; {label} {fmt_si(theory[p], 'FLOP/s')}" if theory.get(p) else ""
            rows.append((dev, "matmul", p, _rate(v, "FLOP"), roof["matmul_source"][p] + extra))
        for p, v in roof["vector_flops_per_s"].items():
            rows.append((dev, "vector", p, _rate(v, "FLOP"), roof["vector_source"][p]))
        rows.append((dev, "memory", "", _rate(roof.get("memory_bytes_per_s"), "B"), roof.get("memory_source") or ""))
        if roof.get("cache_bytes"):
            rows.append((dev, "last-level cache", "", fmt_si(roof["cache_bytes"], "B"), ""))
        for w in roof.get("warnings") or []:
            rows.append((dev, "warning", "", "", w))
    return rows


def ceilings_rows(doc: dict) -> list[tuple[str, str, str, str, str]]:
    """(framework:device, ceiling, precision, value, detail) rows of each framework's entry."""
    rows = []
    for key, e in (doc.get("ceilings") or {}).items():
        threads = e.get("threads")
        for p, v in (e.get("matmul_flops_per_s") or {}).items():
            d = (e.get("matmul") or {}).get(p) or {}
            best = d.get("best_shape") or (f"N={d['best_n']}" if d.get("best_n") else "?")
            extra = f"best {best}" + (f", {threads} threads" if threads else "")
            if d.get("note"):
                extra += f"; {d['note']}"
            rows.append((key, "matmul", p, _rate(v, "FLOP"), extra))
        for p, why in (e.get("unsupported") or {}).items():
            rows.append((key, "matmul", p, "n/a", why))
        for p, v in (e.get("vector_flops_per_s") or {}).items():
            rows.append((key, "vector", p, _rate(v, "FLOP"), ((e.get("vector") or {}).get(p) or {}).get("op", "")))
        for kind, label in BANDWIDTH_LABELS:
            if f"{kind}_bytes_per_s" not in e:
                continue  # older files have fewer kernels
            v = e.get(f"{kind}_bytes_per_s")
            d = (e.get("bandwidth") or {}).get(kind) or {}
            if v is None and kind in ("h2d", "d2h") and e.get("device") == "cpu":
                continue
            extra = (f"{d['array_bytes'] / MiB:.0f} MiB arrays" if d.get("array_bytes") else d.get("reason", ""))
            if v is not None and threads and e.get("device") == "cpu":
                extra += f", {threads} threads"
            rows.append((key, label, "", _rate(v, "B") if v is not None else "n/a", extra))
        if e.get("busy"):
            rows.append((key, "busy", "", "", e["busy"]))
    return rows


def _table(rows: list[tuple[str, ...]], title: str, first: str, detail: str) -> Any:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col, just in ((first, "left"), ("ceiling", "left"), ("precision", "left"),
                      ("measured", "right"), (detail, "left")):
        t.add_column(col, justify=just)
    for row in rows:
        t.add_row(*(escape(c) for c in row))
    return t


def print_ceilings(out: Any, doc: dict, title: str) -> None:
    out.print(_table(device_rows(doc), f"roofs per device: {title}", "device", "source"))
    out.print(_table(ceilings_rows(doc), f"each framework: {title}", "framework:device", "detail"))


# --------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", "-b", action="append", metavar="FRAMEWORK:DEVICE",
                        help="device to probe, e.g. torch:cpu, torch:cuda1, jax:tpu (repeatable; "
                             "default: every device available here). Precisions are swept inside.")
    parser.add_argument("--size", default="default", choices=SIZES,
                        help="smoke (seconds) | default (under a minute per framework on a CPU) | large")
    parser.add_argument("--refresh", action="store_true",
                        help="measure again even when ceilings for this machine are cached")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for the frameworks")
    parser.add_argument("--out", default="results", metavar="DIR",
                        help="results root; ceilings go to DIR/<machine_id>/ceilings.json (default: results)")
    parser.add_argument("--machine-id", metavar="ID", help="name of this machine (default: from hardware)")
    from xpubench.hardware.collectives import add_arguments as add_collective_arguments

    add_collective_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from xpubench import __version__
    from xpubench.cli.console import stdout_console
    from xpubench.hardware import ceilings as cl
    from xpubench.hardware.fingerprint import fingerprint

    out = stdout_console()
    try:
        machine = fingerprint(args.machine_id)
    except ValueError as e:
        raise UserError(str(e)) from None
    if getattr(args, "collectives", False):  # bus bandwidth across ranks, not the ceilings
        from xpubench.hardware.collectives import run_collectives

        return run_collectives(args, machine["machine_id"])
    targets = [probe.parse_target(t) for t in args.backend] if args.backend else probe.default_targets()
    targets = list(dict.fromkeys(targets))
    if not targets:
        raise UserError("nothing to probe: install torch or jax (see README)")
    mid = machine["machine_id"]
    path = cl.ceilings_path(args.out, mid)
    try:
        cached = cl.load_ceilings(args.out, mid)
    except cl.CeilingsFileError:
        if not args.refresh:
            raise
        cached = None
    have = (cached or {}).get("ceilings") or {}
    # an entry probed on a busy machine is no cache: its roofs are low
    todo = targets if args.refresh else [t for t in targets if t not in have or have[t].get("busy")]
    if not todo:
        out.print(f"cached ceilings for {mid} ({path}); `xpubench probe --refresh` measures again")
        shown = {**cached, "ceilings": {k: v for k, v in have.items() if k in targets}}
        print_ceilings(out, shown, f"{mid}, measured {cached.get('measured_at')}")
        sizes = {e.get("size") for e in shown["ceilings"].values()}
        if sizes - {args.size}:
            out.print(f"note: cached at size {', '.join(sorted(map(str, sizes)))}; "
                      f"--refresh --size {args.size} to re-measure")
        return 0
    entries: dict[str, dict] = {}
    failed: list[str] = []
    for t in todo:
        why = " (cached entry was probed on a busy machine)" if have.get(t, {}).get("busy") and not args.refresh else ""
        out.print(f"probing {t} (size {args.size}){why} ...")
        try:
            entries[t] = probe.probe_in_subprocess(t, args.size, args.threads)
        except UserError as e:
            failed.append(t)
            out.print(f"[red]{escape(str(e))}[/]")
    if entries:
        doc = cl.merge(cached, machine, entries, __version__)
        cl.save_ceilings(args.out, doc)
        shown = {**doc, "ceilings": {k: v for k, v in doc["ceilings"].items() if k in targets}}
        print_ceilings(out, shown, mid)
        busy = [f"{k} ({e['busy']})" for k, e in entries.items() if e.get("busy")]
        if busy:
            out.print(f"warning: the machine was busy while probing {'; '.join(busy)}: those ceilings may be low; "
                      "they are marked busy and measured again by the next `xpubench probe`")
        out.print(f"ceilings: {path}")
    # one framework's failed probe must not stop a first run: the others' roofs stand
    return 1 if failed and not entries else 0

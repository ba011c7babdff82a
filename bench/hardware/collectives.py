"""`xpubench probe --collectives`: all-reduce and all-gather bus bandwidth by message size, as nccl-tests report it.

The ranks run under torch's elastic launcher (gloo on CPU, nccl on CUDA); each message
size is timed over a few calls after a warm-up, the slowest rank's time counts. Bus
bandwidth (nccl-tests' ``busbw``) makes sizes and world sizes comparable with the link's
own speed: algbw = bytes / time; all-reduce busbw = algbw x 2(n-1)/n; all-gather
busbw = algbw x (n-1)/n, with bytes the gathered (output) size. The curve is saved to
``results/<machine_id>/collectives.json``: the communication roof of a distributed step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xpubench.errors import UserError

OPS = ("all_reduce", "all_gather")
SIZES_BY_PROFILE = {  # message bytes, fp32
    "smoke": [2 ** k for k in range(10, 21, 2)],  # 1 KiB .. 1 MiB
    "default": [2 ** k for k in range(10, 27, 2)],  # 1 KiB .. 64 MiB
    "large": [2 ** k for k in range(10, 31, 2)],  # 1 KiB .. 1 GiB
}
COLLECTIVES_FILE = "collectives.json"


def bus_factor(op: str, world: int) -> float:
    """nccl-tests' factor from algorithm to bus bandwidth."""
    if world <= 1:
        return 0.0
    return 2 * (world - 1) / world if op == "all_reduce" else (world - 1) / world


def bus_bandwidth(op: str, nbytes: int, seconds: float, world: int) -> dict[str, float]:
    algbw = nbytes / seconds if seconds > 0 else float("nan")
    return {"bytes": nbytes, "time_s": seconds, "algbw_bytes_per_s": algbw,
            "busbw_bytes_per_s": algbw * bus_factor(op, world)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The probe's collective flags (added to `xpubench probe`)."""
    parser.add_argument("--collectives", action="store_true",
                        help="measure all-reduce/all-gather bus bandwidth by message size across ranks "
                             "(torch.distributed: gloo on CPU, nccl on CUDA) instead of the ceilings")
    parser.add_argument("--world-size", default="2", metavar="W[,W...]",
                        help="with --collectives: ranks to measure at (default 2)")


def _world_sizes(text: str) -> list[int]:
    from xpubench.options import world_sizes

    try:
        return [w for w in world_sizes(text) if w > 1]
    except argparse.ArgumentTypeError as e:
        raise UserError(str(e)) from None


def sweep(device: str, world: int, sizes: list[int], timeout_s: float = 600.0) -> dict[str, Any]:
    """Launch ``world`` ranks that time every op at every size; busbw rows per op."""
    from xpubench.run.distributed import _kill_ranks, _stop
    from xpubench.run.rank import PID_DIR

    with tempfile.TemporaryDirectory(prefix="xpubench-coll-") as tmp:
        out = Path(tmp)
        (out / PID_DIR).mkdir()
        job = out / "job.json"
        job.write_text(json.dumps({"device": device, "sizes": sizes, "ops": list(OPS), "out_dir": tmp}))
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // world))}
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(world),
                "--max-restarts", "0", "-m", "xpubench.hardware.collectives", str(job)]
        with open(out / "log.txt", "w") as log:
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code = proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                if proc.poll() is None:
                    _stop(proc)
                _kill_ranks(out / PID_DIR)
        result = out / "result.json"
        if code != 0 or not result.exists():
            tail = (out / "log.txt").read_text(errors="replace").strip().splitlines()[-3:]
            raise UserError(f"collectives at world size {world} failed ({'timeout' if code is None else code}): "
                            + " | ".join(tail)[-300:])
        times = json.loads(result.read_text())
    return {"world_size": world, "device": device, "process_group": times["process_group"],
            "ops": {op: [bus_bandwidth(op, n, t, world) for n, t in zip(sizes, times["seconds"][op])]
                    for op in OPS}}


def table(entry: dict[str, Any]):
    from rich.table import Table

    from xpubench.fmt import fmt_si

    t = Table(title=f"{entry['device']} x {entry['world_size']} ranks ({entry['process_group']}): bus bandwidth")
    t.add_column("bytes", justify="right")
    for op in OPS:
        t.add_column(f"{op} time", justify="right")
        t.add_column(f"{op} busbw", justify="right")
    for i, row in enumerate(entry["ops"][OPS[0]]):
        cells = [fmt_si(row["bytes"], "B")]
        for op in OPS:
            r = entry["ops"][op][i]
            cells += [f"{r['time_s'] * 1e6:.1f} us", fmt_si(r["busbw_bytes_per_s"], "B/s")]
        t.add_row(*cells)
    return t


def run_collectives(args: argparse.Namespace, machine_id: str) -> int:
    """The `--collectives` path of `xpubench probe`: sweep, print, save next to the ceilings."""
    from xpubench.cli.console import stdout_console

    out = stdout_console()
    targets = args.backend or ["torch:cpu"]
    devices = sorted({t.split(":")[1].rstrip("0123456789") for t in targets if t.startswith("torch:")})
    if not devices:
        raise UserError("--collectives runs on torch.distributed: give -b torch:cpu or -b torch:cuda")
    entries = []
    for device in devices:
        for world in _world_sizes(args.world_size):
            out.print(f"collectives on {device} x {world} (size {args.size}) ...")
            entries.append(sweep(device, world, SIZES_BY_PROFILE[args.size]))
            out.print(table(entries[-1]))
    path = Path(args.out) / machine_id / COLLECTIVES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine_id": machine_id, "size": args.size,
                                "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                "collectives": entries}, indent=1))
    out.print(f"collectives: {path}")
    return 0


def main(argv: list[str]) -> int:
    """A rank of the sweep (under torch.distributed.run)."""
    from xpubench.suites.distributed import collective_seconds

    job = json.loads(Path(argv[0]).read_text())
    out = Path(job["out_dir"])
    rank = int(os.environ.get("RANK", "0"))
    (out / "pids" / f"{rank}.pid").write_text(str(os.getpid()))
    result = collective_seconds(job["device"], job["sizes"], job["ops"])
    if result is not None:
        (out / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

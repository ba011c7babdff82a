"""Launching a distributed case: its ranks as one process group, with a deadline, one record back.

The worker that owns the backend does not run a distributed case itself: it starts the
ranks through torch's elastic launcher (``python -m torch.distributed.run``: single
node ``--standalone``; several nodes ``--nnodes/--node-rank`` and a static rendezvous at
``--rdzv-endpoint``, as torchrun users launch training on Slurm or Kubernetes), or, for
JAX over one host's devices, one process alone. Each rank is ``xpubench.run.rank``.

Failures: a rank that raises writes its status; a rank that is killed is named by the
launcher's summary; a run past the deadline is stopped (launcher first, then every rank
by the pid it left). Either way every process of the case is gone before the next case.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xpubench.measure.record import case_record
from xpubench.run.rank import PID_DIR, RESULT_FILE
from xpubench.spec.registry import DATA_PARALLEL_MODE

if TYPE_CHECKING:
    from xpubench.backends.base import Backend
    from xpubench.options import RunOptions
    from xpubench.spec.registry import Case

LAUNCH_SHARE_OF_CASE_TIMEOUT = 0.8  # the worker's own deadline must not fire first
# torchrun's failure summary, one entry per failed rank: "rank : 1 (local_rank: 1)\n  exitcode : -9 (pid: 123)"
_RANK_EXIT = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank[^)]*\)\s*exitcode\s*:\s*(-?\d+)")
JAX_COORDINATOR_ENV = "XPUBENCH_JAX_COORDINATOR"
SIMULATED_DEVICES_ENV = "XPUBENCH_SIMULATED_DEVICES"


def expand_world_sizes(cases: list["Case"], opts: "RunOptions") -> list["Case"]:
    """Each distributed case once per world size of the run (and its scaling), world size 1 first."""
    from xpubench.spec.registry import Case

    out: list[Case] = []
    for c in cases:
        if c.mode != DATA_PARALLEL_MODE:
            out.append(c)
            continue
        out += [Case(c.workload, c.size, c.mode, {**c.params, "world_size": w, "scaling": opts.scaling})
                for w in sorted(set(opts.world_sizes))]
    return out


def _suite_skip_reason(case: "Case", framework: str) -> str | None:
    """The suite's own word on a launch this framework does not offer, said before any process starts."""
    import importlib

    hook = getattr(importlib.import_module(case.workload.module), "launch_skip_reason", None)
    return hook(framework, dict(case.params)) if hook else None


@dataclass
class Launch:
    """The command and environment of one case's ranks."""

    argv: list[str]
    env: dict[str, str]
    nnodes: int
    simulated_devices: bool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(job_path: Path, spec_device: str, params: dict[str, Any], opts: "RunOptions") -> Launch:
    """``torch.distributed.run`` for one process per device; one process for JAX over local devices."""
    world = int(params["world_size"])
    env = dict(os.environ)
    nnodes = max(1, opts.nnodes)
    # Every rank the same cores at every world size of the run (the node's cores over the
    # most ranks it hosts), so weak scaling adds devices of one size; --threads sets it.
    most = 1 if params.get("launch") == "devices" else max(1, max(opts.world_sizes, default=world) // nnodes)
    env["OMP_NUM_THREADS"] = str(opts.threads or max(1, (os.cpu_count() or 1) // most))
    rank_cmd = ["-m", "xpubench.run.rank", str(job_path)]
    if params.get("launch") == "devices":
        simulated = spec_device == "cpu"
        if simulated:  # several CPU "devices" in one process: XLA's test flag, labelled in the record
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={world}").strip()
            env[SIMULATED_DEVICES_ENV] = "1"
        env.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
        return Launch([sys.executable] + rank_cmd, env, 1, simulated)
    if world % nnodes:
        raise ValueError(f"world size {world} does not split over {nnodes} nodes")
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world // nnodes),
            "--max-restarts", "0"]
    if nnodes == 1:
        argv += ["--standalone"]
        coordinator = f"127.0.0.1:{_free_port()}"
    else:
        if not opts.rdzv_endpoint:
            raise ValueError("--nnodes above 1 needs --rdzv-endpoint HOST:PORT (and --node-rank)")
        host, port = opts.rdzv_endpoint.rsplit(":", 1)
        argv += ["--nnodes", str(nnodes), "--node-rank", str(opts.node_rank), "--rdzv-backend", "static",
                 "--rdzv-endpoint", opts.rdzv_endpoint]
        coordinator = f"{host}:{int(port) + 1}"  # JAX's coordinator beside torch's store
    env[JAX_COORDINATOR_ENV] = coordinator
    return Launch(argv + rank_cmd, env, nnodes, False)


def _kill_ranks(pid_dir: Path) -> list[int]:
    """SIGKILL every rank that is still alive (each started its own session); the pids killed."""
    killed = []
    for f in pid_dir.glob("*.pid"):
        try:
            pid = int(f.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (ValueError, ProcessLookupError, PermissionError, OSError):
            pass
    return killed


def _stop(proc: subprocess.Popen) -> None:
    """The launcher first (it stops its ranks), then its whole process group."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


_PEER_FAILURE = ("timed out", "timeout", "connection closed", "connection reset", "broken pipe",
                 "distbackenderror", "distnetworkerror")


def _peer_failure(reason: str) -> bool:
    """A rank's error that says a peer went missing, not that this rank failed on its own."""
    text = reason.lower()
    return any(m in text for m in _PEER_FAILURE)


def _failed_rank(out_dir: Path, log: str, exit_code: int | None) -> tuple[str, str, int | None]:
    """(status, reason, rank) of a failed launch.

    A rank killed by a signal is the cause (its peers only saw their connections drop),
    named by the launcher's failure summary; otherwise the first rank that wrote its
    failure; otherwise the launcher's last words."""
    exits = [(int(r), int(c)) for r, c in _RANK_EXIT.findall(log)]
    killed = [(r, c) for r, c in exits if c < 0 and c != -signal.SIGTERM]  # SIGTERM: the launcher's own stop
    if killed:
        rank, code = killed[0]
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
        return "crashed", f"rank {rank} {how}", rank
    files = sorted(out_dir.glob("rank*.json"), key=lambda f: f.stat().st_mtime_ns)
    docs = [json.loads(f.read_text()) for f in files]
    started = {int(p.stem) for p in (out_dir / PID_DIR).glob("*.pid")}
    silent = sorted(started - {d["rank"] for d in docs})
    if docs and silent and all(_peer_failure(d["reason"]) for d in docs):
        # every rank that spoke only lost a peer: the one that said nothing hung
        return "timeout", (f"rank {silent[0]} hung: its peers' collectives failed waiting for it "
                           f"({docs[0]['reason'][:200]}); all ranks stopped"), silent[0]
    if docs:  # a rank that raised said so; the first to fail is the cause, the rest followed it
        return docs[0]["status"], docs[0]["reason"], docs[0].get("rank")
    if exits:
        rank, code = exits[0]
        return "crashed", f"rank {rank} exit code {code}", rank
    tail = " | ".join(log.strip().splitlines()[-3:])[-400:]
    return "crashed", f"launcher exit code {exit_code}: {tail}", None


def measure_distributed(backend: "Backend", case: "Case", options: "RunOptions", *,
                        check: bool = False) -> dict[str, Any]:
    """Run one distributed case at its world size; the record, or a failure record naming the rank."""
    if "world_size" not in case.params:  # selected without expand_world_sizes (e.g. pytest): the first size
        case = expand_world_sizes([case], replace(options, world_sizes=options.world_sizes[:1]))[0]
    rec = case_record(case, backend.spec)
    world = int(case.params["world_size"])
    rec.update(world_size=world, nnodes=max(1, options.nnodes), scaling=case.params.get("scaling", "weak"))
    reason = backend.skip_reason(case) or _suite_skip_reason(case, backend.spec.framework)
    if reason:
        rec.update(status="skipped", reason=reason)
        return rec
    with tempfile.TemporaryDirectory(prefix="xpubench-dist-") as tmp:
        out_dir = Path(tmp)
        (out_dir / PID_DIR).mkdir()
        job = out_dir / "job.json"
        job.write_text(json.dumps({"spec": str(backend.spec), "key": list(case.key), "params": dict(case.params),
                                   "options": replace(options, backends=(), suites=(), cases=()).to_dict(),
                                   "out_dir": str(out_dir), "check": check}))
        try:
            launch = launch_command(job, backend.spec.device, dict(case.params), options)
        except ValueError as e:
            rec.update(status="skipped", reason=str(e))
            return rec
        rec["nnodes"] = launch.nnodes
        log_path = out_dir / "launcher.log"
        deadline = options.case_timeout_s * LAUNCH_SHARE_OF_CASE_TIMEOUT
        t0 = time.monotonic()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(launch.argv, env=launch.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                code: int | None = proc.wait(deadline)
            except subprocess.TimeoutExpired:
                code = None
            except BaseException:
                _stop(proc)
                _kill_ranks(out_dir / PID_DIR)
                raise
            finally:
                if proc.poll() is None:
                    _stop(proc)
                stragglers = _kill_ranks(out_dir / PID_DIR)
        rec["launch"] = {"command": " ".join(launch.argv[1:]), "wall_s": time.monotonic() - t0,
                         "threads_per_rank": int(launch.env["OMP_NUM_THREADS"]),
                         "stragglers_killed": len(stragglers)}
        log_text = log_path.read_text(errors="replace")
        result_path = out_dir / RESULT_FILE
        if code is None:
            rec.update(status="timeout", reason=f"ranks gave no result within {deadline:g} s; all stopped")
        elif result_path.exists():
            rec.update(json.loads(result_path.read_text()))
            if launch.simulated_devices:
                rec["simulated_devices"] = True
        elif code == 0 and any(out_dir.glob("rank*.json")):
            doc = json.loads(sorted(out_dir.glob("rank*.json"))[0].read_text())
            rec.update(status=doc["status"], reason=doc["reason"])
        elif code == 0:
            # this node's ranks took part; rank 0 (node 0) holds the figures and writes them
            rec.update(status="skipped", reason="measured on node 0: its rank 0 writes the results")
        else:
            status, why, rank = _failed_rank(out_dir, log_text, code)
            rec.update(status=status, reason=why, failed_rank=rank)
            rec["launcher_log_tail"] = log_text[-4000:]
    return rec

"""One rank of a distributed case: join the ranks, build the step, measure in step with the others, write.

Started by ``xpubench.run.distributed`` (through torch's elastic launcher, or alone for
JAX over one host's devices) as ``python -m xpubench.run.rank JOB.json``. Every rank
measures; rank 0 gathers every rank's figures and writes ``result.json`` to the job's
folder. A rank that fails writes ``rank<N>.json`` with its status and exits non-zero
(the launcher then stops the others).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from xpubench.errors import SkipCase
from xpubench.measure import stats as st
from xpubench.measure.record import classify_exception, note_step, one_line
from xpubench.options import RunOptions

# Test-only fault injection: "RANK:raise|hang|kill" makes that rank fail after its build.
FAULT_ENV = "XPUBENCH_RANK_FAULT"
RESULT_FILE = "result.json"
PID_DIR = "pids"  # each rank's pid: the launcher stops it whatever happens to its parent


def rank_file(rank: int) -> str:
    return f"rank{rank}.json"


def _write(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)  # the launcher never reads half a file


def _inject_fault(rank: int) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if not spec or int(spec.split(":")[0]) != rank:
        return
    how = spec.split(":")[1]
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "hang":
        time.sleep(10 ** 6)
    raise RuntimeError(f"injected fault on rank {rank}")


def _median(xs: list[float]) -> float | None:
    return st.quantile(sorted(xs), 0.5) if xs else None


def measure_ranks(backend, step, units: float | None, world: int, opts: RunOptions,
                  check: bool) -> dict[str, Any] | None:
    """Time the step (and the step without exchange) in synchronised rounds; rank 0 gets the result."""
    from xpubench.backends.base import Step
    from xpubench.measure.ranks import measure_synced

    group = step.ranks
    cfg = opts.timing_config()
    full = measure_synced(group, lambda n: backend.time_block(step, n), cfg)
    local = None
    if step.run_local is not None:  # the comm-free twin gets half the budget: it only sizes a share
        twin = Step(run=step.run_local)
        local = measure_synced(group, lambda n: backend.time_block(twin, n),
                               replace(cfg, time_budget_s=cfg.time_budget_s / 2))
    mine = {"rank": group.rank, "host": socket.gethostname(), "pid": os.getpid(),
            "median_s": _median(full.own_samples),
            "local_median_s": _median(local.own_samples) if local else None}
    everyone = group.gather(mine)
    checked = step.check() if check and step.check is not None else None  # collective: every rank
    if group.rank != 0:
        return None
    t = full.timing
    med = t.stats.median
    out: dict[str, Any] = {
        "time_s": t.time_block(), "timing_method": f"{backend.timing_method}; slowest rank per round",
        "first_call_s": t.warmup.first_call_s, "warmup_s": t.warmup.warmup_s,
        "warmup_iterations": t.warmup.iterations, "warmup_settled": t.warmup.settled,
        "compile_s": step.compile_s,
        "throughput_per_s": units / med if units and med else None,
        "per_device_throughput_per_s": units / med / world if units and med else None,
        "ranks": everyone, **step.facts,
    }
    if local is not None:
        lmed = local.timing.stats.median
        out["communication"] = {"share": max(0.0, 1.0 - lmed / med) if med else None,
                                "step_without_exchange_s": lmed, "method": step.local_method}
    else:
        out["communication"] = {"share": None, "method": "not measured: this implementation has no step "
                                                          "without exchange"}
    if checked is not None:
        out["check"] = {k: v.tolist() for k, v in checked.items()}
    return out


def run_rank(job: dict[str, Any]) -> int:
    from xpubench.backends.base import BackendSpec, make_backend
    from xpubench.measure.case import set_up
    from xpubench.spec import registry as specmod

    rank = int(os.environ.get("RANK", "0"))
    out_dir = Path(job["out_dir"])
    opts = RunOptions.from_dict(job["options"])
    spec = BackendSpec.parse(job["spec"])
    (out_dir / PID_DIR / f"{rank}.pid").write_text(str(os.getpid()))
    case = specmod.find(tuple(job["key"]), job["params"])
    suite = importlib.import_module(case.workload.module)
    try:
        # joins the ranks; names this process's device where it is not the spec's
        index = suite.prepare_process(spec.framework, spec.device, case.params, opts.case_timeout_s)
        if index is not None:
            spec = replace(spec, index=index)
        backend = make_backend(spec)
        set_up(backend, opts)
        backend.activate()
        step = backend.build(case, options=opts)
        _inject_fault(rank)
        rec: dict[str, Any] = {"flops_per_step": case.work.flops}
        note_step(rec, step)
        result = measure_ranks(backend, step, case.work.units, int(case.params["world_size"]), opts,
                               job.get("check", False))
        if result is not None:
            result.update(rec)
            _write(out_dir / RESULT_FILE, result)
        return 0
    except SkipCase as e:
        _write(out_dir / rank_file(rank), {"rank": rank, "status": "skipped", "reason": str(e)})
        return 0
    except BaseException as e:  # the status and the rank, for the launcher's record
        _write(out_dir / rank_file(rank), {"rank": rank, "status": classify_exception(e),
                                           "reason": f"rank {rank}: {one_line(e)}",
                                           "traceback": "".join(traceback.format_exception(e))[-8000:]})
        return 1
    finally:
        suite.finish_process(spec.framework)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    job = json.loads(Path(args[0]).read_text())
    return run_rank(job)


if __name__ == "__main__":
    sys.exit(main())

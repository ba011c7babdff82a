"""Confirmation reruns (``xpubench compare --confirm``): re-measure each suspected change before calling it one.

As ``asv continuous`` does: each suspect case x backend is measured again in fresh
worker processes, BASE and NEW alternating (A B or B A per pass, from a recorded
seed), K passes, each side with its own recorded run options (size, threads,
budgets, injection); then the process-level test decides (xpubench.regress.levels).

Re-measuring BASE needs BASE's code: when BASE was measured at another commit (or
xpubench version) than this checkout, BASE keeps its recorded figures and only NEW
is re-measured (the single BASE process is then tested against NEW's K processes'
spread). Cost: 2K fresh processes per suspect (K when only NEW is re-measured),
each a worker start (framework import, seconds) plus warm-up and the timed budget;
the note under the table gives the seconds spent.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from xpubench.regress import compare as C
from xpubench.results.run_view import Run
from xpubench.results.view import Measurement

SUSPECT_VERDICTS = (C.REGRESSION, C.IMPROVEMENT, C.UNSUPPORTED)
DEFAULT_PROCESSES = 3

Measure = Callable[[dict[str, Any], str, dict[str, Any]], dict[str, Any]]  # (record, backend, options) -> record


@dataclass
class Confirmation:
    """What the confirmation did: suspects re-measured, processes started, seconds spent."""

    suspects: int = 0
    processes: int = 0
    seconds: float = 0.0
    base_remeasured: bool = True
    seed: int = 0

    def note(self) -> str:
        if not self.suspects:
            return "confirmation: no suspected change to re-measure"
        side = "BASE and NEW alternating" if self.base_remeasured else "NEW only (BASE is another build)"
        return (f"confirmation: {self.suspects} suspect(s) re-measured in {self.processes} fresh processes "
                f"({side}, seed {self.seed}) in {self.seconds:.0f} s, "
                f"about {self.seconds / self.suspects:.0f} s per suspect")


def same_build(run: Run) -> bool:
    """Whether ``run`` was measured with this checkout's code (commit and version), so it can be re-measured."""
    from xpubench import __version__
    from xpubench.hardware.fingerprint import git_info

    here = git_info() or {}
    if run.meta.get("xpubench_version") not in (None, __version__):
        return False
    return bool(here.get("commit")) and run.commit == here.get("commit")


def measure_in_fresh_process(record: dict[str, Any], backend: str, options: dict[str, Any]) -> dict[str, Any]:
    """One case x backend measured by a fresh worker process, with the given run options."""
    from xpubench.backends.base import BackendSpec
    from xpubench.options import RunOptions
    from xpubench.run.supervisor import Runner
    from xpubench.spec import registry as specmod

    opts = RunOptions.from_dict({**options, "repeat": 1, "backends": [backend]})
    case = specmod.find((record["suite"], record["name"], record["mode"], record.get("size") or opts.size),
                        record.get("params"))
    (rec,) = Runner([BackendSpec.parse(backend)], [case], None, opts).run().records
    return rec


def _side_options(run: Run) -> dict[str, Any]:
    opts = dict(run.meta.get("options") or {})
    # meters cost time and change no step time; the figures compared are times
    opts.update(telemetry=False, accuracy=False)
    return opts


def confirm(comparisons: list[C.Comparison], base_runs: list[Run], new_runs: list[Run], *,
            processes: int = DEFAULT_PROCESSES, threshold: float = C.DEFAULT_THRESHOLD,
            alpha: float = C.DEFAULT_ALPHA, rule: str = C.DEFAULT_RULE, seed: int | None = None,
            base_is_this_build: bool | None = None, measure: Measure = measure_in_fresh_process,
            clock: Callable[[], float] = time.monotonic) -> tuple[list[C.Comparison], Confirmation]:
    """The comparisons with each suspect's verdict replaced by the confirmation's (process level).

    ``base_is_this_build``: None = BASE is re-measured when its recorded commit is this
    checkout's; True/False = the caller knows (``compare --confirm --base-is-this-build``).
    """
    from xpubench.run.merge import merge_processes
    from xpubench.run.schedule import new_seed

    seed = new_seed() if seed is None else seed
    base_latest, new_latest = C.newest_runs(base_runs), C.newest_runs(new_runs)
    base_m, new_m = C.latest_measurements(base_runs), C.latest_measurements(new_runs)
    info = Confirmation(seed=seed)
    start = clock()
    out = []
    for c in comparisons:
        if c.verdict not in SUSPECT_VERDICTS or c.machine_id not in base_latest or c.machine_id not in new_latest:
            out.append(c)
            continue
        info.suspects += 1
        brun, nrun = base_latest[c.machine_id], new_latest[c.machine_id]
        both = same_build(brun) if base_is_this_build is None else base_is_this_build
        info.base_remeasured = info.base_remeasured and both
        sides = {"base": (base_m[c.key], _side_options(brun)), "new": (new_m[c.key], _side_options(nrun))}
        got: dict[str, list[dict]] = {"base": [], "new": []}
        rng = random.Random(f"{seed}:{c.key}")
        for k in range(processes):
            order = ["base", "new"] if both else ["new"]
            rng.shuffle(order)
            for side in order:
                m, opts = sides[side]
                rec = measure(dict(m.raw), c.backend, opts)
                rec["pass"] = k
                got[side].append(rec)
                info.processes += 1
        new_rec = merge_processes(got["new"])
        base_rec = merge_processes(got["base"]) if both else dict(base_m[c.key].raw)
        d = C.judge(base_rec, new_rec, threshold=c.threshold, alpha=alpha, rule=rule)
        how = f"{processes}+{processes}" if both else f"0+{processes}"
        note = f"confirmed by {how} interleaved fresh processes (was {c.verdict} {C.fmt_change(c.ratio) if c.ratio else ''})"
        out.append(replace(c, verdict=d.verdict, ratio=d.ratio, ratio_ci=d.ratio_ci, p_value=d.p_value,
                           method="confirmed", note=f"{note}; {d.note}" if d.note else note,
                           base_median=Measurement.of(base_rec).median, new_median=Measurement.of(new_rec).median))
    info.seconds = clock() - start
    return out, info

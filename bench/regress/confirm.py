"""Confirmation reruns (``xpubench compare --confirm``): re-measure each suspected change before calling it one.

As ``asv continuous`` does: each suspect case x backend (a change found, or none
found where the test could not have seen one) is measured again in fresh worker
processes, K passes, each side with its own recorded run options (size, threads,
injection) and the confirmation's time budget; then the process-level test decides
(xpubench.regress.levels).

**Pairs taking turns.** Where BASE can be re-measured here, each pass starts one
fresh worker per side and backend, and the two take turns (xpubench.run.paired):
for each suspect, BASE's set-up, NEW's set-up, then their timed rounds alternating
(which side goes first is drawn per pass from a recorded seed). On a shared VM the
speed of a step moves from second to second; measured one after the other, BASE's
and NEW's processes each caught their own seconds, and a memory-bound case's process
medians spread 10-30%. Taking turns, both sides' rounds come from the same seconds,
and the test is on each pair's ratio (``paired-processes``): in A/A pairs of torch
LayerNorm forward+backward the ratio spread about 3%, against 12-25% between
separate processes (docs/verdicts.md).

Re-measuring BASE needs BASE's code: when BASE was measured at another commit (or
xpubench version) than this checkout, BASE keeps its recorded figures and only NEW
is re-measured (the single BASE process is then tested against NEW's K processes'
spread). Cost: per pass, one fresh worker per backend and side (a framework import,
seconds; a pair's two start together) that measures all of that backend's suspects
(each its build, warm-up and time budget). The note under the table gives the
seconds spent.

**More processes where they can decide.** On a 2-core VM some memory-bound cases
keep a level of their own per process even taking turns (the log ratio within a pair
of torch LayerNorm forward spread 0.03-0.15), so 5 pairs cannot always resolve a 20%
change (20-25 pairs did). Paying that for every suspect would cost minutes per case;
so after the K passes, only the suspects whose estimate lies beyond the threshold but
whose test did not decide (``unresolved`` or ``insignificant``) get more passes, one
at a time up to ``max_processes`` per side, while the escalation has spent less than
``escalate_s`` (default: as long as the first K passes took); every K passes, one
whose estimate came back inside the threshold stops (its passes go to the others).
Each extra pass measures only the ``focus`` strongest of them (smallest p-value):
an A/A compare of 32 cases leaves 14-22 noisy suspects undecided, and measuring them
all spread the cap so thin that a real 20% change reached only 12-16 processes. A
suspect is judged at two looks, after the K passes and after its last, so each look
tests at alpha / 2: the false-alarm rate stays within alpha per case (stopping for
futility only removes alarms).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from xpubench.regress import compare as C
from xpubench.results.run_view import Run
from xpubench.results.view import Measurement

# a found change, one that one process cannot support, and no change where the test was too weak to see one
SUSPECT_VERDICTS = (C.REGRESSION, C.IMPROVEMENT, C.UNSUPPORTED, C.UNRESOLVED)
# On a 2-core VM a fresh process of a memory-bound case differs from the next by 10-30%
# while its own rounds agree within a few percent: the same seconds buy more power as
# more processes with fewer rounds each (5 + 5 processes resolve about 40% less than
# 3 + 3 at the same cost; docs/verdicts.md).
DEFAULT_PROCESSES = 5
DEFAULT_BUDGET_S = 0.25  # timed rounds per suspect and process
# where 5 + 5 did not decide: up to 25 per side (a 20% change at a 15% spread between processes)
DEFAULT_MAX_PROCESSES = 25
ESCALATE = (C.UNRESOLVED, C.INSIGNIFICANT)  # no decision yet, though the estimate may be beyond the threshold
# suspects per extra pass: a pass costs a worker start per backend and side (about 2.5 s
# each) plus about 1.5 s per suspect, so four fit about 15 passes in a 4-minute cap
DEFAULT_FOCUS = 4

# (suspects as (record, backend) pairs, one side's run options) -> their records, in order
Measure = Callable[[list[tuple[dict[str, Any], str]], dict[str, Any]], list[dict[str, Any]]]
# (suspects, BASE's options, NEW's options, the side that leads, the pair's id)
#   -> (BASE's records, NEW's records), each in order: both sides measured taking turns
MeasurePair = Callable[[list[tuple[dict[str, Any], str]], dict[str, Any], dict[str, Any], str, str],
                       tuple[list[dict[str, Any]], list[dict[str, Any]]]]


@dataclass
class Confirmation:
    """What the confirmation did: suspects re-measured, processes started, seconds spent."""

    suspects: int = 0
    processes: int = 0
    seconds: float = 0.0
    base_remeasured: bool = True
    paired: bool = False  # BASE and NEW measured taking turns (xpubench.run.paired)
    seed: int = 0
    budget_s: float = DEFAULT_BUDGET_S
    escalated: int = 0  # suspects given more passes
    passes: int = 0  # the most passes any suspect got
    escalate_s: float = 0.0  # seconds the extra passes took
    capped: bool = False  # the escalation stopped at its time cap
    stopped_by: str = ""  # what ended the extra passes, in words
    # what was measured, as run documents (one per side and machine): each suspect's record
    # with every process's median (``time_s.processes``), for ``compare --confirm-out``
    runs: dict[tuple[str, str], dict] = field(default_factory=dict)

    def note(self) -> str:
        if not self.suspects:
            return "confirmation: no suspected change to re-measure"
        side = ("BASE and NEW in pairs of workers taking turns round by round" if self.paired
                else "BASE and NEW alternating" if self.base_remeasured else "NEW only (BASE is another build)")
        more = ""
        if self.escalated:
            more = (f"; {self.escalated} undecided suspect(s) got up to {self.passes} passes "
                    f"({self.escalate_s:.0f} s of it, stopped by {self.stopped_by})")
        return (f"confirmation: {self.suspects} suspect(s) re-measured in {self.processes} fresh worker processes "
                f"({side}, {self.budget_s:g} s of rounds each, seed {self.seed}) in {self.seconds:.0f} s, "
                f"about {self.seconds / self.suspects:.0f} s per suspect{more}")


def same_build(run: Run) -> bool:
    """Whether ``run`` was measured with this checkout's code (commit and version), so it can be re-measured."""
    from xpubench import __version__
    from xpubench.hardware.fingerprint import git_info

    here = git_info() or {}
    if run.meta.get("xpubench_version") not in (None, __version__):
        return False
    return bool(here.get("commit")) and run.commit == here.get("commit")


def measured_here(run: Run) -> bool:
    """Whether ``run`` was measured on this host (its hostname and CPU), whatever machine id it was given."""
    import socket

    from xpubench.hardware.cpu import cpu_info

    machine = run.machine or {}
    cpu = machine.get("cpu") or {}
    return (machine.get("hostname") == socket.gethostname()
            and cpu.get("model") == cpu_info().get("model")
            and cpu.get("logical_cores") == cpu_info().get("logical_cores"))


def measure_in_fresh_processes(items: list[tuple[dict[str, Any], str]], options: dict[str, Any]) -> list[dict]:
    """Each (record, backend) measured again with ``options``: one fresh worker per backend
    measures all of that backend's cases, in order."""
    from xpubench.backends.base import BackendSpec
    from xpubench.options import RunOptions
    from xpubench.run.supervisor import Runner
    from xpubench.spec import registry as specmod

    out: dict[int, dict] = {}
    for backend in dict.fromkeys(b for _, b in items):
        opts = RunOptions.from_dict({**options, "repeat": 1, "backends": [backend]})
        mine = [(i, rec) for i, (rec, b) in enumerate(items) if b == backend]
        cases = [specmod.find((rec["suite"], rec["name"], rec["mode"], rec.get("size") or opts.size), rec.get("params"))
                 for _, rec in mine]
        got = {(r["case"], r["mode"]): r for r in Runner([BackendSpec.parse(backend)], cases, None, opts).run().records}
        for (i, rec), case in zip(mine, cases):
            out[i] = got.get((case.case_id, case.mode)) or {**rec, "status": "error",
                                                             "reason": "not measured by the confirmation"}
    return [out[i] for i in range(len(items))]


def measure_pairs_in_fresh_processes(items: list[tuple[dict[str, Any], str]], base_options: dict[str, Any],
                                     new_options: dict[str, Any], lead: str,
                                     pair_id: str) -> tuple[list[dict], list[dict]]:
    """Each (record, backend) measured by two fresh workers per backend, BASE's and NEW's,
    their rounds taking turns (xpubench.run.paired), ``lead`` first."""
    from xpubench.backends.base import BackendSpec
    from xpubench.run.paired import measure_paired, paired_options
    from xpubench.spec import registry as specmod

    sides = paired_options(base_options, new_options)
    out: dict[str, dict[int, dict]] = {"base": {}, "new": {}}
    for backend in dict.fromkeys(b for _, b in items):
        mine = [(i, rec) for i, (rec, b) in enumerate(items) if b == backend]
        cases = [specmod.find((rec["suite"], rec["name"], rec["mode"], rec.get("size") or sides["new"].size),
                              rec.get("params")) for _, rec in mine]
        got = measure_paired(BackendSpec.parse(backend), cases, sides, lead, pair_id)
        for side in out:
            for (i, _), r in zip(mine, got[side]):
                out[side][i] = r
    return ([out["base"][i] for i in range(len(items))], [out["new"][i] for i in range(len(items))])


def confirmed_run(run: Run, side: str, records: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """A run document of the records the confirmation measured for ``side`` (base|new) of ``run``:
    ``run``'s machine and options, this checkout's commit, and where the records came from."""
    from xpubench.hardware.fingerprint import git_info
    from xpubench.results.writer import new_run_id, utc_now

    meta = {k: v for k, v in run.meta.items() if k not in ("twin_ratios", "schedule")}
    meta.update(id=new_run_id(), started_at=utc_now(), git=git_info() or {},
                command="xpubench compare --confirm",
                confirmation={"side": side, "of_run": run.id, "of_commit": run.commit, "seed": seed})
    doc = {k: v for k, v in run.data.items() if k not in ("measurements", "_path")}
    return {**doc, "run": meta, "measurements": records}


def _side_options(run: Run, budget_s: float) -> dict[str, Any]:
    opts = dict(run.meta.get("options") or {})
    # meters cost time and change no step time; the figures compared are times.
    # Both sides get the confirmation's budget: its seconds go to processes, not rounds.
    opts.update(telemetry=False, accuracy=False, time_budget_s=budget_s)
    return opts


def past(ratio: float | None, threshold: float) -> bool:
    """Whether a ratio NEW / BASE lies beyond the threshold, either way."""
    return bool(ratio) and abs(math.log(ratio)) > math.log1p(threshold)


def needs_more(d: C.Decision, threshold: float) -> bool:
    """A suspect worth more processes: undecided, with its estimate beyond the threshold."""
    return d.verdict in ESCALATE and past(d.ratio, threshold)


def beyond(sides: tuple[dict, dict], threshold: float) -> bool:
    """Whether the process-level estimate of NEW / BASE lies beyond the threshold."""
    base, new = (Measurement.of(r).median for r in sides)
    return bool(base and new) and past(new / base, threshold)


def confirm(comparisons: list[C.Comparison], base_runs: list[Run], new_runs: list[Run], *,
            processes: int = DEFAULT_PROCESSES, threshold: float = C.DEFAULT_THRESHOLD,
            alpha: float = C.DEFAULT_ALPHA, rule: str = C.DEFAULT_RULE, seed: int | None = None,
            budget_s: float = DEFAULT_BUDGET_S, max_processes: int = DEFAULT_MAX_PROCESSES,
            escalate_s: float | None = None, focus: int = DEFAULT_FOCUS,
            base_is_this_build: bool | None = None, measure: Measure = measure_in_fresh_processes,
            measure_pair: MeasurePair | None = measure_pairs_in_fresh_processes, clock: Callable[[], float] = time.monotonic) -> tuple[list[C.Comparison], Confirmation]:
    """The comparisons with each suspect's verdict replaced by the confirmation's (process level).

    K passes; in each, BASE's suspects and NEW's suspects are measured in fresh workers
    (one per backend and side), the two sides in an order shuffled per pass. Then the
    undecided suspects whose estimate is beyond the threshold get more passes (module
    docstring): up to ``max_processes`` per side, within ``escalate_s`` seconds (None: as
    long as the first passes took; ``max_processes <= processes``: no more passes), each
    pass measuring the ``focus`` strongest of them.
    ``base_is_this_build``: None = BASE is re-measured when its recorded commit is this
    checkout's; True/False = the caller knows (``compare --confirm --base-is-this-build``).
    """
    from xpubench.run.merge import merge_processes
    from xpubench.run.schedule import new_seed

    seed = new_seed() if seed is None else seed
    base_latest, new_latest = C.newest_runs(base_runs), C.newest_runs(new_runs)
    base_m, new_m = C.latest_measurements(base_runs), C.latest_measurements(new_runs)
    info = Confirmation(seed=seed, budget_s=budget_s)
    start = clock()
    suspects = [c for c in comparisons
                if c.verdict in SUSPECT_VERDICTS and c.machine_id in base_latest and c.machine_id in new_latest]
    info.suspects = len(suspects)
    # per machine: does BASE's code live here (else only NEW is re-measured)
    both = {mid: same_build(base_latest[mid]) if base_is_this_build is None else base_is_this_build
            for mid in {c.machine_id for c in suspects}}
    info.base_remeasured = all(both.values())
    info.paired = info.base_remeasured and measure_pair is not None
    got: dict[tuple[str, Any], list[dict]] = {}
    rng = random.Random(seed)

    def one_pass(k: int, group_of: list[C.Comparison]) -> None:
        sides = ["base", "new"]
        rng.shuffle(sides)
        if measure_pair is not None:
            paired = [c for c in group_of if both[c.machine_id]]
            for mid in dict.fromkeys(c.machine_id for c in paired):
                group = [c for c in paired if c.machine_id == mid]
                items = [(dict(new_m[c.key].raw), c.backend) for c in group]
                recs = measure_pair(items, _side_options(base_latest[mid], budget_s),
                                    _side_options(new_latest[mid], budget_s), sides[0], f"{seed}-{k}")
                info.processes += 2 * len({c.backend for c in group})
                for side, side_recs in zip(("base", "new"), recs):
                    for c, rec in zip(group, side_recs):
                        rec["pass"] = k
                        got.setdefault((side, c.key), []).append(rec)
            group_of = [c for c in group_of if not both[c.machine_id]]  # NEW alone: below
        for side in sides:
            mine = [c for c in group_of if side == "new" or both[c.machine_id]]
            # one measuring call per machine's run options (a side's options are one run's)
            for mid in dict.fromkeys(c.machine_id for c in mine):
                group = [c for c in mine if c.machine_id == mid]
                run, figures = (base_latest[mid], base_m) if side == "base" else (new_latest[mid], new_m)
                records = measure([(dict(figures[c.key].raw), c.backend) for c in group], _side_options(run, budget_s))
                info.processes += len({c.backend for c in group})
                for c, rec in zip(group, records):
                    rec["pass"] = k
                    got.setdefault((side, c.key), []).append(rec)

    def sides_of(c: C.Comparison) -> tuple[dict, dict]:
        new_rec = merge_processes(got[("new", c.key)])
        base_rec = merge_processes(got[("base", c.key)]) if both[c.machine_id] else dict(base_m[c.key].raw)
        return base_rec, new_rec

    escalating = max_processes > processes
    look_alpha = alpha / 2 if escalating else alpha  # two looks per suspect (module docstring)
    for k in range(processes if suspects else 0):
        one_pass(k, suspects)
    info.passes = processes if suspects else 0
    first_s = clock() - start
    cap = first_s if escalate_s is None else escalate_s

    def judged(c: C.Comparison) -> C.Decision:
        return C.judge(*sides_of(c), threshold=c.threshold, alpha=look_alpha, rule=rule)

    def strongest(cands: list[C.Comparison]) -> list[C.Comparison]:
        """The ``focus`` suspects nearest a decision: smallest p-value, then largest change."""
        def strength(c: C.Comparison) -> tuple[float, float]:
            d = judged(c)
            return (d.p_value if d.p_value is not None else 1.0, -abs(math.log(d.ratio)) if d.ratio else 0.0)
        return sorted(cands, key=strength)[:max(1, focus)]

    def processes_of(c: C.Comparison) -> int:
        return len(got[("new", c.key)])

    more = [c for c in suspects if escalating and needs_more(judged(c), c.threshold)]
    info.escalated = len(more)
    k, ended_by = processes, "the most processes"
    while more:
        t0 = clock()
        one_pass(k, strongest(more))
        k += 1
        spent, last = clock() - start - first_s, clock() - t0
        if k % processes == 0:
            # every K passes, a suspect whose estimate came back inside the threshold stops:
            # stopping for futility only ever removes alarms, so the alpha per look holds (one
            # that looks decided goes on: stopping there would add looks that can alarm)
            more = [c for c in more if beyond(sides_of(c), c.threshold)]
            if not more:
                ended_by = "every estimate coming back inside the threshold"
        more = [c for c in more if processes_of(c) < max_processes]
        if more and spent + last > cap:  # the next pass would end past the cap
            info.capped, ended_by = True, "its time cap"
            break
    if info.escalated:
        info.passes = max(processes_of(c) for c in suspects)
        info.escalate_s = clock() - start - first_s
        info.stopped_by = ended_by
    out = []
    chosen = {id(c) for c in suspects}
    for c in comparisons:
        if id(c) not in chosen:
            out.append(c)
            continue
        base_rec, new_rec = sides_of(c)
        d = C.judge(base_rec, new_rec, threshold=c.threshold, alpha=look_alpha, rule=rule)
        n_new = len(got[("new", c.key)])
        was = f"was {c.verdict} {C.fmt_change(c.ratio) if c.ratio else ''}".rstrip()
        if measure_pair is not None and both[c.machine_id]:
            note = f"confirmed by {n_new} pairs of fresh processes taking turns ({was})"
        else:
            how = f"{n_new}+{n_new}" if both[c.machine_id] else f"0+{n_new}"
            note = f"confirmed by {how} interleaved fresh processes ({was})"
        if escalating:
            note += f", tested at alpha {look_alpha:g} per look"
        out.append(replace(c, verdict=d.verdict, ratio=d.ratio, ratio_ci=d.ratio_ci, p_value=d.p_value,
                           method="confirmed", note=f"{note}; {d.note}" if d.note else note,
                           base_median=Measurement.of(base_rec).median, new_median=Measurement.of(new_rec).median))
    for side, latest in (("base", base_latest), ("new", new_latest)):
        measured = [c for c in suspects if (side, c.key) in got]  # BASE of another build was not
        for mid in dict.fromkeys(c.machine_id for c in measured):
            records = [merge_processes(got[(side, c.key)]) for c in measured if c.machine_id == mid]
            info.runs[(side, mid)] = confirmed_run(latest[mid], side, records, seed)
    info.seconds = clock() - start
    return out, info

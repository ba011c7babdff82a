"""Time to a target quality: the train-to-target loop, early stopping, and the summary over seeds.

A convergence builder returns a :class:`TrainToTarget` (in place of a ``Step``):
one call trains an epoch, another evaluates on held-out data, two more snapshot
and restore the weights. :func:`train_to_target` runs epochs until the target is
reached (the run stops there, as an MLPerf Training run does), until early stopping
sees a plateau, or until the budget of epochs or seconds is spent.
:func:`measure_convergence` is the one function the worker calls for such a case.

Clocks: ``time_to_target_s`` is training plus evaluation time up to the evaluation
that first met the target (MLPerf counts evaluation too); ahead-of-time compilation
happens in the builder and is reported apart as ``compile_s``; weight snapshots for
early stopping are harness work and are left out of every clock.

This module imports no framework: everything framework-specific is in the builders.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping

from xpubench.measure.stats import summarize

TO_TARGET_MODE = "train_to_target"
DECISIONS = ("target_reached", "plateau", "epoch_budget", "time_budget", "diverged")


@dataclass(frozen=True)
class EarlyStopping:
    """Keras' EarlyStopping rule: stop after ``patience`` evaluations without an
    improvement of more than ``min_delta``; restore the best weights."""

    patience: int = 3
    min_delta: float = 0.0
    restore_best_weights: bool = True


@dataclass(frozen=True)
class Budget:
    max_epochs: int
    max_seconds: float


@dataclass
class EpochResult:
    steps: int  # optimizer steps taken in this epoch
    train_loss: float | None = None  # mean training loss over the epoch (None: not tracked)


@dataclass
class TrainToTarget:
    """A train-to-target job, built for one backend and one seed.

    ``train_epoch(i)`` trains epoch ``i`` (1-based) and returns when its work is done
    (the builder waits on the device); ``evaluate()`` returns the held-out metric;
    ``get_state()`` returns a host copy of everything training changes, which
    ``set_state`` puts back. An "epoch" is one pass over the training set, or, for a
    corpus too large to pass over, the fixed number of steps between evaluations
    (``notes["epoch"]`` says which).
    """

    train_epoch: Callable[[int], EpochResult]
    evaluate: Callable[[], float]
    get_state: Callable[[], Any]
    set_state: Callable[[Any], None]
    metric: str  # "accuracy", "bits_per_byte", ...
    higher_is_better: bool
    target: float
    steps_per_epoch: int
    budget: Budget
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    compile_s: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    # Parity tests: the eval-mode loss of the current weights on the first training batch.
    check: Callable[[], dict[str, float]] | None = None


@dataclass
class CurvePoint:
    epoch: int
    steps: int  # cumulative optimizer steps
    time_s: float  # cumulative training + evaluation seconds
    train_s: float  # this epoch's training seconds
    metric: float
    train_loss: float | None


@dataclass
class ConvergenceResult:
    curve: list[CurvePoint]
    decision: str  # one of DECISIONS
    best_epoch: int | None
    best_metric: float | None
    target_epoch: int | None  # the first epoch whose evaluation met the target
    restored_epoch: int | None  # the epoch whose weights were restored, when they were
    restored_metric: float | None  # the metric re-evaluated after the restore
    train_s: float
    eval_s: float

    def point(self, epoch: int | None) -> CurvePoint | None:
        return self.curve[epoch - 1] if epoch else None


def _finite(x: float | None) -> bool:
    return x is None or math.isfinite(x)


def meets(metric: float, target: float, higher_is_better: bool) -> bool:
    return metric >= target if higher_is_better else metric <= target


def improves(metric: float, best: float | None, min_delta: float, higher_is_better: bool) -> bool:
    if best is None:
        return True
    return metric > best + min_delta if higher_is_better else metric < best - min_delta


def train_to_target(job: TrainToTarget, *, clock: Callable[[], float] = time.perf_counter,
                    on_epoch: Callable[[CurvePoint], None] | None = None) -> ConvergenceResult:
    """Run epochs until the target, a plateau, divergence or the budget; restore the best weights."""
    stop = job.early_stopping
    curve: list[CurvePoint] = []
    best: float | None = None  # the best figure seen (its weights are kept for the restore)
    reference: float | None = None  # the figure improvements are measured from (by min_delta)
    best_epoch = target_epoch = None
    best_state: Any = None
    since_best = 0
    train_s = eval_s = 0.0
    decision = "epoch_budget"
    for epoch in range(1, job.budget.max_epochs + 1):
        if train_s + eval_s >= job.budget.max_seconds:
            decision = "time_budget"
            break
        t0 = clock()
        done = job.train_epoch(epoch)
        t1 = clock()
        metric = float(job.evaluate())
        t2 = clock()
        train_s, eval_s = train_s + (t1 - t0), eval_s + (t2 - t1)
        point = CurvePoint(epoch, (curve[-1].steps if curve else 0) + done.steps, train_s + eval_s,
                           t1 - t0, metric, done.train_loss)
        curve.append(point)
        if on_epoch is not None:
            on_epoch(point)
        if not (math.isfinite(metric) and _finite(done.train_loss)):
            decision = "diverged"
            break
        improved = improves(metric, best, 0.0, job.higher_is_better)
        if improved:
            best, best_epoch = metric, epoch
        if meets(metric, job.target, job.higher_is_better):  # the run ends here, on these weights
            target_epoch, decision = epoch, "target_reached"
            break
        if improved and stop.restore_best_weights:
            best_state = job.get_state()
        # Patience counts evaluations since the last improvement by more than min_delta (Keras' rule).
        if improves(metric, reference, stop.min_delta, job.higher_is_better):
            reference, since_best = metric, 0
        else:
            since_best += 1
        if since_best >= stop.patience:
            decision = "plateau"
            break
    restored_epoch = restored_metric = None
    if (stop.restore_best_weights and target_epoch is None and best_state is not None
            and best_epoch != len(curve)):
        job.set_state(best_state)
        restored_epoch, restored_metric = best_epoch, float(job.evaluate())
    return ConvergenceResult(curve, decision, best_epoch, best, target_epoch, restored_epoch,
                             restored_metric, train_s, eval_s)


def step_time_block(curve: Iterable[CurvePoint]) -> dict[str, Any] | None:
    """``time_s`` of the results contract from the epochs: seconds per step, one sample per epoch."""
    samples = [p.train_s / s for p, s in _epoch_steps(curve) if s > 0]
    if not samples:
        return None
    return summarize(samples).to_dict() | {
        "iterations_per_round": None, "stop_reason": "train_to_target", "samples": samples,
        "method": "training seconds of each epoch / its steps (waited on by the builder)"}


def _epoch_steps(curve: Iterable[CurvePoint]) -> Iterable[tuple[CurvePoint, int]]:
    prev = 0
    for p in curve:
        yield p, p.steps - prev
        prev = p.steps


def result_fields(job: TrainToTarget, res: ConvergenceResult, seed: int) -> dict[str, Any]:
    """The record fields of one train-to-target run (status ``ok`` only when the target was met)."""
    hit = res.point(res.target_epoch)
    last = res.curve[-1] if res.curve else None
    out: dict[str, Any] = {
        "status": "ok", "reason": None, "seed": seed,
        "metric_name": job.metric, "higher_is_better": job.higher_is_better, "target": job.target,
        "time_to_target_s": hit.time_s if hit else None,
        "steps_to_target": hit.steps if hit else None,
        "epochs_to_target": hit.epoch if hit else None,
        "best_metric": res.best_metric, "best_epoch": res.best_epoch,
        "final_metric": last.metric if last else None,
        "restored_metric": res.restored_metric,
        "epochs": len(res.curve), "steps": last.steps if last else 0,
        "steps_per_epoch": job.steps_per_epoch,
        "train_s": res.train_s, "eval_s": res.eval_s, "compile_s": job.compile_s,
        "curve": [asdict(p) for p in res.curve],
        "early_stopping": {**asdict(job.early_stopping), "decision": res.decision,
                           "stopped_epoch": len(res.curve), "restored_epoch": res.restored_epoch},
        "budget": asdict(job.budget),
        "time_s": step_time_block(res.curve),
    }
    if res.decision == "diverged":
        out.update(status="diverged", reason=f"{job.metric} or training loss became NaN or Inf "
                                             f"at epoch {len(res.curve)}")
    elif hit is None:
        best = "none" if res.best_metric is None else f"{res.best_metric:.4g} at epoch {res.best_epoch}"
        out.update(status="not_converged",
                   reason=f"{job.metric} target {job.target:g} not reached ({res.decision.replace('_', ' ')} "
                          f"after {len(res.curve)} epochs, {res.train_s + res.eval_s:.1f} s); best {best}")
    return out


def measure_convergence(backend, case, *, seed: int = 0, target: float | None = None,
                        max_epochs: int | None = None, max_seconds: float | None = None,
                        on_epoch: Callable[[CurvePoint], None] | None = None) -> dict[str, Any]:
    """Train ``case`` to its target on ``backend`` (set up by the caller) from ``seed``.

    Returns the record fields to merge into the worker's base record: the status
    (``ok``, ``not_converged``, ``diverged``, or ``skipped`` with the reason), the
    time, steps and epochs to target, the curve, the early-stopping decision, the
    per-step ``time_s`` block, ``throughput_per_s`` and the builder's notes.
    ``target``, ``max_epochs`` and ``max_seconds`` override the case's own.
    """
    from xpubench.errors import SkipCase
    from xpubench.spec.registry import Case

    reason = backend.skip_reason(case)
    if reason:
        return {"status": "skipped", "reason": reason}
    params = dict(case.params, seed=seed)  # the builders' seed for data order, initial weights, dropout
    for key, value in (("target", target), ("max_epochs", max_epochs), ("max_seconds", max_seconds)):
        if value is not None:
            params[key] = value
    backend.activate()
    try:
        job = backend.build(Case(case.workload, case.size, case.mode, params))
    except SkipCase as e:
        return {"status": "skipped", "reason": str(e) or "not offered by this framework build"}
    if not isinstance(job, TrainToTarget):
        raise TypeError(f"{case.full_name}: the builder returned {type(job).__name__}, not TrainToTarget")
    fields = result_fields(job, train_to_target(job, on_epoch=on_epoch), seed)
    med = (fields["time_s"] or {}).get("median")
    units = case.work.units
    fields["throughput_per_s"] = units / med if med else None
    if job.notes:
        fields["notes"] = dict(job.notes)
    return fields


# ------------------------------------------------------------------------ over seeds
def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize_seeds(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Median time to target over runs from several seeds, and its spread (as MLPerf reports).

    A run that did not converge counts as an infinite time: the median is None when
    half or more of the runs missed the target. Spread is min/max and the IQR over
    the runs that converged. Records of other statuses (skipped, error) are left out.
    """
    runs = [r for r in records if r.get("status") in ("ok", "not_converged", "diverged")]
    times = [float(r["time_to_target_s"]) if r.get("status") == "ok" else math.inf for r in runs]
    hit = sorted(t for t in times if math.isfinite(t))
    median = statistics.median(times) if times else math.inf
    quartiles = statistics.quantiles(hit, n=4, method="inclusive") if len(hit) >= 2 else None
    out: dict[str, Any] = {
        "runs": len(runs), "converged": len(hit),
        "seeds": [r.get("seed") for r in runs],
        "time_to_target_s": {
            "median": median if math.isfinite(median) else None,
            "min": hit[0] if hit else None, "max": hit[-1] if hit else None,
            "iqr": quartiles[2] - quartiles[0] if quartiles else None,
            "values": [t if math.isfinite(t) else None for t in times],  # None: did not converge
        },
        "epochs_to_target_median": median_or_none(
            [float(r["epochs_to_target"]) for r in runs if r.get("status") == "ok"]),
        "steps_to_target_median": median_or_none(
            [float(r["steps_to_target"]) for r in runs if r.get("status") == "ok"]),
        "best_metric_median": median_or_none(
            [float(r["best_metric"]) for r in runs if r.get("best_metric") is not None]),
    }
    return out

"""Per case x backend change between two sets of runs: the decision (judge) and the comparisons.

The default verdict procedure (docs/verdicts.md): each pair is judged at the
strongest evidence level its files support (:mod:`xpubench.regress.levels`):

- K >= 2 processes on both sides (``run --repeat K``): Yuen's trimmed t on log
  process medians; K >= 2 on one side only: the other's single median against the repeated
  side's prediction interval;
- K = 1 on both sides: a noise model of the case on this machine (``calibrate``'s
  ``calibration.json``, or the spread across BASE's runs when BASE holds >= 3 of
  them); with none, the rank test below still runs but a change it finds is
  ``unsupported`` (never a regression) and no change ``unresolved`` (never a pass)
  unless ``one_process_supported`` (``compare --trust-rounds``);
- where the level cannot detect a change of the threshold with 95% power, a pair
  without a significant change is ``unresolved`` ("cannot resolve < N% here");
- newest runs whose CPU model or thread count differ are ``incomparable``, with the
  difference on the line; a different framework version is compared and named;
- ``compare --confirm [K]`` re-measures each suspect (a change, or no change where
  the files could not have shown one) in fresh processes, A/B alternating
  (:mod:`xpubench.regress.confirm`): per pass a worker start per backend and side
  plus each suspect's build and budget, about 7 s per suspect at K = 5 on a 2-core VM.

The within-process test, for single-process pairs:

For each (machine, suite, case, mode, backend) present in both sets the change
is the ratio of median step times NEW / BASE (above 1 is slower), with a 95%
confidence interval, and a significance decision from the raw per-round samples
(``time_s.samples``): a two-sided Mann-Whitney U test. Which changes count is
the *rule*:

- ``significant`` (the default of ``xpubench compare``): a *regression* when the
  change is significant **and** its point estimate (the ratio of medians) is
  larger than the threshold (5% by default, per suite overridable). The CI shown
  is a percentile bootstrap of the ratio.
- ``confident`` (the nightly gate's): significant **and** the whole 95% CI of the
  ratio lies beyond the threshold: "we are confident the slowdown exceeds the
  threshold". The CI is built from each median's 95% CI (the one the results
  file stores as ``ci95``, or the timing loop's order-statistics rule over the
  samples when none was stored), combined in log space; it is the CI shown under
  this rule. A case whose rounds are widely spread has a noisy ratio of medians
  that lands past the threshold by chance while the rank test is significant (a
  real 2-3% drift of the machine makes it so); its wide CI keeps it from tripping
  this rule, while a well-measured case with a real step still does. A change
  past the threshold whose CI reaches inside it is shown as ``~`` with a note.

The threshold is symmetric in log space, so an improvement must be faster by
the factor 1/(1+threshold) (under ``confident``: the CI's upper end below it).

Fallbacks, weakest last: with too few samples for the test to ever reach
``alpha`` (or none stored) the 95% CIs of the medians must not overlap; with no
CI either, a change cannot be called significant and is shown as ``~``.

A case that ran ok in BASE and failed in NEW (oom, timeout, crashed, diverged,
error) is reported as ``failed`` and counts as a regression for the exit code.

When a set holds several runs of one machine, the newest measurement of each
case x backend is used. The same :func:`judge` decides the marks on the
report's history page (each run against the previous run of that machine).
Records are read through :class:`xpubench.results.view.Measurement` only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

from xpubench.fmt import fmt_change
from xpubench.regress import levels
from xpubench.regress.stats import bootstrap_ratio_ci, log_ci_ratio, mann_whitney_p, min_mann_whitney_p
from xpubench.results.run_view import Run
from xpubench.results.view import Measurement

DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.01
# decision rules (see the module docstring)
SIGNIFICANT = "significant"
CONFIDENT = "confident"
RULES = (SIGNIFICANT, CONFIDENT)
DEFAULT_RULE = SIGNIFICANT
CONFIDENCE = 0.95  # of the ratio CI that the ``confident`` rule asks to lie beyond the threshold

# verdicts
REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
INSIGNIFICANT = "insignificant"  # larger than the threshold, not significant
FAILED = "failed"  # ok in BASE, failed in NEW
RECOVERED = "recovered"  # not ok in BASE, ok in NEW
NOT_RUN = "not-run"  # not ok on either side, or skipped in NEW
ONLY_IN_BASE = "only-in-base"
ONLY_IN_NEW = "only-in-new"
UNSUPPORTED = "unsupported"  # a change one process per side cannot support (xpubench.regress.levels)
UNRESOLVED = "unresolved"  # no change found, but this machine cannot resolve the threshold for the case
INCOMPARABLE = "incomparable"  # fingerprints differ in what changes step times (CPU model, threads)
GATE_VERDICTS = frozenset({REGRESSION, FAILED})
FLAG_VERDICTS = (REGRESSION, IMPROVEMENT)  # what the report's history page marks

Key = tuple[str, str, str, str, str]  # machine_id, suite, case, mode, backend
Record = Measurement | Mapping[str, Any]


# --------------------------------------------------------------------------- decision
@dataclass(frozen=True)
class Decision:
    """What one BASE/NEW pair of measurements says."""

    verdict: str
    ratio: float | None  # median NEW / median BASE (time per step: > 1 is slower)
    p_value: float | None
    significant: bool | None
    method: str  # "mann-whitney" | "ci-overlap" | "none" | "status"
    note: str = ""
    ratio_ci: tuple[float, float] | None = None  # computed here only when the rule needed it


ONE_PROCESS_REMEDY = "rerun with --repeat 3 or compare --confirm, or calibrate this machine"


def not_confident_note(ratio: float, ci: tuple[float, float] | None, threshold: float) -> str:
    """Why a significant change past the threshold is not a regression under the ``confident`` rule."""
    side = f"[{fmt_change(ci[0])}, {fmt_change(ci[1])}]" if ci else "unknown"
    return f"{fmt_change(ratio)}, but its {CONFIDENCE:.0%} CI {side} is not wholly beyond the {threshold:.0%} " \
           "threshold: not confident"


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; accepted: {', '.join(RULES)}")
    return rule


def judge(base: Record, new: Record, *, threshold: float = DEFAULT_THRESHOLD,
          alpha: float = DEFAULT_ALPHA, rule: str = DEFAULT_RULE, sigma: float | None = None,
          one_process_supported: bool = False) -> Decision:
    """Decide whether ``new`` is a regression against ``base`` (two measurements, views or records).

    ``rule``: ``"significant"`` (significant and the ratio of medians beyond the
    threshold) or ``"confident"`` (significant and the whole 95% CI of the ratio
    beyond it); see the module docstring. The evidence level comes first
    (:mod:`xpubench.regress.levels`): process-level figures, else the case's
    between-process spread ``sigma`` on this machine, else one process per side,
    whose change is ``unsupported`` unless ``one_process_supported`` (the rounds'
    rank test alone: what the report's history marks and the resampled nights use).
    """
    check_rule(rule)
    base, new = Measurement.of(base), Measurement.of(new)
    status = _status_decision(base, new)
    if status is not None:
        return status
    level = levels.level_of(base, new, sigma)
    if level != levels.ONE_PROCESS:
        return _judge_level(base, new, level, sigma, threshold=threshold, alpha=alpha, rule=rule)
    d = _judge_rounds(base, new, threshold=threshold, alpha=alpha, rule=rule)
    if one_process_supported:
        return d
    if d.verdict in FLAG_VERDICTS:
        return replace(d, verdict=UNSUPPORTED, note=(
            f"unsupported: one process per side ({fmt_change(d.ratio)} within one process, p {d.p_value or 0:.2g}); "
            f"{ONE_PROCESS_REMEDY}"))
    if d.verdict in (UNCHANGED, INSIGNIFICANT):
        # one process's rounds say nothing of what a rerun shows: no change found there is no pass
        return replace(d, verdict=UNRESOLVED, note=(
            f"unresolved: one process per side ({fmt_change(d.ratio) if d.ratio else 'no ratio'} within one process), "
            f"and a rerun's spread is unknown here; {ONE_PROCESS_REMEDY}" + (f"; {d.note}" if d.note else "")))
    return d


def _judge_level(base: Measurement, new: Measurement, level: str, sigma: float | None, *, threshold: float,
                 alpha: float, rule: str) -> Decision:
    """A verdict from a process-level or noise-model test (see xpubench.regress.levels)."""
    t = levels.level_test(base, new, level, sigma, alpha, CONFIDENCE)
    limit = math.log1p(threshold)
    significant = t.p_value < alpha
    if rule == CONFIDENT:
        beyond = math.log(t.ci95[0]) > limit if t.ratio > 1 else math.log(t.ci95[1]) < -limit
    else:
        beyond = abs(math.log(t.ratio)) > limit
    note = ""
    if significant and beyond:
        verdict = REGRESSION if t.ratio > 1 else IMPROVEMENT
    elif significant and abs(math.log(t.ratio)) > limit:  # seen, but the confident rule's CI reaches inside
        verdict = INSIGNIFICANT
        note = not_confident_note(t.ratio, t.ci95, threshold)
    elif t.detectable is not None and t.detectable > threshold:
        verdict = UNRESOLVED
        # one decimal near the threshold ("< 5%" against a 5% threshold reads as a contradiction);
        # past 10x no figure is worth reading
        limit_text = (f"{t.detectable:.1%}" if t.detectable < 0.1 else f"{t.detectable:.0%}" if t.detectable < 10
                      else "1000%")
        note = f"cannot resolve < {limit_text} here ({level})"
    elif abs(math.log(t.ratio)) > limit:
        verdict = INSIGNIFICANT
    else:
        verdict = UNCHANGED
    note = "; ".join(x for x in (note, t.note) if x)
    return Decision(verdict, t.ratio, t.p_value, significant, level, note, t.ci95)


def _status_decision(base: Measurement, new: Measurement) -> Decision | None:
    """The decision when a side did not run ok or has no median; None when both can be timed."""
    if not base.ok or not new.ok:
        bs, ns = base.status, new.status
        if base.ok and new.failed:
            return Decision(FAILED, None, None, None, "status", f"ok -> {ns}")
        if not base.ok and new.ok:
            return Decision(RECOVERED, None, None, None, "status", f"{bs} -> ok")
        return Decision(NOT_RUN, None, None, None, "status", f"{bs} -> {ns}")
    if base.median is None or new.median is None:
        return Decision(NOT_RUN, None, None, None, "status", "no median time recorded")
    return None


def _judge_rounds(base: Measurement, new: Measurement, *, threshold: float, alpha: float, rule: str) -> Decision:
    """The within-process decision: a rank test on the two runs' rounds (one process each)."""
    mb, mn = base.median, new.median
    ratio = mn / mb
    limit = math.log1p(threshold)
    big = abs(math.log(ratio)) > limit
    a, b = base.samples, new.samples
    p = None
    if len(a) >= 2 and len(b) >= 2 and min_mann_whitney_p(len(a), len(b)) < alpha:
        p = mann_whitney_p(a, b)
        significant: bool | None = p < alpha
        method = "mann-whitney"
    else:
        cb, cn = base.ci95, new.ci95
        if cb and cn:
            significant = cn[0] > cb[1] or cn[1] < cb[0]
            method = "ci-overlap"
        else:
            significant, method = None, "none"
    note = "" if method != "none" else "no samples or CI stored: significance unknown"
    ci = None
    if big and significant and rule == CONFIDENT:
        # Only here is the rule's CI needed; the tables compute the others for show.
        ci = ratio_ci(base, new, rule=CONFIDENT)
        beyond = ci is not None and (math.log(ci[0]) > limit if ratio > 1 else math.log(ci[1]) < -limit)
        if not beyond:
            note = not_confident_note(ratio, ci, threshold)
            return Decision(INSIGNIFICANT, ratio, p, significant, method, note, ci)
    if big and significant:
        verdict = REGRESSION if ratio > 1 else IMPROVEMENT
    elif big:
        verdict = INSIGNIFICANT
    else:
        verdict = UNCHANGED
    return Decision(verdict, ratio, p, significant, method, note, ci)


def order_stat_ratio_ci(base: Record, new: Record) -> tuple[float, float] | None:
    """95% CI of median(new)/median(base) from each median's own 95% CI (the view's ``ci95``).

    Each median's CI is the distribution-free one of the timing loop (order
    statistics, exact binomial: at least 95% for any continuous distribution of
    rounds: skewed, multi-modal, heavy-tailed; with very few rounds it is the whole
    range); the two are combined in log space. The percentile bootstrap of a median
    is only roughly 95% at a few dozen rounds; in the simulated nights
    (scripts/simulate_nights.py) this rule on the bootstrap CI gave about three
    times as many months with a noise alarm.
    """
    base, new = Measurement.of(base), Measurement.of(new)
    mb, mn, cb, cn = base.median, new.median, base.ci95, new.ci95
    if not (mb and mn and cb and cn):
        return None
    return log_ci_ratio(cb, cn, mb, mn)


def ratio_ci(base: Record, new: Record, *, rule: str = DEFAULT_RULE) -> tuple[float, float] | None:
    """95% CI of median(new)/median(base).

    ``rule="confident"``: the CI that rule decides on (:func:`order_stat_ratio_ci`).
    Otherwise a bootstrap on the samples, else from the medians' CIs.
    """
    if rule == CONFIDENT:
        return order_stat_ratio_ci(base, new)
    base, new = Measurement.of(base), Measurement.of(new)
    if len(base.samples) >= 3 and len(new.samples) >= 3:
        return bootstrap_ratio_ci(base.samples, new.samples, confidence=CONFIDENCE)
    return order_stat_ratio_ci(base, new)


# --------------------------------------------------------------------------- runs
@dataclass
class Comparison:
    machine_id: str
    suite: str
    case: str
    mode: str
    backend: str
    verdict: str
    threshold: float
    base_status: str
    new_status: str
    base_median: float | None = None
    new_median: float | None = None
    ratio: float | None = None
    ratio_ci: tuple[float, float] | None = None
    p_value: float | None = None
    method: str = ""
    base_rounds: int = 0
    new_rounds: int = 0
    note: str = ""

    @property
    def change(self) -> float | None:
        """Relative change of the median step time (+0.10 = 10% slower)."""
        return None if self.ratio is None else self.ratio - 1.0

    @property
    def is_regression(self) -> bool:
        return self.verdict in GATE_VERDICTS

    @property
    def key(self) -> Key:
        return (self.machine_id, self.suite, self.case, self.mode, self.backend)


def latest_measurements(runs: Iterable[Run | Mapping[str, Any]]) -> dict[Key, Measurement]:
    """The newest measurement of every (machine, suite, case, mode, backend)."""
    out: dict[Key, Measurement] = {}
    for run in sorted((Run.of(r) for r in runs), key=lambda r: r.sort_key):
        for m in run.measurements:
            out[(run.machine_id, *m.key)] = m
    return out


def newest_runs(runs: Iterable[Run]) -> dict[str, Run]:
    """The newest run of each machine."""
    out: dict[str, Run] = {}
    for run in sorted(runs, key=lambda r: r.sort_key):
        out[run.machine_id] = run
    return out


def fingerprint_notes(base_runs: list[Run], new_runs: list[Run]) -> dict[str, tuple[bool, str]]:
    """machine_id -> (comparable, what differs) for machines whose newest runs differ in what matters.

    A different CPU model or thread count makes the two sides different experiments:
    not comparable. A different framework version is what a comparison may be for: it
    is compared, and the line names it.
    """
    nb, nn = newest_runs(base_runs), newest_runs(new_runs)
    out = {}
    for mid in nb.keys() & nn.keys():
        diffs = levels.fingerprint_differences(nb[mid], nn[mid])
        if diffs:
            hard = any(d.startswith(("CPU ", "threads ")) for d in diffs)
            out[mid] = (not hard, "fingerprints differ: " + "; ".join(diffs))
    return out


def compare_runs(base_runs: Iterable[Run | Mapping[str, Any]], new_runs: Iterable[Run | Mapping[str, Any]],
                 threshold: float = DEFAULT_THRESHOLD, suite_thresholds: Mapping[str, float] | None = None, *,
                 alpha: float = DEFAULT_ALPHA, with_ci: bool = True, rule: str = DEFAULT_RULE,
                 noise: "levels.NoiseModel | None" = None, one_process_supported: bool = False) -> list[Comparison]:
    """Compare two sets of runs (views or run documents) case x backend, machine by machine.

    Returns one :class:`Comparison` per key found on either side; keys present on
    one side only have verdict ``only-in-base`` / ``only-in-new``. ``with_ci=False``
    skips the ratio CI where the rule does not need it (it is only shown). ``noise``
    gives the between-process spread of single-process cases; where none is given, a
    BASE set holding several runs of a machine supplies its own (their spread).
    """
    check_rule(rule)
    suite_thresholds = dict(suite_thresholds or {})
    base_runs = [Run.of(r) for r in base_runs]
    new_runs = [Run.of(r) for r in new_runs]
    history = levels.noise_from_history(base_runs)
    noise = noise.merged(history) if noise is not None else history
    fingerprints = fingerprint_notes(base_runs, new_runs)
    base = latest_measurements(base_runs)
    new = latest_measurements(new_runs)
    out: list[Comparison] = []
    for key in sorted(set(base) | set(new)):
        machine_id, suite, case, mode, backend = key
        t = suite_thresholds.get(suite, threshold)
        bm, nm = base.get(key), new.get(key)
        c = Comparison(machine_id, suite, case, mode, backend, "", t,
                       bm.status if bm else "missing", nm.status if nm else "missing",
                       base_median=bm.median if bm else None, new_median=nm.median if nm else None,
                       base_rounds=(bm.rounds or 0) if bm else 0, new_rounds=(nm.rounds or 0) if nm else 0)
        if bm is None or nm is None:
            c.verdict = ONLY_IN_NEW if bm is None else ONLY_IN_BASE
            out.append(c)
            continue
        d = judge(bm, nm, threshold=t, alpha=alpha, rule=rule, sigma=noise.for_key(key),
                  one_process_supported=one_process_supported)
        c.verdict, c.ratio, c.p_value, c.method, c.note = d.verdict, d.ratio, d.p_value, d.method, d.note
        comparable, why = fingerprints.get(machine_id, (True, ""))
        if why:
            if not comparable and d.verdict not in (FAILED, RECOVERED, NOT_RUN):
                c.verdict = INCOMPARABLE
            c.note = f"{why}; {c.note}" if c.note else why
        c.ratio_ci = d.ratio_ci
        if with_ci and d.ratio is not None and c.ratio_ci is None:
            c.ratio_ci = ratio_ci(bm, nm, rule=rule)  # the CI shown is the one the rule reads
        out.append(c)
    return out


def find_regressions(comparisons: Iterable[Comparison]) -> list[Comparison]:
    """The comparisons that fail the gate: significant slowdowns past the threshold, new failures."""
    return [c for c in comparisons if c.is_regression]

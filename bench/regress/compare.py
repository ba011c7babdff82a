"""`xpubench compare BASE NEW`: per case x backend change, significance, regression gate.

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
  threshold". The CI is built from each median's distribution-free CI (order
  statistics, the CI the timing loop stops on and results files store as
  ``ci95``), combined in log space; it is the CI shown under this rule. A case
  whose rounds are widely spread has a noisy ratio of medians that lands past the
  threshold by chance while the rank test is significant (a real 2-3% drift of
  the machine makes it so); its wide CI keeps it from tripping this rule, while a
  well-measured case with a real step still does. A change past the threshold
  whose CI reaches inside it is shown as ``~`` with a note.

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
"""

from __future__ import annotations

import argparse
import functools
import html
import math
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from xpubench.results.files import FAILED_STATUSES

DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.01
BOOTSTRAP_RESAMPLES = 2000
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
GATE_VERDICTS = frozenset({REGRESSION, FAILED})
MARKS = {REGRESSION: "+", IMPROVEMENT: "-", UNCHANGED: " ", INSIGNIFICANT: "~", FAILED: "!",
         RECOVERED: "*", NOT_RUN: ".", ONLY_IN_BASE: "<", ONLY_IN_NEW: ">"}

Key = tuple[str, str, str, str, str]  # machine_id, suite, case, mode, backend


# --------------------------------------------------------------------------- statistics
def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def samples_of(m: Mapping[str, Any]):
    """The positive, finite per-round samples of a measurement as a float array (maybe empty)."""
    import numpy as np

    t = m.get("time_s")
    raw = t.get("samples") if isinstance(t, dict) else None
    if not isinstance(raw, list) or not raw:
        return np.empty(0)
    try:
        x = np.asarray(raw, dtype=float)  # null -> nan
    except (TypeError, ValueError):  # strings or nested lists in a hand-edited file
        x = np.asarray([v for v in raw if _finite(v) is not None], dtype=float)
    if x.ndim != 1:
        return np.empty(0)
    return x[np.isfinite(x) & (x > 0)]


def median_of(m: Mapping[str, Any]) -> float | None:
    t = m.get("time_s")
    med = _finite(t.get("median")) if isinstance(t, dict) else None
    if med is None or med <= 0:
        xs = samples_of(m)
        if not xs.size:
            return None
        import numpy as np

        med = float(np.median(xs))
    return med


def ci_of(m: Mapping[str, Any]) -> tuple[float, float] | None:
    t = m.get("time_s")
    ci = t.get("ci95") if isinstance(t, dict) else None
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        lo, hi = _finite(ci[0]), _finite(ci[1])
        if lo is not None and hi is not None and 0 < lo <= hi:
            return lo, hi
    return None


@functools.lru_cache(maxsize=256)
def _exact_u_tail(n: int, m: int) -> tuple[float, ...]:
    """``tail[u] = P(U >= u)`` under H0 without ties, from the exact distribution of U."""
    # Number of arrangements with each U: coefficients of the Gaussian binomial
    # [n+m choose n]_q, built by multiplying the factors (1 - q^(m+i)) / (1 - q^i).
    size = n * m + 1
    poly = [0] * size
    poly[0] = 1
    for i in range(1, n + 1):
        k = m + i
        for j in range(size - 1, k - 1, -1):  # times (1 - q^k)
            poly[j] -= poly[j - k]
        for j in range(i, size):  # divided by (1 - q^i): exact, a running sum
            poly[j] += poly[j - i]
    total = math.comb(n + m, n)
    tail, acc = [0.0] * (size + 1), 0
    for u in range(size - 1, -1, -1):
        acc += poly[u]
        tail[u] = acc / total
    return tuple(tail)


def _exact_u_sf(u: float, n: int, m: int) -> float:
    """P(U >= u) under H0 without ties."""
    tail = _exact_u_tail(n, m)
    k = max(0, math.ceil(u - 1e-9))
    return tail[k] if k < len(tail) else 0.0


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (exact when small and tie-free)."""
    import numpy as np

    x = np.asarray(a, dtype=float)
    y = np.sort(np.asarray(b, dtype=float))
    n, m = x.size, y.size
    if n == 0 or m == 0:
        return 1.0
    # U of x: pairs with x_i > y_j, ties counting one half
    u = float((np.searchsorted(y, x, "left") + np.searchsorted(y, x, "right")).sum()) / 2.0
    both = np.sort(np.concatenate((x, y)))
    same = both[1:] == both[:-1]
    if n * m <= 400 and not same.any():
        big = max(u, n * m - u)
        return min(1.0, 2.0 * _exact_u_sf(big, n, m))
    tie_term = 0.0
    if same.any():
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        counts = np.diff(np.concatenate((starts, [both.size]))).astype(float)
        tie_term = float((counts**3 - counts).sum())
    total = n + m
    var = n * m / 12.0 * ((total + 1) - tie_term / (total * (total - 1)))
    if var <= 0:
        return 1.0
    z = (abs(u - n * m / 2.0) - 0.5) / math.sqrt(var)
    return 1.0 if z <= 0 else min(1.0, math.erfc(z / math.sqrt(2.0)))


def min_mann_whitney_p(n: int, m: int) -> float:
    """The smallest two-sided p the test can give for these sample sizes."""
    if n == 0 or m == 0:
        return 1.0
    # log space: comb(n + m, n) overflows a float past a few hundred samples
    log_comb = math.lgamma(n + m + 1) - math.lgamma(n + 1) - math.lgamma(m + 1)
    return min(1.0, math.exp(math.log(2.0) - log_comb))


def bootstrap_ratio_ci(base: Sequence[float], new: Sequence[float], *, confidence: float = 0.95,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of median(new) / median(base)."""
    import numpy as np

    a = np.asarray(base, dtype=float)
    b = np.asarray(new, dtype=float)
    # bound the work for very long sample lists (pytest-benchmark keeps thousands)
    reps = max(200, min(resamples, int(4_000_000 // max(a.size, b.size, 1))))
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, size=(reps, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, size=(reps, b.size))], axis=1)
    ratios = mb / ma
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(ratios, [tail, 100.0 - tail])
    return float(lo), float(hi)


def _log_ci_ratio(base_ci, new_ci, base_med, new_med) -> tuple[float, float]:
    """Ratio CI from the two medians' CIs, combined in log space (no samples)."""
    hb = max(math.log(base_ci[1] / base_med), math.log(base_med / base_ci[0]))
    hn = max(math.log(new_ci[1] / new_med), math.log(new_med / new_ci[0]))
    h = math.hypot(hb, hn)
    r = new_med / base_med
    return r * math.exp(-h), r * math.exp(h)


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


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; accepted: {', '.join(RULES)}")
    return rule


def _status(m: Mapping[str, Any] | None) -> str:
    return str(m.get("status") or "ok") if m is not None else "missing"


def judge(base: Mapping[str, Any], new: Mapping[str, Any], *, threshold: float = DEFAULT_THRESHOLD,
          alpha: float = DEFAULT_ALPHA, rule: str = DEFAULT_RULE) -> Decision:
    """Decide whether ``new`` is a regression against ``base`` (two measurement records).

    ``rule``: ``"significant"`` (significant and the ratio of medians beyond the
    threshold) or ``"confident"`` (significant and the whole 95% CI of the ratio
    beyond it); see the module docstring.
    """
    check_rule(rule)
    bs, ns = _status(base), _status(new)
    if bs != "ok" or ns != "ok":
        if bs == "ok" and ns in FAILED_STATUSES:
            return Decision(FAILED, None, None, None, "status", f"ok -> {ns}")
        if bs != "ok" and ns == "ok":
            return Decision(RECOVERED, None, None, None, "status", f"{bs} -> ok")
        return Decision(NOT_RUN, None, None, None, "status", f"{bs} -> {ns}")
    mb, mn = median_of(base), median_of(new)
    if mb is None or mn is None:
        return Decision(NOT_RUN, None, None, None, "status", "no median time recorded")
    ratio = mn / mb
    limit = math.log1p(threshold)
    big = abs(math.log(ratio)) > limit
    a, b = samples_of(base), samples_of(new)
    p = None
    if len(a) >= 2 and len(b) >= 2 and min_mann_whitney_p(len(a), len(b)) < alpha:
        p = mann_whitney_p(a, b)
        significant: bool | None = p < alpha
        method = "mann-whitney"
    else:
        cb, cn = ci_of(base), ci_of(new)
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
            side = f"[{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "unknown"
            note = (f"{_pct(ratio)}, but its {CONFIDENCE:.0%} CI {side} is not wholly beyond the "
                    f"{threshold:.0%} threshold: not confident")
            return Decision(INSIGNIFICANT, ratio, p, significant, method, note, ci)
    if big and significant:
        verdict = REGRESSION if ratio > 1 else IMPROVEMENT
    elif big:
        verdict = INSIGNIFICANT
    else:
        verdict = UNCHANGED
    return Decision(verdict, ratio, p, significant, method, note, ci)


def _median_and_ci(xs) -> tuple[float, tuple[float, float]]:
    """Median and distribution-free 95% CI of the median (order statistics, as ``xpubench.measure.stats``)."""
    import numpy as np

    from xpubench.measure.stats import median_ci_ranks

    xs = np.sort(xs)
    lo, hi = median_ci_ranks(int(xs.size), CONFIDENCE)
    return float(np.median(xs)), (float(xs[lo]), float(xs[hi]))


def order_stat_ratio_ci(base: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[float, float] | None:
    """95% CI of median(new)/median(base) from each median's distribution-free CI.

    Each median's CI comes from order statistics (exact binomial, at least 95%
    for any continuous distribution of rounds: skewed, multi-modal, heavy-tailed;
    with very few rounds it is the whole range); the two are combined in log
    space. The percentile bootstrap of a median is only roughly 95% at a few
    dozen rounds; in the simulated nights (scripts/simulate_nights.py) this rule
    on the bootstrap CI gave about three times as many months with a noise alarm.
    """
    a, b = samples_of(base), samples_of(new)
    if len(a) >= 3 and len(b) >= 3:
        (mb, cb), (mn, cn) = _median_and_ci(a), _median_and_ci(b)
    else:
        mb, mn, cb, cn = median_of(base), median_of(new), ci_of(base), ci_of(new)
        if not (mb and mn and cb and cn):
            return None
    if min(mb, mn, cb[0], cn[0]) <= 0:
        return None
    return _log_ci_ratio(cb, cn, mb, mn)


def ratio_ci(base: Mapping[str, Any], new: Mapping[str, Any], *,
             rule: str = DEFAULT_RULE) -> tuple[float, float] | None:
    """95% CI of median(new)/median(base).

    ``rule="confident"``: the CI that rule decides on (:func:`order_stat_ratio_ci`).
    Otherwise a bootstrap on the samples, else from the stored CIs.
    """
    if rule == CONFIDENT:
        return order_stat_ratio_ci(base, new)
    a, b = samples_of(base), samples_of(new)
    if len(a) >= 3 and len(b) >= 3:
        return bootstrap_ratio_ci(a, b, confidence=CONFIDENCE)
    mb, mn, cb, cn = median_of(base), median_of(new), ci_of(base), ci_of(new)
    if mb and mn and cb and cn:
        return _log_ci_ratio(cb, cn, mb, mn)
    return None


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


def _run_dict(run: Any) -> Mapping[str, Any]:
    return run.data if hasattr(run, "data") and isinstance(run.data, dict) else run


def _started(run: Mapping[str, Any]) -> float:
    """Start time as a timestamp (time zones honoured); runs without one sort first."""
    from datetime import datetime, timezone

    r = run.get("run")
    text = r.get("started_at") if isinstance(r, dict) else None
    try:
        t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return -math.inf
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def measurement_key(machine_id: str, m: Mapping[str, Any]) -> Key:
    return (machine_id, str(m.get("suite", "")), str(m.get("case", "")), str(m.get("mode", "")),
            str(m.get("backend", "")))


def latest_measurements(runs: Iterable[Any]) -> dict[Key, Mapping[str, Any]]:
    """The newest measurement of every (machine, suite, case, mode, backend)."""
    docs = sorted((_run_dict(r) for r in runs), key=_started)
    out: dict[Key, Mapping[str, Any]] = {}
    for doc in docs:
        machine = doc.get("machine") if isinstance(doc.get("machine"), dict) else {}
        mid = str(machine.get("machine_id") or machine.get("hostname") or "unknown-machine")
        for m in doc.get("measurements") or []:
            if isinstance(m, dict):
                out[measurement_key(mid, m)] = m
    return out


def _rounds(m: Mapping[str, Any] | None) -> int:
    if not m:
        return 0
    t = m.get("time_s")
    n = t.get("rounds") if isinstance(t, dict) else None
    return int(n) if isinstance(n, int) else len(samples_of(m))


def compare_runs(base_runs: Iterable[Any], new_runs: Iterable[Any], threshold: float = DEFAULT_THRESHOLD,
                 suite_thresholds: Mapping[str, float] | None = None, *, alpha: float = DEFAULT_ALPHA,
                 with_ci: bool = True, rule: str = DEFAULT_RULE) -> list[Comparison]:
    """Compare two sets of runs (run dicts or loaded runs) case x backend, machine by machine.

    Returns one :class:`Comparison` per key found on either side; keys present on
    one side only have verdict ``only-in-base`` / ``only-in-new``. ``with_ci=False``
    skips the ratio CI where the rule does not need it (it is only shown).
    """
    check_rule(rule)
    suite_thresholds = dict(suite_thresholds or {})
    base = latest_measurements(base_runs)
    new = latest_measurements(new_runs)
    out: list[Comparison] = []
    for key in sorted(set(base) | set(new)):
        machine_id, suite, case, mode, backend = key
        t = suite_thresholds.get(suite, threshold)
        bm, nm = base.get(key), new.get(key)
        c = Comparison(machine_id, suite, case, mode, backend, "", t, _status(bm), _status(nm),
                       base_median=median_of(bm) if bm else None, new_median=median_of(nm) if nm else None,
                       base_rounds=_rounds(bm), new_rounds=_rounds(nm))
        if bm is None or nm is None:
            c.verdict = ONLY_IN_NEW if bm is None else ONLY_IN_BASE
            out.append(c)
            continue
        d = judge(bm, nm, threshold=t, alpha=alpha, rule=rule)
        c.verdict, c.ratio, c.p_value, c.method, c.note = d.verdict, d.ratio, d.p_value, d.method, d.note
        c.ratio_ci = d.ratio_ci
        if with_ci and d.ratio is not None and c.ratio_ci is None:
            c.ratio_ci = ratio_ci(bm, nm, rule=rule)  # the CI shown is the one the rule reads
        out.append(c)
    return out


def find_regressions(comparisons: Iterable[Comparison]) -> list[Comparison]:
    """The comparisons that fail the gate: significant slowdowns past the threshold, new failures."""
    return [c for c in comparisons if c.is_regression]


# --------------------------------------------------------------------------- formatting
_ORDER = [REGRESSION, FAILED, IMPROVEMENT, RECOVERED, INSIGNIFICANT, UNCHANGED, NOT_RUN]


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if abs(s) >= scale:
            return f"{s / scale:.4g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _pct(r: float) -> str:
    return f"{(r - 1) * 100:+.1f}%"


def _change_text(c: Comparison) -> str:
    if c.ratio is None:
        return c.note or "-"
    text = _pct(c.ratio)
    if c.ratio_ci:
        text += f" [{_pct(c.ratio_ci[0])}, {_pct(c.ratio_ci[1])}]"
    return text


def _p_text(c: Comparison) -> str:
    if c.p_value is not None:
        return f"{c.p_value:.2g}"
    return {"ci-overlap": "CI", "none": "n/a"}.get(c.method, "-")


def _sorted_compared(comparisons: Sequence[Comparison]) -> list[Comparison]:
    rank = {v: i for i, v in enumerate(_ORDER)}
    return sorted((c for c in comparisons if c.verdict in rank),
                  key=lambda c: (rank[c.verdict], -abs(math.log(c.ratio)) if c.ratio else 0.0, c.key))


def summary_counts(comparisons: Sequence[Comparison]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in comparisons:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    return counts


def rule_text(rule: str, threshold: float) -> str:
    """What a regression is under ``rule``, in words (the tables' legend)."""
    if rule == CONFIDENT:
        return (f"rule confident: significant and the whole {CONFIDENCE:.0%} CI of the change beyond "
                f"{threshold:.0%}")
    return f"rule significant: significant and the change beyond {threshold:.0%}"


def _summary_line(comparisons: Sequence[Comparison], threshold: float, alpha: float,
                  rule: str = DEFAULT_RULE) -> str:
    counts = summary_counts(comparisons)
    parts = [f"{counts.get(v, 0)} {v}" for v in (REGRESSION, FAILED, IMPROVEMENT, INSIGNIFICANT, UNCHANGED)]
    extra = [f"{counts[v]} {v}" for v in (RECOVERED, NOT_RUN, ONLY_IN_BASE, ONLY_IN_NEW) if counts.get(v)]
    return (", ".join(parts + extra)
            + f" ({rule_text(rule, threshold)}; alpha {alpha:g}, Mann-Whitney U on per-round samples)")


def _plain(text: str) -> str:
    """Results-file text for a terminal: control characters (escape sequences) made visible."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def _row(c: Comparison) -> list[str]:
    return [MARKS.get(c.verdict, "?"), _plain(c.machine_id), _plain(f"{c.suite}/{c.case}"), _plain(c.mode),
            _plain(c.backend),
            fmt_time(c.base_median), fmt_time(c.new_median), _change_text(c), _p_text(c), c.verdict]


HEADER = ["", "machine", "case", "mode", "backend", "base", "new", "change [95% CI]", "p", "verdict"]


def format_table(comparisons: Sequence[Comparison], *, threshold: float = DEFAULT_THRESHOLD,
                 alpha: float = DEFAULT_ALPHA, rule: str = DEFAULT_RULE) -> str:
    """Plain-text table for the terminal."""
    rows = [_row(c) for c in _sorted_compared(comparisons)]
    lines: list[str] = []
    if rows:
        widths = [max(len(r[i]) for r in rows + [HEADER]) for i in range(len(HEADER))]
        fmt = lambda r: "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()  # noqa: E731
        lines.append(fmt(HEADER))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(fmt(r) for r in rows)
    else:
        lines.append("nothing to compare: no case x backend ran on the same machine in both sets")
    for verdict, label in ((ONLY_IN_BASE, "only in BASE (not compared)"), (ONLY_IN_NEW, "only in NEW (not compared)")):
        missing = [c for c in comparisons if c.verdict == verdict]
        if missing:
            lines.append("")
            lines.append(f"{label}: {len(missing)}")
            lines.extend(_plain(f"  {c.machine_id}  {c.suite}/{c.case}  {c.mode}  {c.backend}") for c in missing)
    notes = _not_confident_notes(comparisons)
    if notes:
        lines.append("")
        lines.extend(notes)
    lines.append("")
    lines.append(_summary_line(comparisons, threshold, alpha, rule))
    return "\n".join(lines)


def _not_confident_notes(comparisons: Sequence[Comparison]) -> list[str]:
    """One line per change past the threshold that the confident rule did not count (``~`` rows)."""
    return [_plain(f"~ {c.machine_id}  {c.suite}/{c.case}  {c.mode}  {c.backend}: {c.note}")
            for c in _sorted_compared(comparisons) if c.verdict == INSIGNIFICANT and "not confident" in c.note]


def _md(text: str) -> str:
    """Escape a results-file string for a GitHub markdown table cell."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("`", "\\`").replace("\n", " ")


def _md_table(rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(HEADER[1:]) + " |", "|" + "---|" * (len(HEADER) - 1)]
    out += ["| " + " | ".join(_md(cell) for cell in r[1:]) + " |" for r in rows]
    return out


def format_markdown(comparisons: Sequence[Comparison], *, threshold: float = DEFAULT_THRESHOLD,
                    alpha: float = DEFAULT_ALPHA, rule: str = DEFAULT_RULE) -> str:
    """Markdown for CI job summaries: the changes first, everything else folded."""
    regressions = find_regressions(comparisons)
    lines = ["## xpubench compare", ""]
    lines.append(("**{} regression(s)**".format(len(regressions)) if regressions else "**No regressions**")
                 + " — " + _summary_line(comparisons, threshold, alpha, rule))
    lines.append("")
    ordered = _sorted_compared(comparisons)
    changed = [c for c in ordered if c.verdict in (REGRESSION, FAILED, IMPROVEMENT, RECOVERED)]
    if changed:
        lines += _md_table([_row(c) for c in changed])
        lines.append("")
    notes = _not_confident_notes(comparisons)
    if notes:
        lines += [f"<details><summary>Past the threshold, not confident ({len(notes)})</summary>", ""]
        lines += ["- " + _md(n[2:]) for n in notes] + ["", "</details>", ""]
    rest = [c for c in ordered if c not in changed]
    if rest:
        lines += ["<details><summary>All other comparisons ({})</summary>".format(len(rest)), ""]
        lines += _md_table([_row(c) for c in rest])
        lines += ["", "</details>", ""]
    for verdict, label in ((ONLY_IN_BASE, "Only in BASE"), (ONLY_IN_NEW, "Only in NEW")):
        missing = [c for c in comparisons if c.verdict == verdict]
        if missing:
            lines += [f"<details><summary>{label} — not compared ({len(missing)})</summary>", ""]
            lines += [f"- {_md(c.machine_id)} · {_md(c.suite)}/{_md(c.case)} · {_md(c.mode)} · {_md(c.backend)}"
                      for c in missing]
            lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- CLI
def parse_threshold(text: str) -> float:
    """``5%`` or ``0.05`` -> 0.05."""
    s = str(text).strip()
    try:
        value = float(s[:-1]) / 100.0 if s.endswith("%") else float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a threshold; write it as 5% or 0.05") from None
    if not s.endswith("%") and value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is ambiguous; write 5% or 0.05 (a fraction below 1)")
    if not (0 <= value < 10) or math.isnan(value):
        raise argparse.ArgumentTypeError(f"threshold {text!r} out of range; use e.g. 5% or 0.05")
    return value


def parse_suite_threshold(text: str) -> tuple[str, float]:
    suite, sep, pct = str(text).partition("=")
    if not sep or not suite.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected SUITE=PCT, e.g. training=10%")
    return suite.strip(), parse_threshold(pct)


def _parse_alpha(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: alpha must be a number between 0 and 1, e.g. 0.01")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", help="results file or folder: the reference (e.g. last night)")
    parser.add_argument("new", help="results file or folder: the candidate (e.g. tonight)")
    parser.add_argument("--threshold", type=parse_threshold, default=DEFAULT_THRESHOLD, metavar="PCT",
                        help="smallest change that counts, e.g. 5%% or 0.05 (default 5%%)")
    parser.add_argument("--suite-threshold", type=parse_suite_threshold, action="append", default=[],
                        metavar="SUITE=PCT", help="threshold for one suite, e.g. training=10%% (repeatable)")
    parser.add_argument("--alpha", type=_parse_alpha, default=DEFAULT_ALPHA,
                        help="significance level of the test on per-round samples (default 0.01)")
    parser.add_argument("--rule", choices=RULES, default=DEFAULT_RULE,
                        help="what counts as a regression: 'significant' = significant and the change beyond "
                             "the threshold (default); 'confident' = significant and the whole 95%% CI of "
                             "the change beyond the threshold (the nightly gate's: noisy cases cannot trip it)")
    parser.add_argument("--format", choices=("table", "markdown"), default="table",
                        help="table for the terminal, markdown for CI job summaries")


def run(args: argparse.Namespace) -> int:
    """Exit code: 1 when a regression was found, 0 otherwise, 2 on bad input."""
    from xpubench.errors import UserError
    from xpubench.report.load import load_runs

    try:
        base = load_runs([args.base], strict=True).runs
        new = load_runs([args.new], strict=True).runs
    except UserError as e:
        print(f"xpubench compare: {e}", file=sys.stderr)
        return 2
    for label, path, runs in (("BASE", args.base, base), ("NEW", args.new, new)):
        if not runs:
            print(f"xpubench compare: {label} {path}: no results files found", file=sys.stderr)
            return 2
    threshold = args.threshold
    suites = dict(getattr(args, "suite_threshold", None) or [])
    alpha = getattr(args, "alpha", DEFAULT_ALPHA)
    rule = getattr(args, "rule", DEFAULT_RULE)
    comparisons = compare_runs(base, new, threshold, suites, alpha=alpha, rule=rule)
    fmt = format_markdown if getattr(args, "format", "table") == "markdown" else format_table
    print(fmt(comparisons, threshold=threshold, alpha=alpha, rule=rule))
    return 1 if find_regressions(comparisons) else 0

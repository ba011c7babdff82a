"""Comparisons as text: the terminal table and the markdown of CI job summaries."""

from __future__ import annotations

import html
import math
from typing import Sequence

from xpubench.fmt import fmt_change, fmt_time
from xpubench.regress.compare import (CONFIDENCE, CONFIDENT, DEFAULT_ALPHA, DEFAULT_RULE, DEFAULT_THRESHOLD, FAILED,
                                      IMPROVEMENT, INSIGNIFICANT, NOT_RUN, ONLY_IN_BASE, ONLY_IN_NEW, RECOVERED,
                                      REGRESSION, INCOMPARABLE, UNCHANGED, UNRESOLVED, UNSUPPORTED, Comparison,
                                      find_regressions)

MARKS = {REGRESSION: "+", IMPROVEMENT: "-", UNCHANGED: " ", INSIGNIFICANT: "~", FAILED: "!",
         RECOVERED: "*", NOT_RUN: ".", ONLY_IN_BASE: "<", ONLY_IN_NEW: ">", UNSUPPORTED: "?", UNRESOLVED: "=",
         INCOMPARABLE: "x"}
_ORDER = [REGRESSION, FAILED, IMPROVEMENT, RECOVERED, UNSUPPORTED, INCOMPARABLE, UNRESOLVED, INSIGNIFICANT,
          UNCHANGED, NOT_RUN]
# verdicts whose line needs its note under the table: why it is not a plain verdict
_EXPLAINED = (UNSUPPORTED, UNRESOLVED, INCOMPARABLE)


def _change_text(c: Comparison) -> str:
    if c.ratio is None:
        return c.note or "-"
    text = fmt_change(c.ratio)
    if c.ratio_ci:
        text += f" [{fmt_change(c.ratio_ci[0])}, {fmt_change(c.ratio_ci[1])}]"
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
    extra = [f"{counts[v]} {v}" for v in (UNSUPPORTED, UNRESOLVED, INCOMPARABLE, RECOVERED, NOT_RUN, ONLY_IN_BASE,
                                          ONLY_IN_NEW) if counts.get(v)]
    return (", ".join(parts + extra)
            + f" ({rule_text(rule, threshold)}; alpha {alpha:g}; {_levels_text(comparisons)})")


def _levels_text(comparisons: Sequence[Comparison]) -> str:
    """Which evidence the verdicts rest on (docs/verdicts.md)."""
    names = {"processes": "process medians (Yuen's trimmed t)", "processes-vs-one": "one process vs repeated processes",
             "noise-model": "calibrated between-process noise", "mann-whitney": "Mann-Whitney U on one process's rounds",
             "ci-overlap": "CI overlap", "confirmed": "confirmation reruns"}
    used = sorted({c.method for c in comparisons if c.method in names})
    return "tests: " + (", ".join(names[m] for m in used) if used else "none")


def _plain(text: str) -> str:
    """Results-file text for a terminal: control characters (escape sequences) made visible."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def _row(c: Comparison) -> list[str]:
    return [MARKS.get(c.verdict, "?"), _plain(c.machine_id), _plain(f"{c.suite}/{c.case}"), _plain(c.mode),
            _plain(c.backend), fmt_time(c.base_median, unknown="-"), fmt_time(c.new_median, unknown="-"),
            _change_text(c), _p_text(c), c.verdict]


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
    """One line per change past the threshold that the confident rule did not count (``~`` rows), and one
    per unsupported, unresolved or incomparable verdict (why it is not a plain verdict)."""
    return [_plain(f"{MARKS[c.verdict]} {c.machine_id}  {c.suite}/{c.case}  {c.mode}  {c.backend}: {c.note}")
            for c in _sorted_compared(comparisons)
            if (c.verdict == INSIGNIFICANT and "not confident" in c.note) or (c.verdict in _EXPLAINED and c.note)]


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
        lines += [f"<details><summary>Not confident, unsupported or unresolved ({len(notes)})</summary>", ""]
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

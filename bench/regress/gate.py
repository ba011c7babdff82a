"""The nightly gate: each machine's runs of tonight against its previous night, then the history merge.

What the nightly's final job does with the legs' artifacts (``xpubench matrix
--night ARTIFACTS --history DIR``): compare each machine's results of tonight
against its previous night in the history with its leg's policy
(:mod:`xpubench.regress.policy`), write one markdown table per machine, then add
tonight's files to the history. ``scripts/simulate_nights.py`` drives the same
functions.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from xpubench.errors import UserError
from xpubench.regress.compare import Comparison
from xpubench.regress.format import format_markdown
from xpubench.regress.levels import find_calibrations
from xpubench.regress.policy import GateBook, compare_night
from xpubench.results.reader import load_runs
from xpubench.results.run_view import Run


@dataclass
class MachineNight:
    """One machine's night: tonight's runs, its previous night, and the comparisons."""

    machine_id: str
    leg: str | None
    threshold: float
    alpha: float  # family-wise, for the whole night of this machine
    rule: str
    tonight: list[Run]
    previous: Run | None
    comparisons: list[Comparison] = field(default_factory=list)
    alpha_each: float | None = None  # what each comparison was tested at (Bonferroni)

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.is_regression]


def _load(paths: list[Path], what: str) -> list[Run]:
    if not paths:
        return []
    result = load_runs(paths, strict=False)
    for problem in result.problems:
        print(f"xpubench matrix: warning: {what}: left out {problem}", file=sys.stderr)
    return result.runs


def gate_night(artifacts: Path, history: Path, book: GateBook, *, with_ci: bool = True) -> list[MachineNight]:
    """Compare tonight's runs (under ``artifacts``) with each machine's previous night in ``history``.

    The previous night of a machine is its newest run in the history that started
    before tonight's first run and is not one of tonight's runs (a re-run of the
    final job finds tonight's files already merged). Threshold, rule and family-wise
    alpha are the leg's (:meth:`GateBook.policy_for`); a run of no known leg gets
    the book's default. Overrides from the command line come in the book
    (:meth:`GateBook.overridden`).
    """
    artifacts, history = Path(artifacts), Path(history)
    tonight = _load([artifacts] if artifacts.is_dir() else [], "tonight")
    if not tonight:
        raise UserError(f"{artifacts}: no results files from tonight's legs")
    past = _load([history] if history.is_dir() else [], "history")
    # a machine's calibration (`xpubench calibrate`, kept in history/<machine_id>/) is the noise
    # model of its single-process nights (docs/verdicts.md)
    noise = find_calibrations([history]) if history.is_dir() else None
    by_machine: dict[str, list[Run]] = {}
    for run in tonight:
        by_machine.setdefault(run.machine_id, []).append(run)
    out: list[MachineNight] = []
    for mid, runs in sorted(by_machine.items()):
        ids = {r.id for r in runs}
        first = min(r.sort_key for r in runs)
        earlier = [r for r in past if r.machine_id == mid and r.id not in ids and r.sort_key < first]
        previous = max(earlier, key=lambda r: r.sort_key) if earlier else None
        leg, policy = book.policy_for(runs, artifacts)
        night = MachineNight(mid, leg, policy.threshold, policy.alpha, policy.rule, runs, previous)
        if previous is not None:
            night.comparisons, night.alpha_each = compare_night(previous, runs, policy, with_ci=with_ci,
                                                                noise=noise)
        out.append(night)
    return out


def merge_into_history(runs: list[Run], history: Path) -> list[Path]:
    """Copy tonight's run files to ``history/<machine_id>/``; a file already there is kept."""
    added = []
    for run in runs:
        dest = Path(history) / run.machine_id / run.source.name
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run.source, dest)
        added.append(dest)
    return added


def night_markdown(nights: list[MachineNight]) -> str:
    """The job summary: one compare table per machine, regressions first."""
    total = sum(len(n.regressions) for n in nights)
    lines = ["## Nightly regression gate", "",
             f"**{total} regression(s)**" if total else "**No regressions**",
             "", "Each machine tonight against its previous night (`xpubench compare` with the leg's threshold; "
             "the leg's alpha is the chance of any false alarm in a machine's night, split evenly over its "
             "comparisons).", ""]
    for n in sorted(nights, key=lambda n: (not n.regressions, n.machine_id)):
        leg = f"leg `{n.leg}`" if n.leg else "no leg"
        lines.append(f"### {n.machine_id} · {leg} · threshold {n.threshold:.0%} · rule {n.rule} · "
                     f"alpha {n.alpha:g} per night")
        lines.append("")
        if n.previous is None:
            lines += ["First night of this machine in the history: nothing to compare.", ""]
            continue
        lines += [f"{n.previous.label} → {', '.join(r.label for r in n.tonight)}", ""]
        body = format_markdown(n.comparisons, threshold=n.threshold, alpha=n.alpha_each or n.alpha,
                               rule=n.rule).splitlines()
        if body and body[0].startswith("## "):
            body = body[1:]
        lines += body + [""]
    return "\n".join(lines).rstrip() + "\n"


def run_night(artifacts: Path, history: Path, book: GateBook, *, summary: Path | None = None) -> int:
    """Gate, print the markdown (and append it to ``summary``), then merge. Exit 1 on a regression."""
    nights = gate_night(artifacts, history, book)
    text = night_markdown(nights)
    print(text)
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(text)
    added = merge_into_history([r for n in nights for r in n.tonight], history)
    print(f"xpubench matrix: added {len(added)} run file(s) to {history}", file=sys.stderr)
    return 1 if any(n.regressions for n in nights) else 0

"""The history page: medians over run dates per machine and backend, with compare's or the gate's marks."""

from __future__ import annotations

from collections import defaultdict

from xpubench.regress import compare
from xpubench.regress.policy import compare_night
from xpubench.report.figures import Entry, HistoryPoint, Series
from xpubench.report.history_figure import history_lines
from xpubench.report.model import Model
from xpubench.report.page import HISTORY, Page, status_cell, table, td
from xpubench.report.records import attr, esc
from xpubench.results.run_view import Run
from xpubench.results.view import Key

Flag = tuple[str, float | None]  # verdict, ratio


def gate_flags(model: Model) -> dict[tuple[str, str, Key], Flag]:
    """(run id, machine, key) -> (verdict, ratio) of every change the nightly gate flags.

    Each run of a machine against that machine's previous run, with the policy the
    gate book gives that run (:meth:`GateBook.policy_for`) and :func:`compare_night`,
    the code of ``xpubench matrix --night``, so the page marks exactly what the gate flagged.
    """
    assert model.gate is not None
    by_machine: dict[str, list[Run]] = defaultdict(list)
    for run in model.runs:  # oldest first
        by_machine[run.machine_id].append(run)
    out: dict[tuple[str, str, Key], Flag] = {}
    for mid, runs in by_machine.items():
        for prev, run in zip(runs, runs[1:]):
            _, policy = model.gate.policy_for([run])
            comparisons, _ = compare_night(prev, [run], policy, with_ci=False)
            for c in comparisons:
                if c.verdict in compare.FLAG_VERDICTS:
                    out[(run.id, mid, (c.suite, c.case, c.mode, c.backend))] = (c.verdict, c.ratio)
    return out


def history_series(model: Model) -> dict[tuple[str, str, str], list[Series]]:
    """(suite, case, mode) -> one series per (machine, backend), flagged like `compare` would."""
    grouped: dict[tuple[str, str, str], dict[tuple[str, str], Series]] = defaultdict(dict)
    flags = gate_flags(model) if model.gate is not None else None
    for run in model.runs:  # oldest first
        if run.time is None:
            continue
        t_ms = int(run.time.timestamp() * 1000)
        for m in run.measurements:
            suite, case, mode, backend = m.key
            series = grouped[(suite, case, mode)].setdefault(
                (run.machine_id, backend), Series(f"{run.machine_id} · {backend}"))
            point = HistoryPoint(t_ms, Entry(m, run.machine_id, run.label), run.short_commit)
            flag = flags.get((run.id, run.machine_id, m.key)) if flags is not None else None
            if flag:
                point.flag, point.change = flag[0], (flag[1] - 1.0 if flag[1] else None)
            series.points.append(point)
    if flags is not None:
        return {k: sorted(v.values(), key=lambda s: s.label) for k, v in grouped.items()}
    for (suite, _, _), by_series in grouped.items():
        threshold = model.suite_thresholds.get(suite, model.threshold)
        for series in by_series.values():
            prev = None
            for p in series.points:
                if prev is not None and prev.entry.m.ok and p.entry.m.ok:
                    d = compare.judge(prev.entry.m, p.entry.m, threshold=threshold, rule=model.rule,
                                      one_process_supported=True)  # a history's marks: the rounds' test
                    if d.verdict in compare.FLAG_VERDICTS:
                        p.flag, p.change = d.verdict, (d.ratio - 1.0 if d.ratio else None)
                if p.entry.m.ok:
                    prev = p
    return {k: sorted(v.values(), key=lambda s: s.label) for k, v in grouped.items()}


def _marks_text(model: Model) -> str:
    """What the triangles of the history page mean, in one sentence."""
    if model.gate is not None:
        return ("Triangles mark points that the nightly gate (<code>xpubench matrix --night</code>) flags against "
                "the previous run of the same machine: each machine with its leg's threshold, rule and alpha "
                f"from <code>{esc(model.gate.source or 'the matrix definition')}</code>.")
    if model.rule == compare.CONFIDENT:
        how = f"significant and the whole 95% CI of the change beyond the {model.threshold:.0%} threshold"
    else:
        how = f"significant and beyond the {model.threshold:.0%} threshold"
    return ("Triangles mark points that <code>xpubench compare</code> flags against the previous run of the same "
            f"machine (rule {esc(model.rule)}: {how}).")


def history_page(model: Model) -> Page:
    page = Page(model, HISTORY, "History")
    dated = sum(1 for r in model.runs if r.time)
    page.add(f'<p class="lead">Median time per step of every case over {dated} runs, per machine and backend, '
             "with its 95% confidence band. " + _marks_text(model) + "</p>")
    if dated < len(model.runs):
        page.add(f'<p class="note">{len(model.runs) - dated} run(s) have no start time and are not plotted.</p>')
    series = history_series(model)
    flagged = 0
    for suite in model.suites:
        cards = []
        for (s, case, mode), ss in sorted(series.items()):
            if s != suite:
                continue
            name = ss[0].points[0].entry.m.case_name
            fig = history_lines(f"{esc(name)} · {esc(mode)}", ss)
            if fig is None:
                continue
            flagged += sum(1 for x in ss for p in x.points if p.flag == compare.REGRESSION)
            fig.search = f"{suite} {name} {mode} " + " ".join(x.label for x in ss)
            cards.append(page.figure(fig, wide=True))
        if cards:
            page.add(f'<section data-filter="{attr(suite)}"><h2>{esc(suite)}</h2><div class="grid">'
                     + "".join(cards) + "</div></section>")
    page.parts.insert(1, f'<p class="muted">{flagged} flagged regression point(s).</p>')
    # failures over all runs, grouped so hundreds of nights stay readable
    groups: dict[tuple, list[Run]] = defaultdict(list)
    names: dict[tuple, str] = {}
    for run in model.runs:
        for m in run.measurements:
            if not m.ok:
                k = (run.machine_id, *m.key, m.status, m.reason)
                groups[k].append(run)
                names[k] = m.case_name
    rows = []
    for k, runs in sorted(groups.items()):
        mid, suite, case, mode, backend, st, reason = k
        cells = (td(mid) + td(suite) + td(names[k]) + td(mode) + td(backend)
                 + status_cell(st) + td(reason, "reason") + td(len(runs), "num")
                 + td(runs[0].date_text) + td(runs[-1].date_text))
        rows.append((f"{mid} {suite} {case} {backend} {st} {reason}", cells))
    page.add(f"<h2>Not measured in any run ({sum(len(v) for v in groups.values())})</h2>"
             + table(["machine", "suite", "case", "mode", "backend", "status", "reason", "runs", "first", "last"],
                     rows, empty="Every case ran ok in every run."))
    return page

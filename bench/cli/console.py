"""Terminal output: the live progress of a run and the summary table at the end."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from xpubench.fmt import fmt_bytes, fmt_rate, fmt_time

STATUS_STYLE = {"ok": "green", "skipped": "dim", "oom": "red", "timeout": "red",
                "crashed": "red", "diverged": "yellow", "not_converged": "yellow", "error": "red"}


class RunDisplay:
    """A progress bar for the run plus one for the case in flight (running median)."""

    def __init__(self, total: int, budget_s: float, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
            console=self.console, transient=True, disable=not self.live,
        )
        self.total_task = self.progress.add_task("run", total=total, detail="")
        self.case_task = None
        self.budget_s = budget_s
        self.samples: list[float] = []
        self.case_label = ""

    def __enter__(self) -> "RunDisplay":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def case_started(self, case, spec) -> None:
        self.samples = []
        self.case_label = escape(f"{case.suite}/{case.case_id}:{case.mode} @ {spec}")
        self.t0 = time.monotonic()
        if self.case_task is not None:
            self.progress.remove_task(self.case_task)
        self.case_task = self.progress.add_task(self.case_label, total=None, detail="warming up")

    def case_round(self, rounds: int, sample_s: float) -> None:
        self.samples.append(sample_s)
        xs = sorted(self.samples)
        med = xs[len(xs) // 2]
        if self.case_task is not None:
            self.progress.update(self.case_task, detail=f"round {rounds}  median {fmt_time(med)}")

    def case_finished(self, rec: dict) -> None:
        self.progress.advance(self.total_task)
        label = escape(f"{rec['suite']}/{rec['case']}:{rec['mode']} @ {rec['backend']}")
        status = rec["status"]
        style = STATUS_STYLE.get(status, "")
        if status == "ok":
            t = rec["time_s"]
            line = (f"[{style}]ok[/]      {label}  {fmt_time(t['median'])} "
                    f"±{t['rel_ci'] * 100:.1f}%  {t['rounds']} rounds ({t['stop_reason']})")
        else:
            line = f"[{style}]{status:8}[/]{label}  {escape(rec.get('reason') or '')}"
        self.console.print(line, highlight=False, soft_wrap=True)


def summary_table(records: list[dict], title: str = "xpubench results") -> Table:
    """case x backend: median +/- CI, throughput, energy per unit, peak memory."""
    table = Table(title=title, show_lines=False, title_justify="left")
    for col, just in (("case", "left"), ("mode", "left"), ("backend", "left"), ("status", "left"),
                      ("median", "right"), ("±CI95", "right"), ("throughput", "right"),
                      ("J/unit", "right"), ("case peak mem", "right"), ("err vs fp32", "right")):
        table.add_column(col, justify=just, overflow="fold")
    for r in records:
        status = r["status"]
        style = STATUS_STYLE.get(status, "")
        if status == "ok":
            t = r["time_s"]
            energy = r.get("energy") or {}
            jpu = energy.get("joules_per_unit")
            jtxt = ("not measured" if jpu is None else f"{jpu:.3g}"
                    + (" est" if energy.get("method") == "estimate" else ""))
            mem = r.get("memory") or {}
            # the case's own peak: device memory where the device has its own, else host
            # memory above the baseline taken before the case was built
            dev, host = mem.get("device_peak_bytes"), mem.get("host_peak_bytes")
            peak = f"{fmt_bytes(dev)} dev" if dev else (f"{fmt_bytes(host)} host" if host is not None else "-")
            err = r.get("error_vs_fp32")
            table.add_row(escape(f"{r['suite']}/{r['case']}"), r["mode"], r["backend"], f"[{style}]ok[/]",
                          fmt_time(t["median"]), f"{t['rel_ci'] * 100:.1f}%",
                          fmt_rate(r.get("throughput_per_s"), r.get("unit", "")), jtxt,
                          peak, "-" if err is None else f"{err:.1e}")
        else:
            table.add_row(escape(f"{r['suite']}/{r['case']}"), r["mode"], r["backend"], f"[{style}]{status}[/]",
                          "-", "-", escape((r.get("reason") or "")[:60]), "-", "-", "-")
    return table


def twin_table(ratios: list[dict]) -> Table:
    """Twin backends of a case measured interleaved: time(other) / time(base) with its 95% CI."""
    table = Table(title="twin ratios (time other / base, measured interleaved)", title_justify="left")
    for col, just in (("case", "left"), ("mode", "left"), ("base", "left"), ("other", "left"),
                      ("ratio", "right"), ("95% CI", "right"), ("how", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for r in ratios:
        ci = r.get("ci95")
        table.add_row(escape(f"{r['suite']}/{r['case']}"), r["mode"], r["base"], r["other"], f"{r['ratio']:.3f}",
                      f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-", escape(r["method"]))
    return table


def status_counts_line(counts: dict[str, int], interrupted: bool) -> str:
    parts = [f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    return ("INTERRUPTED: " if interrupted else "") + (", ".join(parts) or "no measurements")


def stdout_console() -> Console:
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200)

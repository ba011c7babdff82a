"""The nightly CI hardware matrix: its definition, `xpubench matrix`, `run --leg`, and the nightly gate.

The definition is ``bench/ci/matrix.toml`` (or the file named by ``--file`` or the
environment variable ``XPUBENCH_MATRIX``): one ``[legs.NAME]`` table per leg,
keys it leaves out taken from ``[defaults]``. Users edit that one file; the
workflow asks ``xpubench matrix --github`` for its ``strategy.matrix`` and
``xpubench run --leg NAME`` runs a leg the way CI does, so nothing about a leg
is written twice.

The last part (:func:`gate_night`) is what the nightly's final job does with the
legs' artifacts: compare each machine's results of tonight against its previous
night in the history (``xpubench.regress.compare``, the leg's threshold and rule), then add tonight's
files to the history. ``scripts/simulate_nights.py`` drives the same functions.

Nothing here imports torch or jax; the plan and the GitHub JSON need only the
standard library.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from xpubench.errors import UserError
from xpubench.spec.registry import SIZES

if TYPE_CHECKING:
    from xpubench.options import RunOptions
    from xpubench.regress.compare import Comparison
    from xpubench.report.load import LoadedRun

DEFAULT_PATH = Path(__file__).with_name("matrix.toml")
ENV_VAR = "XPUBENCH_MATRIX"
# Each leg uploads its results as the artifact ARTIFACT_PREFIX + leg name; the
# final job finds the leg (and so its threshold) from that folder name.
ARTIFACT_PREFIX = "xpubench-"
# Family-wise significance of one machine's night when the definition names none.
DEFAULT_ALPHA = 0.01
# The gate's decision rule when the definition names none: a regression only when the
# whole 95% CI of the change lies beyond the threshold (xpubench.regress.compare, docs/nightly.md).
DEFAULT_RULE = "confident"
RULES = ("significant", "confident")  # as xpubench.regress.compare.RULES; not imported to keep this stdlib-only
# The confidence of compare's CI-overlap fallback, roughly: a fallback "significant"
# is trusted only when the per-comparison alpha is at least this.
FALLBACK_LEVEL = 0.01
# Minutes a leg job gets beyond its benchmark step: checkout, installs, upload.
JOB_OVERHEAD_MINUTES = 30

LEG_KEYS = {"description", "runs_on", "extras", "backends", "suites", "cases", "size", "time_budget_s",
            "threshold", "rule", "alpha", "machine_id", "timeout_minutes"}
DEFAULT_KEYS = LEG_KEYS - {"description", "runs_on", "backends"}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_EXTRA_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_MACHINE_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_BRACE_RE = re.compile(r"\{([^{}]*)\}")


# --------------------------------------------------------------------------- definition
@dataclass(frozen=True)
class Leg:
    """One leg of the matrix: one job on one runner."""

    name: str
    description: str
    runs_on: tuple[str, ...]
    extras: tuple[str, ...]
    backends: tuple[str, ...]  # expanded, canonical spec strings
    suites: tuple[str, ...]  # empty = all suites
    cases: tuple[str, ...]  # case-name globs; empty = every case of the suites
    size: str
    time_budget_s: float
    threshold: float  # fraction: 0.05 = 5%
    rule: str  # xpubench.regress.compare rule: "confident" (the whole CI beyond the threshold) or "significant"
    alpha: float  # family-wise significance of one machine's night (Bonferroni over its comparisons)
    machine_id: str  # "" = derived from the hardware
    timeout_minutes: int

    def run_args(self) -> list[str]:
        """The `xpubench run` arguments this leg stands for (what `--leg` fills in)."""
        out = [a for b in self.backends for a in ("-b", b)]
        out += [a for s in self.suites for a in ("-s", s)]
        out += [a for c in self.cases for a in ("-k", c)]
        return out + ["--size", self.size, "--time-budget", f"{self.time_budget_s:g}"]

    def github_entry(self) -> dict[str, Any]:
        """This leg's `strategy.matrix.include` entry: only what the leg job reads."""
        return {
            "leg": self.name,
            "runs_on": list(self.runs_on),
            "extras": " ".join(self.extras),
            "machine_id": self.machine_id,
            "backends": " ".join(self.backends),
            "timeout_minutes": self.timeout_minutes,
            "job_timeout_minutes": self.timeout_minutes + JOB_OVERHEAD_MINUTES,
        }


@dataclass(frozen=True)
class Matrix:
    path: Path
    legs: dict[str, Leg]
    default_threshold: float
    default_alpha: float
    default_rule: str = DEFAULT_RULE

    def leg(self, name: str) -> Leg:
        if name not in self.legs:
            raise UserError(f"unknown leg {name!r} in {self.path}; known legs: {', '.join(self.legs) or 'none'}")
        return self.legs[name]

    def github(self) -> dict[str, Any]:
        """The JSON the nightly workflow feeds to ``strategy.matrix``."""
        return {"include": [leg.github_entry() for leg in self.legs.values()]}


def matrix_path(path: str | Path | None = None) -> Path:
    """The definition file: the argument, else $XPUBENCH_MATRIX, else bench/ci/matrix.toml."""
    if path:
        return Path(path)
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env) if env else DEFAULT_PATH


def expand_braces(text: str) -> list[str]:
    """``torch:cuda:{fp32,bf16}`` -> ``torch:cuda:fp32``, ``torch:cuda:bf16`` (several braces multiply)."""
    m = _BRACE_RE.search(text)
    if not m:
        return [text]
    head, tail = text[:m.start()], text[m.end():]
    return [x for alt in m.group(1).split(",") for x in expand_braces(head + alt.strip() + tail)]


def parse_threshold(value: Any, where: str) -> float:
    """``"10%"`` or ``0.1`` -> 0.1."""
    text = str(value).strip()
    try:
        v = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        v = math.nan
    if isinstance(value, bool) or not 0 < v < 1:
        raise UserError(f"{where}: threshold {value!r} is not a fraction like \"5%\" or 0.05")
    return v


def parse_rule(value: Any, where: str) -> str:
    if value not in RULES:
        raise UserError(f"{where}: rule {value!r} is not one of {', '.join(repr(r) for r in RULES)}")
    return str(value)


def parse_alpha(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise UserError(f"{where}: alpha {value!r} is not a probability like 0.01")
    return float(value)


def _strings(value: Any, where: str, *, allow_str: bool = False) -> tuple[str, ...]:
    if allow_str and isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
        raise UserError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(x.strip() for x in value)


def _leg(name: str, raw: Mapping[str, Any], defaults: Mapping[str, Any], path: Path) -> Leg:
    from xpubench.backends.base import BackendSpec  # stdlib-only module: no framework import

    where = f"{path}: [legs.{name}]"
    if not _NAME_RE.match(name):
        raise UserError(f"{where}: a leg name is lower-case letters, digits, '-' and '_'")
    unknown = sorted(set(raw) - LEG_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(sorted(LEG_KEYS))}")
    v = {**defaults, **raw}
    for key in ("runs_on", "backends", "size", "time_budget_s", "threshold", "timeout_minutes"):
        if key not in v:
            raise UserError(f"{where}: missing {key} (and no default in [defaults])")
    runs_on = _strings(v["runs_on"], f"{where} runs_on", allow_str=True)
    if not runs_on:
        raise UserError(f"{where}: runs_on needs at least one runner label")
    extras = _strings(v.get("extras", []), f"{where} extras")
    for e in extras:
        if not _EXTRA_RE.match(e):
            raise UserError(f"{where}: extra {e!r} is not a pyproject extra name")
    specs: list[str] = []
    for text in _strings(v["backends"], f"{where} backends"):
        for one in expand_braces(text):
            try:
                spec = str(BackendSpec.parse(one))
            except UserError as e:
                raise UserError(f"{where}: {e}") from None
            if spec in specs:
                raise UserError(f"{where}: backend {spec} listed twice")
            specs.append(spec)
    if not specs:
        raise UserError(f"{where}: backends is empty")
    size = v["size"]
    if size not in SIZES:
        raise UserError(f"{where}: size {size!r}; accepted: {', '.join(SIZES)}")
    budget = v["time_budget_s"]
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise UserError(f"{where}: time_budget_s must be a positive number of seconds, got {budget!r}")
    timeout = v["timeout_minutes"]
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        raise UserError(f"{where}: timeout_minutes must be a positive integer, got {timeout!r}")
    machine_id = v.get("machine_id", "")
    if not isinstance(machine_id, str) or (machine_id and not _MACHINE_ID_RE.match(machine_id)):
        raise UserError(f"{where}: machine_id {machine_id!r}: letters, digits, '-', '_', '.' (or \"\")")
    description = v.get("description", "")
    if not isinstance(description, str):
        raise UserError(f"{where}: description must be a string")
    return Leg(name=name, description=description, runs_on=runs_on, extras=extras, backends=tuple(specs),
               suites=_strings(v.get("suites", []), f"{where} suites"),
               cases=_strings(v.get("cases", []), f"{where} cases"),
               size=size, time_budget_s=float(budget), threshold=parse_threshold(v["threshold"], where),
               rule=parse_rule(v.get("rule", DEFAULT_RULE), where),
               alpha=parse_alpha(v.get("alpha", DEFAULT_ALPHA), where),
               machine_id=machine_id, timeout_minutes=timeout)


def load_matrix(path: str | Path | None = None) -> Matrix:
    """Read and validate the definition; every mistake is one UserError line naming the file."""
    p = matrix_path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p}: no such matrix definition") from None
    except OSError as e:
        raise UserError(f"{p}: cannot read ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{p}: not valid TOML ({e})") from None
    unknown = sorted(set(doc) - {"defaults", "legs"})
    if unknown:
        raise UserError(f"{p}: unknown table(s) {', '.join(unknown)}; accepted: [defaults], [legs.NAME]")
    defaults = doc.get("defaults", {})
    legs = doc.get("legs", {})
    if not isinstance(defaults, dict) or not isinstance(legs, dict):
        raise UserError(f"{p}: [defaults] and [legs.NAME] must be tables")
    bad = sorted(set(defaults) - DEFAULT_KEYS)
    if bad:
        raise UserError(f"{p}: [defaults] cannot set {', '.join(bad)}; it can set {', '.join(sorted(DEFAULT_KEYS))}")
    if not legs:
        raise UserError(f"{p}: no legs; add a [legs.NAME] table")
    out: dict[str, Leg] = {}
    for name, raw in legs.items():
        if not isinstance(raw, dict):
            raise UserError(f"{p}: legs.{name} must be a table")
        out[name] = _leg(name, raw, defaults, p)
    default_threshold = parse_threshold(defaults.get("threshold", "5%"), f"{p}: [defaults]")
    default_alpha = parse_alpha(defaults.get("alpha", DEFAULT_ALPHA), f"{p}: [defaults]")
    default_rule = parse_rule(defaults.get("rule", DEFAULT_RULE), f"{p}: [defaults]")
    return Matrix(p, out, default_threshold, default_alpha, default_rule)


def github_json(matrix: Matrix) -> str:
    """One line (it goes into $GITHUB_OUTPUT as ``matrix=...``)."""
    return json.dumps(matrix.github(), separators=(",", ":"))


# --------------------------------------------------------------------------- run --leg
def leg_options(leg: Leg, given: Mapping[str, Any]) -> "RunOptions":
    """The options of ``xpubench run --leg NAME``: the leg's, with the options given on the
    command line winning (``given``: option name -> value, None where not given).

    A ``--size`` other than the leg's drops the leg's time budget too (that budget was
    chosen for the leg's size), so ``--leg cpu --size smoke`` is the quick version of
    the CPU leg. The machine id is not the leg's business here: CI passes ``--machine-id``.
    """
    from xpubench.options import RunOptions

    budget = leg.time_budget_s if given.get("size") in (None, leg.size) else None
    base = RunOptions(backends=leg.backends, suites=leg.suites, cases=leg.cases, size=leg.size,
                      time_budget_s=budget)
    return RunOptions.from_flags(given, base)


# --------------------------------------------------------------------------- plan
@dataclass
class LegHere:
    """Can this machine run a leg? (cheap: no framework import)"""

    available: list[str]
    missing: list[tuple[str, str]]  # (spec, reason)

    @property
    def verdict(self) -> str:
        if not self.missing:
            return "yes"
        return "partly" if self.available else "no"


def leg_here(leg: Leg) -> LegHere:
    from xpubench.backends.base import make_backend

    here = LegHere([], [])
    for spec in leg.backends:
        a = make_backend(spec).availability()
        if a.ok:
            here.available.append(spec)
        else:
            here.missing.append((spec, a.reason))
    return here


def _unknown_suites(matrix: Matrix) -> list[str]:
    """Suites the definition names that no suite module registers (checked for the plan view)."""
    from xpubench.spec import registry as specmod

    specmod.load_all()
    known = set(specmod.suites())
    return sorted({f"{leg.name}: {s}" for leg in matrix.legs.values() for s in leg.suites if s not in known})


def _missing_lines(missing: list[tuple[str, str]]) -> list[str]:
    """``torch:cuda:{fp32,bf16}: reason``: one line per framework:device and reason."""
    groups: dict[tuple[str, str], list[str]] = {}
    for spec, reason in missing:
        head, _, precision = spec.rpartition(":")
        groups.setdefault((head, reason), []).append(precision)
    return [f"{head}:{ps[0] if len(ps) == 1 else '{' + ','.join(ps) + '}'}: {reason}"
            for (head, reason), ps in groups.items()]


def print_plan(matrix: Matrix) -> None:
    from rich.markup import escape
    from rich.table import Table

    from xpubench.cli.console import stdout_console

    console = stdout_console()
    t = Table(title=f"nightly matrix ({matrix.path})", title_justify="left")
    for col in ("leg", "runs-on", "setup.sh", "backends", "suites", "size", "budget/case", "gate",
                "machine id", "here"):
        t.add_column(col)
    runnable = []
    for leg in matrix.legs.values():
        here = leg_here(leg)
        style = {"yes": "green", "partly": "yellow", "no": "red"}[here.verdict]
        why = "\n".join(_missing_lines(here.missing))
        t.add_row(leg.name, escape(", ".join(leg.runs_on)), " ".join(leg.extras) or "(cpu)",
                  "\n".join(leg.backends), ", ".join(leg.suites) or "all",
                  leg.size, f"{leg.time_budget_s:g} s", f"{leg.threshold:.0%} {leg.rule}",
                  leg.machine_id or "(hardware)",
                  f"[{style}]{here.verdict}[/]" + (f"\n{escape(why)}" if why else ""))
        if here.available:
            runnable.append(f"{leg.name} ({len(here.available)}/{len(leg.backends)} backends)")
    console.print(t)
    for problem in _unknown_suites(matrix):
        console.print(f"[red]unknown suite[/] {escape(problem)}")
    console.print("this machine can run: " + (", ".join(runnable) if runnable else "no leg")
                  + "   (xpubench run --leg NAME)")


# --------------------------------------------------------------------------- nightly gate
@dataclass
class MachineNight:
    """One machine's night: tonight's runs, its previous night, and the comparisons."""

    machine_id: str
    leg: str | None
    threshold: float
    alpha: float  # family-wise, for the whole night of this machine
    rule: str
    tonight: list["LoadedRun"]
    previous: "LoadedRun | None"
    comparisons: list["Comparison"] = field(default_factory=list)
    alpha_each: float | None = None  # what each comparison was tested at (Bonferroni)

    @property
    def regressions(self) -> list["Comparison"]:
        return [c for c in self.comparisons if c.is_regression]


_LEG_ARG_RE = re.compile(r"(?:^|\s)--leg[=\s]+(\S+)")


def leg_of_run(run: "LoadedRun", artifacts: Path, matrix: Matrix) -> str | None:
    """The leg a run of tonight belongs to, or None.

    From the artifact folder ``xpubench-<leg>/`` first (download-artifact nests each
    artifact in a folder of its name, except when a pattern matches just one, when it
    extracts flat), then the run's ``leg`` field, then ``--leg NAME`` in its command,
    then the leg whose fixed machine id it carries.
    """
    try:
        top = run.source.relative_to(artifacts).parts[0]
    except (ValueError, IndexError):
        top = ""
    if top.startswith(ARTIFACT_PREFIX) and top[len(ARTIFACT_PREFIX):] in matrix.legs:
        return top[len(ARTIFACT_PREFIX):]
    meta = run.data.get("run") if isinstance(run.data.get("run"), dict) else {}
    if isinstance(meta.get("leg"), str) and meta["leg"] in matrix.legs:
        return meta["leg"]
    m = _LEG_ARG_RE.search(str(meta.get("command") or ""))
    if m and m.group(1) in matrix.legs:
        return m.group(1)
    return next((leg.name for leg in matrix.legs.values() if leg.machine_id and leg.machine_id == run.machine_id),
                None)


def _load(paths: list[Path], what: str) -> list["LoadedRun"]:
    from xpubench.report.load import load_runs

    if not paths:
        return []
    result = load_runs(paths, strict=False)
    for problem in result.problems:
        print(f"xpubench matrix: warning: {what}: left out {problem}", file=sys.stderr)
    return result.runs


def compare_night(previous: "LoadedRun", tonight: list["LoadedRun"], threshold: float, alpha: float, *,
                  rule: str = DEFAULT_RULE, with_ci: bool = True) -> tuple[list["Comparison"], float]:
    """``xpubench compare PREVIOUS TONIGHT --rule RULE`` with the night's significance split over its comparisons.

    A machine's night holds dozens to hundreds of comparisons; testing each at 0.01
    raises about one false alarm per hundred from noise alone (the simulated nights
    show it). Bonferroni: each is tested at ``alpha / n`` so the whole night has at
    most ``alpha`` chance of a false "significant". The ``confident`` rule's 95% CI
    does not replace the split: without it one simulated month in seven still saw a
    noise alarm (docs/nightly.md). Returns (comparisons, alpha / n).
    """
    from xpubench.regress import compare

    base = compare.latest_measurements([previous])
    new = compare.latest_measurements(tonight)
    both_ok = sum(1 for k in base.keys() & new.keys()
                  if base[k].get("status", "ok") == "ok" and new[k].get("status", "ok") == "ok")
    each = alpha / max(both_ok, 1)
    comparisons = compare.compare_runs([previous], tonight, threshold, alpha=each, with_ci=with_ci, rule=rule)
    for c in comparisons:
        # With too few rounds for the rank test to reach ``each``, compare falls back to
        # "the 95% CIs do not overlap", a test near p = 0.01 whatever alpha is: it cannot
        # carry the night's split alpha, so such a change is reported, not gated.
        if c.method == "ci-overlap" and each < FALLBACK_LEVEL and c.verdict in (compare.REGRESSION,
                                                                                 compare.IMPROVEMENT):
            c.verdict = compare.INSIGNIFICANT
            c.note = (f"too few rounds ({c.base_rounds}/{c.new_rounds}) to test at the night's "
                      f"alpha {each:.2g}: not gated")
    return comparisons, each


def gate_night(artifacts: Path, history: Path, matrix: Matrix, *, threshold: float | None = None,
               alpha: float | None = None, rule: str | None = None, with_ci: bool = True) -> list[MachineNight]:
    """Compare tonight's runs (under ``artifacts``) with each machine's previous night in ``history``.

    The previous night of a machine is its newest run in the history that started
    before tonight's first run and is not one of tonight's runs (a re-run of the
    final job finds tonight's files already merged). Threshold, rule and family-wise
    alpha are the leg's (see :func:`leg_of_run`), unless given here; a run of no
    known leg gets the definition's defaults.
    """
    artifacts, history = Path(artifacts), Path(history)
    tonight = _load([artifacts] if artifacts.is_dir() else [], "tonight")
    if not tonight:
        raise UserError(f"{artifacts}: no results files from tonight's legs")
    past = _load([history] if history.is_dir() else [], "history")
    by_machine: dict[str, list[LoadedRun]] = {}
    for run in tonight:
        by_machine.setdefault(run.machine_id, []).append(run)
    out: list[MachineNight] = []
    for mid, runs in sorted(by_machine.items()):
        ids = {r.run_id for r in runs}
        first = min(r.sort_key for r in runs)
        earlier = [r for r in past if r.machine_id == mid and r.run_id not in ids and r.sort_key < first]
        previous = max(earlier, key=lambda r: r.sort_key) if earlier else None
        leg = next((lg for r in runs if (lg := leg_of_run(r, artifacts, matrix))), None)
        t = threshold if threshold is not None else (matrix.legs[leg].threshold if leg else matrix.default_threshold)
        a = alpha if alpha is not None else (matrix.legs[leg].alpha if leg else matrix.default_alpha)
        ru = rule if rule is not None else (matrix.legs[leg].rule if leg else matrix.default_rule)
        night = MachineNight(mid, leg, t, a, ru, runs, previous)
        if previous is not None:
            night.comparisons, night.alpha_each = compare_night(previous, runs, t, a, rule=ru, with_ci=with_ci)
        out.append(night)
    return out


def merge_into_history(runs: list["LoadedRun"], history: Path) -> list[Path]:
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
    from xpubench.regress.compare import format_markdown
    from xpubench.report.pages import run_label

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
        lines += [f"{run_label(n.previous)} → {', '.join(run_label(r) for r in n.tonight)}", ""]
        body = format_markdown(n.comparisons, threshold=n.threshold, alpha=n.alpha_each or n.alpha,
                               rule=n.rule).splitlines()
        if body and body[0].startswith("## "):
            body = body[1:]
        lines += body + [""]
    return "\n".join(lines).rstrip() + "\n"


def run_night(args: argparse.Namespace, matrix: Matrix) -> int:
    """`xpubench matrix --night ARTIFACTS --history DIR`: gate, then merge. Exit 1 on a regression."""
    nights = gate_night(Path(args.night), Path(args.history), matrix, threshold=args.threshold,
                        alpha=args.alpha, rule=getattr(args, "rule", None))
    text = night_markdown(nights)
    print(text)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as f:
            f.write(text)
    added = merge_into_history([r for n in nights for r in n.tonight], Path(args.history))
    print(f"xpubench matrix: added {len(added)} run file(s) to {args.history}", file=sys.stderr)
    return 1 if any(n.regressions for n in nights) else 0


# --------------------------------------------------------------------------- CLI
def _threshold_arg(text: str) -> float:
    try:
        return parse_threshold(text, "--threshold")
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _alpha_arg(text: str) -> float:
    try:
        return parse_alpha(float(text), "--alpha")
    except (UserError, ValueError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", dest="matrix_file", metavar="TOML",
                        help=f"matrix definition (default: ${ENV_VAR} or bench/ci/matrix.toml)")
    parser.add_argument("--github", action="store_true",
                        help="print the JSON the nightly workflow feeds to strategy.matrix (one line)")
    parser.add_argument("--night", metavar="ARTIFACTS",
                        help="nightly final job: compare tonight's legs (downloaded artifacts folder) "
                             "with each machine's previous night in --history, then add them to it; "
                             "exit 1 on a regression")
    parser.add_argument("--history", metavar="DIR", help="the results history (results/<machine_id>/...)")
    parser.add_argument("--summary", metavar="FILE",
                        help="append the markdown to FILE too (e.g. $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--threshold", type=_threshold_arg, metavar="PCT",
                        help="gate threshold for every machine (default: each leg's)")
    parser.add_argument("--alpha", type=_alpha_arg, metavar="P",
                        help="family-wise significance of a machine's night (default: each leg's)")
    parser.add_argument("--rule", choices=RULES, default=None,
                        help="what counts as a regression for every machine, as `xpubench compare --rule` "
                             "(default: each leg's)")


def run(args: argparse.Namespace) -> int:
    matrix = load_matrix(getattr(args, "matrix_file", None))
    if getattr(args, "night", None):
        if not args.history:
            raise UserError("--night needs --history DIR (the folder of earlier nights)")
        return run_night(args, matrix)
    if args.github:
        print(github_json(matrix))
        return 0
    print_plan(matrix)
    return 0


if __name__ == "__main__":  # `python -m xpubench.ci.matrix --github` works without installing xpubench
    _p = argparse.ArgumentParser(prog="python -m xpubench.ci.matrix")
    add_arguments(_p)
    try:
        sys.exit(run(_p.parse_args()))
    except UserError as _e:
        print(f"xpubench: error: {_e}", file=sys.stderr)
        sys.exit(2)

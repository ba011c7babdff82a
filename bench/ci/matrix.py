"""The nightly CI hardware matrix: its definition (legs), `xpubench matrix`, `run --leg`, and the leg's gate book.

The definition is ``bench/ci/matrix.toml`` (or the file named by ``--file`` or the
environment variable ``XPUBENCH_MATRIX``): one ``[legs.NAME]`` table per leg,
keys it leaves out taken from ``[defaults]``. Users edit that one file; the
workflow asks ``xpubench matrix --github`` for its ``strategy.matrix`` and
``xpubench run --leg NAME`` runs a leg the way CI does, so nothing about a leg
is written twice.

Each leg's gate policy (threshold, rule, alpha) comes out as a
:class:`xpubench.regress.policy.GateBook` (:meth:`Matrix.gate_book`); the nightly
gate itself (``--night``) is :mod:`xpubench.regress.gate`.

Nothing here imports torch or jax; the plan and the GitHub JSON need only the
standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from xpubench.errors import UserError
from xpubench.fmt import fraction_arg, parse_fraction
from xpubench.regress.compare import RULES
from xpubench.regress.policy import ARTIFACT_PREFIX  # noqa: F401  (the legs' artifact names: the workflow's)
from xpubench.regress.policy import DEFAULT_ALPHA, DEFAULT_RULE, DEFAULT_THRESHOLD, GateBook, GatePolicy
from xpubench.results.view import split_backend
from xpubench.spec.registry import SIZES

if TYPE_CHECKING:
    from xpubench.options import RunOptions

DEFAULT_PATH = Path(__file__).with_name("matrix.toml")
ENV_VAR = "XPUBENCH_MATRIX"
# Minutes a leg job gets beyond its benchmark step: checkout, installs, upload.
JOB_OVERHEAD_MINUTES = 30

LEG_KEYS = {"description", "runs_on", "extras", "backends", "suites", "cases", "size", "time_budget_s",
            "threshold", "rule", "alpha", "machine_id", "timeout_minutes", "world_sizes", "repeat"}
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
    world_sizes: tuple[int, ...] = ()  # distributed suite: `--world-size`; empty = the run's default
    repeat: int = 1  # fresh processes per case x backend: >= 2 lets the gate judge at the process level

    def run_args(self) -> list[str]:
        """The `xpubench run` arguments this leg stands for (what `--leg` fills in)."""
        out = [a for b in self.backends for a in ("-b", b)]
        out += [a for s in self.suites for a in ("-s", s)]
        out += [a for c in self.cases for a in ("-k", c)]
        if self.world_sizes:
            out += ["--world-size", ",".join(map(str, self.world_sizes))]
        out += ["--size", self.size, "--time-budget", f"{self.time_budget_s:g}"]
        return out + (["--repeat", str(self.repeat)] if self.repeat > 1 else [])

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

    def gate_book(self) -> GateBook:
        """Each leg's gate policy, the definition's default, and the legs' fixed machine ids."""
        return GateBook(GatePolicy(self.default_threshold, self.default_alpha, self.default_rule),
                        {name: GatePolicy(leg.threshold, leg.alpha, leg.rule) for name, leg in self.legs.items()},
                        {name: leg.machine_id for name, leg in self.legs.items() if leg.machine_id},
                        source=self.path.name)


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
    """``"10%"`` or ``0.1`` -> 0.1; a mistake is one UserError line naming ``where``."""
    try:
        return parse_fraction(value, "threshold")
    except ValueError as e:
        raise UserError(f"{where}: {e}") from None


def parse_rule(value: Any, where: str) -> str:
    if value not in RULES:
        raise UserError(f"{where}: rule {value!r} is not one of {', '.join(repr(r) for r in RULES)}")
    return str(value)


def parse_alpha(value: Any, where: str) -> float:
    """A probability like 0.01 (or "1%"): the chance of any false alarm in a machine's night."""
    try:
        return parse_fraction(value, "alpha")
    except ValueError as e:
        raise UserError(f"{where}: {e}") from None


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
    repeat = v.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise UserError(f"{where}: repeat must be a positive integer (processes per case), got {repeat!r}")
    description = v.get("description", "")
    if not isinstance(description, str):
        raise UserError(f"{where}: description must be a string")
    return Leg(name=name, description=description, runs_on=runs_on, extras=extras, backends=tuple(specs),
               suites=_strings(v.get("suites", []), f"{where} suites"),
               cases=_strings(v.get("cases", []), f"{where} cases"),
               size=size, time_budget_s=float(budget), threshold=parse_threshold(v["threshold"], where),
               rule=parse_rule(v.get("rule", DEFAULT_RULE), where),
               alpha=parse_alpha(v.get("alpha", DEFAULT_ALPHA), where),
               machine_id=machine_id, timeout_minutes=timeout, world_sizes=_world_sizes(v, where), repeat=repeat)


def _world_sizes(v: dict[str, Any], where: str) -> tuple[int, ...]:
    sizes = v.get("world_sizes", [])
    if not isinstance(sizes, list) or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in sizes):
        raise UserError(f"{where}: world_sizes must be a list of positive integers, got {sizes!r}")
    return tuple(sizes)


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
    default_threshold = parse_threshold(defaults.get("threshold", DEFAULT_THRESHOLD), f"{p}: [defaults]")
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
                      time_budget_s=budget, repeat=leg.repeat, **({"world_sizes": leg.world_sizes} if leg.world_sizes else {}))
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
        parts = split_backend(spec)
        groups.setdefault((f"{parts.framework}:{parts.device}", reason), []).append(parts.precision)
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


# --------------------------------------------------------------------------- CLI
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
    parser.add_argument("--threshold", type=fraction_arg("--threshold"), metavar="PCT",
                        help="gate threshold for every machine (default: each leg's)")
    parser.add_argument("--alpha", type=fraction_arg("--alpha"), metavar="P",
                        help="family-wise significance of a machine's night (default: each leg's)")
    parser.add_argument("--rule", choices=RULES, default=None,
                        help="what counts as a regression for every machine, as `xpubench compare --rule` "
                             "(default: each leg's)")


def run(args: argparse.Namespace) -> int:
    matrix = load_matrix(getattr(args, "matrix_file", None))
    if getattr(args, "night", None):
        if not args.history:
            raise UserError("--night needs --history DIR (the folder of earlier nights)")
        from xpubench.regress.gate import run_night

        book = matrix.gate_book().overridden(threshold=args.threshold, alpha=args.alpha,
                                             rule=getattr(args, "rule", None))
        return run_night(Path(args.night), Path(args.history), book,
                         summary=Path(args.summary) if args.summary else None)
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

"""The run options, defined once: `xpubench run` flags and pytest `--xpu-*` flags are generated from them.

Each field of :class:`RunOptions` carries its flag (spellings, help, how it parses) in
its metadata. ``add_cli_flags`` and ``add_pytest_flags`` turn those into argparse and
pytest options whose defaults are all ``None``: a value that is not ``None`` was given
on the command line, so ``RunOptions.from_flags`` can lay given values over a base
(the defaults, or a CI leg's options) without confusing an explicit ``--size default``
with no ``--size`` at all. Options reach worker processes as ``to_dict`` /
``from_dict``; nothing travels through the environment.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Mapping

from xpubench.errors import UserError
from xpubench.measure.timing import TimingConfig
from xpubench.spec.registry import SIZES

PYTEST_PREFIX = "--xpu-"


def fraction(text: str) -> float:
    """'1%' or '0.01' -> 0.01 (a fraction strictly between 0 and 1)."""
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        v = None
    if v is None or not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction like 1% or 0.01, got {text!r}")
    return v


def world_sizes(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4): positive integers."""
    try:
        sizes = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected world sizes like 1,2,4, got {text!r}")
    return sizes


def scaling_mode(text: str) -> str:
    if text not in ("weak", "strong"):
        raise argparse.ArgumentTypeError(f"expected weak or strong, got {text!r}")
    return text


@dataclass(frozen=True)
class Flag:
    """How one option is spelled and parsed on a command line."""

    names: tuple[str, ...]  # `xpubench run` spellings, long name first
    help: str
    action: str = "store"  # store | append | store_const
    type: Callable[[str], Any] | None = None
    metavar: str | None = None
    const: Any = None
    nargs: str | None = None
    in_pytest: bool = True  # also a pytest flag: --xpu-<long name>

    @property
    def pytest_name(self) -> str:
        return PYTEST_PREFIX + self.names[0].removeprefix("--")

    def argparse_kwargs(self, dest: str) -> dict[str, Any]:
        kw: dict[str, Any] = {"dest": dest, "default": None, "help": self.help, "action": self.action}
        for key in ("type", "metavar", "nargs"):
            if getattr(self, key) is not None:
                kw[key] = getattr(self, key)
        if self.action == "store_const" or self.nargs == "?":
            kw["const"] = self.const
        return kw


def option(default: Any, flag: Flag | None = None) -> Any:
    """A RunOptions field with its default and its flag (None: set in code only)."""
    return field(default=default, metadata={"flag": flag} if flag else {})


@dataclass(frozen=True)
class RunOptions:
    """What a run measures and how; one object for the CLI, the workers and pytest."""

    # what runs
    backends: tuple[str, ...] = option((), Flag(
        ("--backend", "-b"), "backend FRAMEWORK:DEVICE[INDEX]:PRECISION, e.g. torch:cpu:fp32, jax:gpu:bf16 "
        "(repeatable; default: every backend available here)", action="append", metavar="SPEC"))
    suites: tuple[str, ...] = option((), Flag(
        ("--suite", "-s"), "suite to run (repeatable; default: all)", action="append", metavar="NAME"))
    cases: tuple[str, ...] = option((), Flag(
        ("--case", "-k"), "case name glob, e.g. 'layernorm*' or 'normalization/*norm:forward' (repeatable)",
        action="append", metavar="GLOB"))
    size: str = option("default", Flag(
        ("--size",), "problem sizes and timing profile: smoke | default | large (default: default)",
        metavar="SIZE"))
    # how it is measured
    time_budget_s: float | None = option(None, Flag(
        ("--time-budget",), "seconds of timed rounds per case (default: 0.1 for smoke, 0.75 otherwise; "
        "energy meters may need longer)", type=float, metavar="S"))
    target_rel_ci: float = option(0.01, Flag(
        ("--target-ci",), "stop when the median's 95%% CI is within +/- this (default 1%%)",
        type=fraction, metavar="PCT"))
    min_rounds: int | None = option(None, Flag(
        ("--min-rounds",), "never stop before N timed rounds (default: 5 for smoke, 10 otherwise)",
        type=int, metavar="N"))
    case_timeout_s: float = option(600.0, Flag(
        ("--case-timeout",), "a case with no result after S seconds is recorded 'timeout' (default 600)",
        type=float, metavar="S", in_pytest=False))
    threads: int | None = option(None, Flag(
        ("--threads",), "CPU threads for the frameworks (default: theirs)", type=int, metavar="N"))
    telemetry: bool = option(True, Flag(
        ("--no-telemetry",), "skip the energy and host-memory meters", action="store_const", const=False))
    energy_estimate: bool = option(False, Flag(
        ("--energy-estimate",), "where no meter reads energy (no RAPL, no NVML), record a modelled CPU "
        "figure, labelled 'estimate' (default: energy is 'not measured' there)", action="store_const",
        const=True))
    cpu_tdp_w: float | None = option(None, Flag(
        ("--cpu-tdp",), "CPU TDP in watts for the energy estimate", type=float, metavar="W"))
    accuracy: bool = option(True, Flag(
        ("--no-accuracy",), "skip error_vs_fp32 for reduced precisions", action="store_const", const=False))
    cold_cache: bool = option(False, Flag(
        ("--cold-cache",), "CUDA: flush L2 before each timed call", action="store_const", const=True))
    torch_compile: str | None = option(None, Flag(
        ("--torch-compile",), "torch training cases through torch.compile (inductor; optional mode, e.g. "
        "max-autotune); compile time is recorded apart as compile_s", nargs="?", const="default",
        metavar="MODE"))
    # distributed suite (-s distributed): world sizes, scaling, torchrun's multi-node rendezvous
    world_sizes: tuple[int, ...] = option((1, 2), Flag(
        ("--world-size",), "distributed suite: ranks (devices) to run each case at, e.g. 1,2,4 (default 1,2)",
        type=world_sizes, metavar="W[,W...]", in_pytest=False))
    scaling: str = option("weak", Flag(
        ("--scaling",), "distributed suite: weak (batch per device, default) or strong (global batch split)",
        type=scaling_mode, metavar="weak|strong", in_pytest=False))
    nnodes: int = option(1, Flag(
        ("--nnodes",), "distributed suite: nodes taking part (torchrun's --nnodes; default 1)", type=int,
        metavar="N", in_pytest=False))
    node_rank: int = option(0, Flag(
        ("--node-rank",), "distributed suite: this node's rank (torchrun's --node-rank); node 0 writes "
        "the results", type=int, metavar="R", in_pytest=False))
    rdzv_endpoint: str | None = option(None, Flag(
        ("--rdzv-endpoint",), "distributed suite: HOST:PORT of node 0 (torchrun's --rdzv-endpoint)",
        metavar="HOST:PORT", in_pytest=False))
    # verdicts you can trust (docs/verdicts.md)
    repeat: int = option(1, Flag(
        ("--repeat",), "measure each case x backend in K fresh worker processes; the record's median and CI "
        "then account for the spread between processes (default 1)", type=int, metavar="K", in_pytest=False))
    seed: int | None = option(None, Flag(
        ("--seed",), "seed of the interleaved order of backends per case (default: random, recorded)",
        type=int, metavar="N", in_pytest=False))
    inject_slowdown: tuple[str, ...] = option((), Flag(
        ("--inject-slowdown",), "FOR VALIDATION ONLY: busy-wait PCT of the step's own time after each call of "
        "the cases matching GLOB, inside the timed region (repeatable; the record says so), e.g. "
        "'normalization/layernorm*=10%%'", action="append", metavar="GLOB=PCT"))
    # the pass of the interleaved plan a worker measures (set by the supervisor; no flag):
    # a convergence case trains from this seed, so --repeat K gives K seeds
    pass_index: int = option(0)
    # address space a worker may add after setup (tests); no flag
    memory_limit_bytes: int | None = option(None)

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise UserError(f"unknown size {self.size!r}; accepted: {', '.join(SIZES)}")
        for name in ("backends", "suites", "cases", "world_sizes", "inject_slowdown"):  # lists from argparse, tuples here
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))
        if self.repeat < 1:
            raise UserError(f"--repeat {self.repeat}: expected at least 1 process per case x backend")
        from xpubench.measure.inject import parse_injection

        for text in self.inject_slowdown:
            try:
                parse_injection(text)
            except ValueError as e:
                raise UserError(str(e)) from None

    @classmethod
    def from_flags(cls, given: Mapping[str, Any], base: "RunOptions | None" = None) -> "RunOptions":
        """``base`` (default: the defaults) with every option ``given`` that is not None."""
        names = {f.name for f in fields(cls)}
        return replace(base or cls(), **{k: v for k, v in given.items() if k in names and v is not None})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunOptions":
        """The inverse of ``to_dict`` (worker processes receive options this way)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def timing_config(self) -> TimingConfig:
        cfg = TimingConfig.smoke() if self.size == "smoke" else TimingConfig()
        if self.time_budget_s is not None:
            cfg.time_budget_s = self.time_budget_s
        if self.min_rounds is not None:
            cfg.min_rounds = self.min_rounds
        cfg.target_rel_ci = self.target_rel_ci
        return cfg


def flags() -> list[tuple[str, Flag]]:
    """(field name, flag) of every option that has one, in declaration order."""
    return [(f.name, f.metadata["flag"]) for f in fields(RunOptions) if "flag" in f.metadata]


def add_cli_flags(parser: argparse.ArgumentParser) -> None:
    """The `xpubench run` flags; each one's dest is its RunOptions field."""
    for name, flag in flags():
        parser.add_argument(*flag.names, **flag.argparse_kwargs(name))


def given_cli_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line (None: not given)."""
    return {name: getattr(args, name, None) for name, _ in flags()}


def xpu_dest(name: str) -> str:
    return f"xpu_{name}"


def add_pytest_flags(group: Any) -> None:
    """The same options as pytest flags (``--xpu-backend``, ``--xpu-size``, ...) on ``group``
    (a pytest OptionGroup)."""
    for name, flag in flags():
        if flag.in_pytest:
            group.addoption(flag.pytest_name, **flag.argparse_kwargs(xpu_dest(name)))


def given_pytest_options(config: Any) -> dict[str, Any]:
    """The options given as pytest flags (None: not given)."""
    return {name: config.getoption(xpu_dest(name)) for name, flag in flags() if flag.in_pytest}


"""Workloads, cases and the registry.

A *workload* is declared once, framework-neutral: its suite, name, modes, unit of
work, parameters per size, and the analytic work one step does. Each framework
attaches a builder (``@workload.builder("torch")``) in the suite module, side by
side. A *case* is a workload at one size and one mode.

Suite modules import no framework at import time; builders import lazily.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from xpubench.errors import UserError

SIZES = ("smoke", "default", "large")
LATENCY_PARAM = "latency"  # a case parameter: measured per call, latency percentiles recorded
DATA_PARALLEL_MODE = "dp_train_step"  # the distributed suite's: its ranks run in processes of their own
MODES = ("forward", "forward_backward", "step", "train_step", "inference", "train_to_target", DATA_PARALLEL_MODE)

# Suite modules shipped with xpubench; more can be added with the environment
# variable XPUBENCH_SUITE_MODULES (comma-separated import paths), which the worker
# processes inherit, e.g. for a test-only suite.
BUILTIN_SUITE_MODULES = (
    "xpubench.suites.normalization",
    "xpubench.suites.dropout",
    "xpubench.suites.optimizers",
    "xpubench.suites.training",
    "xpubench.suites.inference",
    "xpubench.suites.convergence",
    "xpubench.suites.distributed",
)


# The kind of FLOPs a step does, which decides the roof they are held against:
# matmul/conv FLOPs against the device's matmul roof, element-wise and reduction
# FLOPs (normalization, dropout, optimizer updates) against its vector roof.
MATMUL = "matmul"
VECTOR = "vector"
FLOPS_KINDS = (MATMUL, VECTOR)

# Bytes per element of the dtype a precision mode moves its activations in.
ELEMENT_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}


@dataclass(frozen=True)
class Work:
    """What one step does: units of work, FLOPs (and their kind) and bytes moved.

    Bytes come in two parts: ``bytes`` in dtypes fixed whatever the precision (fp32
    master weights and optimizer state, 1-byte masks), and ``elements`` moved in the
    precision's compute dtype (activations), counted at its size by ``bytes_at``.
    ``working_set_*`` are the distinct bytes/elements a step touches (for whether it
    fits in cache); unset, the working set is taken as everything moved (an upper
    bound). None = unknown.
    """

    units: float
    flops: float | None = None
    bytes: float | None = None
    flops_kind: str = MATMUL
    elements: float | None = None
    working_set_bytes: float | None = None
    working_set_elements: float | None = None

    def __post_init__(self) -> None:
        if self.flops_kind not in FLOPS_KINDS:
            raise ValueError(f"unknown flops_kind {self.flops_kind!r}; known: {', '.join(FLOPS_KINDS)}")

    def bytes_at(self, precision: str) -> float | None:
        """Bytes moved per step when activations are in ``precision``'s dtype."""
        return _at(self.bytes, self.elements, precision)

    def working_set_at(self, precision: str) -> float | None:
        if self.working_set_bytes is None and self.working_set_elements is None:
            return self.bytes_at(precision)
        return _at(self.working_set_bytes, self.working_set_elements, precision)

    def record_fields(self, precision: str) -> dict[str, Any]:
        """The work fields of a results record for a backend at ``precision``."""
        return {"units_per_step": self.units, "flops_per_step": self.flops,
                "flops_kind": self.flops_kind if self.flops is not None else None,
                "bytes_per_step": self.bytes_at(precision),
                "working_set_bytes": self.working_set_at(precision),
                "bytes_element_size": ELEMENT_BYTES.get(precision) if self.elements is not None else None}


def _at(fixed: float | None, elements: float | None, precision: str) -> float | None:
    if elements is None:
        return fixed
    return (fixed or 0.0) + elements * ELEMENT_BYTES.get(precision, 4)


WorkFn = Callable[[Mapping[str, Any], str], Work]


@dataclass(eq=False)
class Workload:
    suite: str
    name: str
    modes: tuple[str, ...]
    unit: str
    sizes: Mapping[str, Mapping[str, Any]]
    work: WorkFn
    description: str = ""
    # Precision modes that make sense (e.g. int8 only for inference); None = the
    # floating-point modes fp32/tf32/bf16/fp16 (and fp8 where the workload opts in).
    precisions: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16")
    # Variants of one workload (e.g. dropout p=0.1 and p=0.5): each dict is merged
    # into the size's parameters and becomes its own case. A mapping from size to a
    # tuple gives each size its own list (sizes it lacks take the "*" entry, else none
    # beyond the plain case), so a default run can take a subset of what smoke covers.
    variants: tuple[Mapping[str, Any], ...] | Mapping[str, tuple[Mapping[str, Any], ...]] = ({},)
    # Inference workloads: besides the throughput cases, one latency case per variant at
    # this batch (params batch=<it>, latency=True), each call timed on its own.
    latency_batch: int | None = None
    # Opt-in workloads (training to a target takes minutes) run only when their suite is
    # named (``-s convergence``), not in a plain run of every suite.
    opt_in: bool = False
    builders: dict[str, Callable] = field(default_factory=dict)
    module: str = ""  # the suite module that declared it

    def builder(self, framework: str) -> Callable[[Callable], Callable]:
        def register(fn: Callable) -> Callable:
            self.builders[framework] = fn
            return fn

        return register

    def cases(self, size: str) -> list["Case"]:
        params = self.sizes.get(size)
        if params is None:  # a workload without this size is not offered there
            return []
        variants = self.variants
        if isinstance(variants, Mapping):
            variants = variants.get(size, variants.get("*", ({},)))
        cases = [Case(self, size, mode, {**v, **params}) for v in variants for mode in self.modes]
        if self.latency_batch is not None:
            cases += [Case(self, size, mode, {**v, **params, "batch": self.latency_batch, LATENCY_PARAM: True})
                      for v in variants for mode in self.modes]
        return cases


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        return "x".join(_fmt(x) for x in v)
    return str(v)


@dataclass(frozen=True, eq=False)
class Case:
    workload: Workload
    size: str
    mode: str
    params: Mapping[str, Any]

    @property
    def suite(self) -> str:
        return self.workload.suite

    @property
    def name(self) -> str:
        return self.workload.name

    @property
    def case_id(self) -> str:
        """``layernorm[b=8,t=512,d=768]``: the name with its parameters."""
        inner = ",".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{self.name}[{inner}]"

    @property
    def full_name(self) -> str:
        return f"{self.suite}/{self.case_id}:{self.mode}"

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What a worker process needs to find this case again."""
        return (self.suite, self.name, self.mode, self.size)

    @property
    def latency(self) -> bool:
        """Measured call by call for latency percentiles (see Workload.latency_batch)."""
        return bool(self.params.get(LATENCY_PARAM))

    @property
    def work(self) -> Work:
        return self.workload.work(self.params, self.mode)

    @property
    def unit(self) -> str:
        return self.workload.unit


_REGISTRY: dict[tuple[str, str], Workload] = {}
_LOADED = False


def register(workload: Workload) -> Workload:
    key = (workload.suite, workload.name)
    old = _REGISTRY.get(key)
    # The same module executed again (a reload, pytester restoring sys.modules)
    # re-declares its workloads: the new ones win. Two modules, one name: a bug.
    if old is not None and old is not workload and old.module != workload.module:
        raise ValueError(f"workload {workload.suite}/{workload.name} declared twice "
                         f"({old.module or '?'} and {workload.module or '?'})")
    for mode in workload.modes:
        if mode not in MODES:
            raise ValueError(f"{workload.name}: unknown mode {mode!r}")
    _REGISTRY[key] = workload
    return workload


def workload(**kwargs: Any) -> Workload:
    """Declare and register a workload (used by suite modules)."""
    kwargs.setdefault("module", sys._getframe(1).f_globals.get("__name__", ""))
    return register(Workload(**kwargs))


def suite_modules() -> list[str]:
    extra = [m.strip() for m in os.environ.get("XPUBENCH_SUITE_MODULES", "").split(",") if m.strip()]
    return list(BUILTIN_SUITE_MODULES) + extra


def load_all() -> dict[tuple[str, str], Workload]:
    global _LOADED
    if not _LOADED:
        for mod in suite_modules():
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name != mod:  # a suite that exists but fails to import is a bug
                    raise
        _LOADED = True
    return _REGISTRY


def suites() -> list[str]:
    return sorted({w.suite for w in load_all().values()})


def all_cases(size: str) -> list[Case]:
    return [c for w in load_all().values() for c in w.cases(size)]


def _matches(case: Case, pattern: str) -> bool:
    names = (case.name, f"{case.suite}/{case.name}", case.case_id, case.full_name,
             f"{case.name}:{case.mode}", f"{case.suite}/{case.name}:{case.mode}")
    return any(fnmatch.fnmatchcase(n, pattern) for n in names)


def select(
    suites_: list[str] | None = None,
    patterns: list[str] | None = None,
    size: str = "default",
) -> list[Case]:
    """Cases by suite and by name glob; a name that matches nothing is a user error."""
    if size not in SIZES:
        raise UserError(f"unknown size {size!r}; accepted: {', '.join(SIZES)}")
    load_all()
    known = suites()
    for s in suites_ or []:
        if s not in known:
            raise UserError(f"unknown suite {s!r}; accepted: {', '.join(known)}")
    cases = [c for c in all_cases(size) if (c.suite in suites_ if suites_ else not c.workload.opt_in)]
    if patterns:
        for p in patterns:
            if not any(_matches(c, p) for c in cases):
                names = sorted({f"{c.suite}/{c.name}" for c in cases})
                raise UserError(
                    f"no case matches {p!r}; cases are e.g. {', '.join(names[:8])}"
                    + (" ..." if len(names) > 8 else "")
                    + " (see `xpubench list`)"
                )
        cases = [c for c in cases if any(_matches(c, p) for p in patterns)]
    return cases


def find(key: tuple[str, str, str, str], params: Mapping[str, Any] | None = None) -> Case:
    suite, name, mode, size = key
    w = load_all().get((suite, name))
    if w is None:
        raise KeyError(f"{suite}/{name}")
    return Case(w, size, mode, dict(params if params is not None else w.sizes[size]))

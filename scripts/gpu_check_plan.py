"""What the GPU check runs: its stages, the case runs of each, and their cost on one H200.

The plan is read off the suite registry, so a new suite or workload is planned (and
counted) without edits here. ``--dry-run`` keeps the stages and their commands, swaps the
devices for their CPU twins at smoke size, and narrows each run stage to its first case:
it checks the script, not the suites (their own tests do).
"""

from __future__ import annotations

import glob
import shlex
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

MODEL_SUITES = ("training", "inference")  # whole networks: their energy per sample is worth a window
LATE_SUITES = ("convergence",)  # long by nature: after the rest, fp32 only, on what time is left
DISTRIBUTED_SUITE = "distributed"
GPU_TORCH_PRECISIONS = ("fp32", "tf32", "bf16", "fp16")  # fp8 joins where a workload offers it
GPU_JAX_PRECISIONS = ("fp32", "bf16")
CUDA_ONLY = ("tf32", "fp8")  # no CPU twin in the dry run

# JAX on a GPU gives every case a fresh worker (XLA's peak-memory counter cannot be reset),
# so each case pays a worker start and an XLA compile (twice for reduced precisions: the
# fp32 twin for error_vs_fp32). The check measures this subset on JAX: each workload
# kind once, the networks in both precisions.
JAX_CASES = {
    "fp32": ("normalization/layernorm:forward_backward", "dropout/dropout:forward_backward",
             "optimizers/flat", "training/mnist_cnn", "training/gpt",
             "inference/mnist_cnn[[]variant=dense*"),
    "bf16": ("normalization/layernorm:forward_backward", "training/mnist_cnn", "training/gpt"),
}
# TF32 changes only matrix products and convolutions, which the kernel suites (normalization,
# dropout: none; optimizers: fp32 only) do not have: tf32 runs on the networks alone.
KERNEL_PRECISIONS_SKIPPED = ("tf32",)

# ---- cost on one H200 (seconds), from the code's budgets and windows; see docs/gpu.md
TIME_BUDGET_S = 0.3  # --time-budget of the run stages (a steady GPU kernel meets the 1% CI sooner)
CASE_TIMEOUT_S = 120.0  # one hung case must not eat its stage (the default is 600 s)
ENERGY_WINDOW_S = 2.0  # telemetry on: max(1 s, 20 x NVML counter period); ~100 ms on A100/H100
WARMUP_S = {"kernel": 0.2, "model": 0.5}  # TimingConfig: 0.05 s minimum, 0.5 s at most
BUILD_S = {"kernel": 0.3, "model": 0.6}  # seeded inputs / model on the device, first call, IPC
ACCURACY_S = {"kernel": 0.2, "model": 0.5}  # torch: the fp32 twin built and checked
TORCH_WORKER_S = 6.0  # per backend per run: spawn, import torch, CUDA context, cuBLAS/cuDNN
JAX_WORKER_S = 5.0  # per case: spawn, import jax, GPU client, NVML and its counter period (0.3 s)
JAX_COMPILE_S = {"kernel": 1.0, "model": 4.0}  # XLA compile with autotuning
RUN_PARENT_S = 2.0  # per `xpubench run`: start, fingerprint, roofline, file writes
FIXED_STAGE_S = {"install": 15.0, "env": 5.0, "tests": 35.0, "probe": 40.0, "report": 20.0}


@dataclass(frozen=True)
class Mode:
    """Where the check runs: a lent GPU, or the CPU twins of the same stages."""

    dry_run: bool

    @property
    def size(self) -> str:
        return "smoke" if self.dry_run else "default"

    def device(self, framework: str) -> str:
        return "cpu" if self.dry_run else {"torch": "cuda", "jax": "gpu"}[framework]

    def specs(self, framework: str, precisions: Iterable[str]) -> list[str]:
        keep = [p for p in precisions if not (self.dry_run and p in CUDA_ONLY)]
        return [f"{framework}:{self.device(framework)}:{p}" for p in keep]


@dataclass
class Stage:
    """One timed step: a command, its own limit, and what it is expected to cost."""

    name: str
    argv: list[str] | None  # None: not run here (see skip)
    cap_s: float  # its own limit; the check's deadline may cut it shorter
    expect_s: float  # on one H200
    runs: int = 0  # case runs it measures (run stages)
    skip: str | None = None  # why it does not run
    note: str = ""

    def command(self) -> str:
        return shlex.join(self.argv) if self.argv else ""


@dataclass
class RunSelection:
    """One `xpubench run`: backends x cases, with or without the energy window."""

    specs: list[str]
    suites: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    telemetry: bool = False

    def argv(self, py: list[str], mode: Mode, results: str, extra: list[str]) -> list[str]:
        out = py + ["-m", "xpubench", "run", "--size", mode.size, "--out", results,
                    "--case-timeout", f"{CASE_TIMEOUT_S:g}"]
        if not mode.dry_run:
            out += ["--time-budget", str(TIME_BUDGET_S)]
        for s in self.specs:
            out += ["-b", s]
        for s in self.suites:
            out += ["-s", s]
        for p in self.patterns:
            out += ["-k", p]
        if not self.telemetry:
            out.append("--no-telemetry")
        return out + extra


def _kind(case: Any) -> str:
    return "model" if case.suite in MODEL_SUITES else "kernel"


def applicable(case: Any, spec: str) -> bool:
    """Would the backend run this case (framework builder and precision), as Backend.skip_reason says."""
    framework, _, precision = spec.split(":")
    return case.workload.builders.get(framework) is not None and precision in case.workload.precisions


def case_cost(spec: str, kind: str, telemetry: bool) -> float:
    framework, _, precision = spec.split(":")
    window = max(TIME_BUDGET_S, ENERGY_WINDOW_S) if telemetry else TIME_BUDGET_S
    reduced = precision != "fp32"
    if framework == "jax":
        compile_s = JAX_COMPILE_S[kind] * (2 if reduced else 1)
        return JAX_WORKER_S + compile_s + WARMUP_S[kind] + window
    return BUILD_S[kind] + WARMUP_S[kind] + window + (ACCURACY_S[kind] if reduced else 0.0)


def selection_cost(sel: RunSelection, registry: Any, size: str) -> tuple[int, float]:
    """(case runs, seconds on one H200) of one `xpubench run`."""
    cases = registry.select(sel.suites or None, sel.patterns or None, size)
    runs, seconds = 0, RUN_PARENT_S
    for spec in sel.specs:
        mine = [c for c in cases if applicable(c, spec)]
        if spec.startswith("torch:") and mine:
            seconds += TORCH_WORKER_S  # one worker per backend, reused across its cases
        runs += len(mine)
        seconds += sum(case_cost(spec, _kind(c), sel.telemetry) for c in mine)
    return runs, seconds


def run_selections(mode: Mode, registry: Any) -> list[tuple[str, RunSelection, float, str]]:
    """(stage name, selection, own limit, note) for the measuring stages, in priority order."""
    workloads = registry.load_all().values()
    suites = registry.suites()
    torch_precisions = list(GPU_TORCH_PRECISIONS)
    if any("fp8" in w.precisions and "torch" in w.builders for w in workloads):
        torch_precisions.append("fp8")
    kernels = [s for s in suites if s not in MODEL_SUITES + LATE_SUITES + (DISTRIBUTED_SUITE,)]
    models = [s for s in MODEL_SUITES if s in suites]
    energy_pair = mode.specs("torch", ("fp32", "bf16"))
    rest = [s for s in mode.specs("torch", torch_precisions) if s not in energy_pair]
    out = [
        ("torch-models", RunSelection(energy_pair, models, telemetry=True), 120.0,
         "networks with the NVML energy window"),
        ("torch-kernels", RunSelection(mode.specs("torch", [p for p in torch_precisions
                                                            if p not in KERNEL_PRECISIONS_SKIPPED]), kernels),
         150.0, "time and memory; energy skipped (a 2 s window per us-scale kernel)"),
    ]
    if rest:
        out.append(("torch-models-more", RunSelection(rest, models), 60.0, "networks, time and memory"))
    for precision in GPU_JAX_PRECISIONS:
        spec = mode.specs("jax", (precision,))
        out.append((f"jax-{precision}", RunSelection(spec, patterns=list(JAX_CASES[precision])), 120.0,
                    "a subset: a fresh worker and an XLA compile per case"))
    late = [s for s in LATE_SUITES if s in suites]
    if late:
        out.append(("late-suites", RunSelection(mode.specs("torch", ("fp32",)) + mode.specs("jax", ("fp32",)),
                                                late), 90.0, "fp32, on the time left"))
    return out


def check_patterns(registry: Any, mode: Mode) -> list[str]:
    """Problems with JAX_CASES here: a pattern that no JAX case of its precision answers."""
    problems = []
    for precision, patterns in JAX_CASES.items():
        spec = f"jax:cpu:{precision}"
        for p in patterns:
            try:
                cases = registry.select(None, [p], mode.size)
            except Exception as exc:  # noqa: BLE001 - the registry's one-line UserError: no case matches
                problems.append(f"JAX_CASES[{precision!r}] pattern {p!r}: {exc}")
                continue
            if not any(applicable(c, spec) for c in cases):
                problems.append(f"JAX_CASES[{precision!r}] pattern {p!r} matches no JAX {precision} case")
    return problems


def first_case(sel: RunSelection, registry: Any, size: str) -> list[str]:
    """The dry run's narrowing: an exact-name pattern for the selection's first runnable case."""
    for case in registry.select(sel.suites or None, sel.patterns or None, size):
        if any(applicable(case, spec) for spec in sel.specs):
            return [glob.escape(case.full_name)]
    raise ValueError(f"no case of {sel} runs on its backends")


def measuring_stages(mode: Mode, registry: Any, py: list[str], results: str,
                     extra: list[str]) -> list[Stage]:
    stages = []
    for name, sel, cap, note in run_selections(mode, registry):
        if mode.dry_run:
            sel = replace(sel, patterns=first_case(sel, registry, mode.size))
        runs, expect = selection_cost(sel, registry, mode.size)
        stages.append(Stage(name, sel.argv(py, mode, results, extra), cap, 0.0 if mode.dry_run else expect,
                            runs, note=note))
    return stages


def distributed_stage(mode: Mode, registry: Any, py: list[str], results: str, extra: list[str],
                      run_help: Callable[[], str]) -> Stage:
    """The distributed suite at world size 1, where the suite exists."""
    if DISTRIBUTED_SUITE not in registry.suites():
        return Stage("distributed", None, 0, 0, skip="no distributed suite in this checkout")
    sel = RunSelection(mode.specs("torch", ("fp32",)), [DISTRIBUTED_SUITE])
    flags = ["--world-size", "1"] if "--world-size" in run_help() else []
    if mode.dry_run:
        sel = replace(sel, patterns=first_case(sel, registry, mode.size))
    runs, expect = selection_cost(sel, registry, mode.size)
    return Stage("distributed", sel.argv(py, mode, results, extra + flags), 90.0,
                 0.0 if mode.dry_run else expect, runs,
                 note="world size 1" if flags else "the suite's own world size (no --world-size flag)")

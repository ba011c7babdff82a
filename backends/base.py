"""The Backend protocol, backend specs and the step a builder returns.

A backend is ``framework:device:precision``: ``torch:cpu:fp32``, ``torch:cuda:bf16``
(device 0), ``torch:cuda1:bf16`` (device 1), ``jax:tpu:bf16``. Adding a framework
is one new module plus one line in ``FRAMEWORKS``.
"""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from xpubench.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from xpubench.spec.registry import Case

PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "int8", "fp8")

# framework -> (module:class, devices it knows)
FRAMEWORKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "torch": ("xpubench.backends.torch.backend:TorchBackend", ("cpu", "cuda")),
    "jax": ("xpubench.backends.jax.backend:JaxBackend", ("cpu", "gpu", "tpu")),
    # Until backends come from the `xpubench.backends` entry points (pyproject.toml).
    "onnxruntime": ("xpubench.backends.onnxruntime.backend:OrtBackend", ("cpu", "cuda")),
}

_DEVICE_RE = re.compile(r"^([a-z]+)(\d*)$")


@dataclass(frozen=True)
class BackendSpec:
    framework: str
    device: str
    precision: str
    index: int | None = None  # None = the device's first (index 0)

    def __str__(self) -> str:
        idx = "" if self.index is None else str(self.index)
        return f"{self.framework}:{self.device}{idx}:{self.precision}"

    @property
    def device_index(self) -> int:
        return self.index or 0

    def with_precision(self, precision: str) -> "BackendSpec":
        return replace(self, precision=precision)

    @classmethod
    def parse(cls, text: str) -> "BackendSpec":
        accepted = (
            "accepted: FRAMEWORK:DEVICE[INDEX]:PRECISION with "
            + "; ".join(f"{fw} devices {'/'.join(devs)}" for fw, (_, devs) in FRAMEWORKS.items())
            + f"; precisions {'/'.join(PRECISIONS)} (e.g. torch:cpu:fp32, torch:cuda1:bf16)"
        )
        parts = text.strip().split(":")
        if len(parts) != 3:
            raise UserError(f"bad backend {text!r}: {accepted}")
        fw, dev, prec = (p.strip().lower() for p in parts)
        if fw not in FRAMEWORKS:
            raise UserError(f"unknown framework {fw!r} in backend {text!r}: {accepted}")
        m = _DEVICE_RE.match(dev)
        devices = FRAMEWORKS[fw][1]
        if not m or m.group(1) not in devices:
            raise UserError(f"unknown device {dev!r} for {fw} in backend {text!r}: {accepted}")
        if m.group(1) == "cpu" and m.group(2):
            raise UserError(f"cpu takes no index in backend {text!r}: {accepted}")
        if prec not in PRECISIONS:
            raise UserError(f"unknown precision {prec!r} in backend {text!r}: {accepted}")
        index = int(m.group(2)) if m.group(2) else None
        return cls(fw, m.group(1), prec, index)


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""


@dataclass
class Step:
    """A ready-to-call step, built by a suite builder for one backend.

    ``run`` does one step (it may return device arrays; the backend waits for them).
    ``check`` runs one step and returns its outputs (and gradients) as float64 numpy
    arrays: used for accuracy against fp32 and for parity tests.
    ``finite`` says whether the step's loss is still finite (training: diverged).
    """

    run: Callable[[], Any]
    check: Callable[[], dict[str, "np.ndarray"]] | None = None
    finite: Callable[[], bool] | None = None
    compile_s: float | None = None  # ahead-of-time compile, measured apart
    notes: dict[str, Any] = field(default_factory=dict)  # e.g. which quantization


class Backend(ABC):
    """One framework on one device at one precision."""

    framework: str = ""
    timing_method: str = ""

    @property
    def fresh_worker_per_case(self) -> bool:
        """True when the device's memory high-water mark cannot be reset: the runner
        then gives every case a new worker, so each peak belongs to one case."""
        return False

    def __init__(self, spec: BackendSpec):
        self.spec = spec

    # --- in the parent: cheap, no framework import -------------------------------
    @classmethod
    @abstractmethod
    def default_specs(cls) -> list[BackendSpec]:
        """The specs a plain ``xpubench run`` uses on this machine (all devices seen)."""

    @abstractmethod
    def availability(self) -> Availability:
        """Can this machine run the spec? Without importing the framework."""

    def skip_reason(self, case: "Case") -> str | None:
        """Why this backend does not run ``case`` (None = it runs)."""
        if case.workload.builders.get(self.framework) is None:
            return f"{case.name} has no {self.framework} implementation"
        if self.spec.precision not in case.workload.precisions:
            return (f"{self.spec.precision} does not apply to {case.name} "
                    f"(modes: {', '.join(case.workload.precisions)})")
        return None

    # --- in the worker ----------------------------------------------------------
    @abstractmethod
    def setup(self, threads: int | None = None) -> dict[str, Any]:
        """Import the framework, pick the device, set threads; return facts to record."""

    @abstractmethod
    def activate(self) -> None:
        """Apply this precision's process-wide switches (TF32, matmul precision)."""

    @abstractmethod
    def build(self, case: "Case", overrides: dict[str, Any] | None = None) -> Step:
        """Build the case's step with seeded inputs on the device."""

    @abstractmethod
    def time_block(self, step: Step, n: int) -> float:
        """Run ``step`` n times; device-correct elapsed seconds."""

    @abstractmethod
    def synchronize(self) -> None: ...

    # How to wait for a step's work before reading a host clock. ``time_block`` uses
    # it, and so does the pytest plugin, whose clock is pytest-benchmark's.
    wait_name: str = "synchronize"
    wait_each_call: bool = False  # must every call be waited on (not just the last)?

    @property
    def waits(self) -> bool:
        """False where a step returns only when its work is done (torch on CPU)."""
        return True

    def wait(self, out: Any) -> None:
        """Block until the device finished the work that produced ``out``."""
        self.synchronize()

    def reset_peak_memory(self) -> None:
        """Start a new device-memory high-water mark, where the framework can."""

    def peak_memory(self) -> dict[str, Any]:
        return {"device_peak_bytes": None, "device_method": "unavailable",
                "device_reason": "not measured by this backend"}

    def release(self) -> None:
        """Free what the last case held (caches, compiled functions)."""


def backend_class(framework: str) -> type[Backend]:
    target, _ = FRAMEWORKS[framework]
    mod, cls = target.split(":")
    return getattr(importlib.import_module(mod), cls)


def make_backend(spec: BackendSpec | str) -> Backend:
    if isinstance(spec, str):
        spec = BackendSpec.parse(spec)
    return backend_class(spec.framework)(spec)


def all_specs() -> list[BackendSpec]:
    """Every spec this harness knows (device index 0), for ``xpubench list``."""
    return [BackendSpec(fw, dev, p) for fw, (_, devs) in FRAMEWORKS.items()
            for dev in devs for p in PRECISIONS]


def default_specs() -> list[BackendSpec]:
    out: list[BackendSpec] = []
    for fw in FRAMEWORKS:
        try:
            out.extend(backend_class(fw).default_specs())
        except ImportError:
            continue
    return out

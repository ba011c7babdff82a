"""What a backend is: its spec, the Backend interface, the Context a builder may use.

A backend is ``framework:device:precision``: ``torch:cpu:fp32``, ``torch:cuda:bf16``
(device 0), ``torch:cuda1:bf16`` (device 1), ``jax:tpu:bf16``. Frameworks are found
through the entry-point group ``xpubench.backends`` (``xpubench.backends.registry``):
a new one is its own package with a ``Backend`` subclass, registered there, plus
its builders in the suites. Everything runtime-specific the harness needs is asked
of the backend object; nothing in ``xpubench`` (bench/) branches on a framework name.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import (TYPE_CHECKING, Any, Callable, ClassVar, Protocol, Sequence,
                    runtime_checkable)

from xpubench.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from xpubench.options import RunOptions
    from xpubench.spec.registry import Case

PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "int8", "fp8")

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
        """``torch:cuda1:bf16`` -> a spec; a framework, device or precision nobody
        registered is one line naming what is accepted."""
        from xpubench.backends import registry

        classes = registry.backend_classes()
        accepted = (
            "accepted: FRAMEWORK:DEVICE[INDEX]:PRECISION with "
            + ("; ".join(f"{fw} devices {'/'.join(c.devices)}" for fw, c in classes.items())
               or "no framework registered (reinstall xpubench: pip install -e .)")
            + f"; precisions {'/'.join(PRECISIONS)} (e.g. torch:cpu:fp32, torch:cuda1:bf16)"
        )
        parts = text.strip().split(":")
        if len(parts) != 3:
            raise UserError(f"bad backend {text!r}: {accepted}")
        fw, dev, prec = (p.strip().lower() for p in parts)
        if fw not in classes:
            broken = registry.broken().get(fw)
            if broken:
                raise UserError(f"framework {fw!r} in backend {text!r} failed to load: {broken}")
            raise UserError(f"unknown framework {fw!r} in backend {text!r}: {accepted}")
        m = _DEVICE_RE.match(dev)
        if not m or m.group(1) not in classes[fw].devices:
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


class ProbeUnsupported(Exception):
    """A probe kernel does not exist for this backend; the message says why."""


def probe_elements(nbytes: int) -> int:
    """fp32 elements in a probe array of ``nbytes`` (every bandwidth kernel uses fp32)."""
    return max(1, int(nbytes) // 4)


@runtime_checkable
class Context(Protocol):
    """What a suite builder may use on every backend (``backend.context()``).

    Inputs are drawn by name: the same name gives the same values in every run
    (``xpubench.seeding.seed_for``), and ``overrides[name]`` (parity tests) replaces
    the draw with given values. A concrete context adds its framework's own helpers
    (torch: ``torch``, ``module``; JAX: ``jax``, ``jnp``, ``key``, ``rngs``,
    ``param_dtype``), which only that framework's builders use.
    """

    device: Any  # the framework's device object
    precision: str  # fp32 / tf32 / bf16 / fp16 / int8 / fp8
    compute_dtype: Any  # the dtype activations run in
    seed: int
    overrides: dict[str, Any]
    compile_s: float | None  # ahead-of-time compile seconds so far (None: compiles nothing)
    options: "RunOptions | None"  # the run's options (e.g. torch_compile); None outside a run

    def randn(self, name: str, shape: Sequence[int], scale: float = 1.0, mean: float = 0.0) -> Any:
        """fp32 normal samples on the device (parameters, targets)."""

    def rand(self, name: str, shape: Sequence[int], low: float = 0.0, high: float = 1.0) -> Any:
        """fp32 uniform samples in [low, high) on the device."""

    def randint(self, name: str, shape: Sequence[int], high: int) -> Any:
        """Integers in [0, high) on the device (labels, token ids)."""

    def activation(self, name: str, shape: Sequence[int], scale: float = 1.0,
                   requires_grad: bool = False) -> Any:
        """Normal samples in the compute dtype, as a mixed-precision network feeds a layer."""

    def put(self, obj: Any) -> Any:
        """Place an array, module or nested container on the device (dtypes kept)."""

    def numpy(self, x: Any) -> "np.ndarray":
        """A float64 numpy copy of a device array (checks, parity)."""

    def compile(self, fn: Callable, *example_args: Any, donate_argnums: tuple[int, ...] = (),
                static_argnums: tuple[int, ...] = ()) -> Callable:
        """``fn`` ready to call with arguments like these; compile time goes to compile_s."""

    def autocast(self) -> contextlib.AbstractContextManager:
        """The precision policy around a step's calls (a no-op where dtypes carry it)."""


class Backend(ABC):
    """One framework on one device at one precision."""

    framework: ClassVar[str] = ""  # the name in specs and in the entry-point group
    devices: ClassVar[tuple[str, ...]] = ("cpu",)  # device names its specs accept
    # Distributions the machine fingerprint lists: always (None when not installed),
    # and only when installed (accelerator plugins).
    software: ClassVar[tuple[str, ...]] = ()
    software_optional: ClassVar[tuple[str, ...]] = ()
    timing_method: str = ""

    @property
    def fresh_worker_per_case(self) -> bool:
        """True when the device's memory high-water mark cannot be reset: the runner
        then gives every case a new worker, so each peak belongs to one case."""
        return False

    def __init__(self, spec: BackendSpec):
        self.spec = spec

    # --- what the device is (cheap, from the spec) ----------------------------
    @property
    def device_kind(self) -> str:
        """The kind of device, as telemetry and the fingerprint's accelerator list name
        it: "cpu", "cuda" (an NVIDIA GPU, whatever the framework calls it), "tpu", ..."""
        return self.spec.device

    @property
    def device_key(self) -> str:
        """The physical device, framework-free: "cpu", "cuda0", "tpu1" (kind + index,
        as in the fingerprint's accelerator list). Recorded in the setup facts."""
        kind = self.device_kind
        return kind if kind == "cpu" else f"{kind}{self.spec.device_index}"

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
        """Import the framework, pick the device, set threads; return facts to record
        (``device_key``, and ``device_name`` on an accelerator, among them)."""

    @abstractmethod
    def activate(self) -> None:
        """Apply this precision's process-wide switches (TF32, matmul precision)."""

    @abstractmethod
    def context(self, overrides: dict[str, Any] | None = None, options: "RunOptions | None" = None) -> Context:
        """A fresh builder context: the device, seeded draws, the precision policy, and the
        run's ``options`` (e.g. ``torch_compile``; None outside a run)."""

    def build(self, case: "Case", overrides: dict[str, Any] | None = None,
              options: "RunOptions | None" = None) -> Step:
        """Build the case's step with seeded inputs on the device."""
        ctx = self.context(overrides, options)
        step = case.workload.builders[self.framework](ctx, dict(case.params), case.mode)
        if step.compile_s is None:
            step.compile_s = ctx.compile_s
        return step

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

    def sync(self, out: Any = None) -> Any:
        """Wait for the work behind ``out``, or for all queued work when there is no
        ``out``; returns ``out`` (the pytest fixture's ``sync``)."""
        if out is None:
            self.synchronize()
        else:
            self.wait(out)
        return out

    def device_uuid(self) -> str | None:
        """The device's UUID as NVML spells it ("GPU-..."), so telemetry reads the right
        GPU's meters whatever the device orders; None where unknown (after ``setup``)."""
        return None

    def reset_peak_memory(self) -> None:
        """Start a new device-memory high-water mark, where the framework can."""

    def peak_memory(self) -> dict[str, Any]:
        return {"device_peak_bytes": None, "device_method": "unavailable",
                "device_reason": "not measured by this backend"}

    def device_memory_bytes(self) -> int | None:
        """The accelerator's memory after ``setup()`` (None: unknown, or a CPU)."""
        return None

    def release(self) -> None:
        """Free what the last case held (caches, compiled functions)."""

    # --- probe kernels (``xpubench probe``), after setup() and activate() --------
    # Each returns a Step the backend's own time_block times; inputs are non-zero
    # (untouched zero pages would fake the bandwidth). A backend names a module with
    # PRECISIONS (device -> matmul precisions worth probing), VECTOR_PRECISIONS, and the
    # functions matmul(backend, precision, m, k, n, batch), vector(backend, precision,
    # nbytes), copy / triad / read / inplace(backend, nbytes), transfer(backend, nbytes,
    # direction) and optionally cache_bytes(backend), or overrides the methods below.
    # What a backend lacks raises ProbeUnsupported, recorded by the probe with its reason.
    probe_kernels: ClassVar[str] = ""  # e.g. "xpubench.backends.torch.probe"

    def _kernels(self) -> Any:
        if not self.probe_kernels:
            raise ProbeUnsupported(f"no probe kernels for {self.framework}")
        return importlib.import_module(self.probe_kernels)

    def _kernel(self, name: str) -> Callable[..., Any]:
        fn = getattr(self._kernels(), name, None)
        if fn is None:
            raise ProbeUnsupported(f"{self.framework} has no {name} probe kernel")
        return fn

    def probe_precisions(self) -> tuple[str, ...]:
        """Matmul precisions worth probing on this device; the rest get a reason."""
        return tuple(self._kernels().PRECISIONS.get(self.spec.device, ())) if self.probe_kernels else ()

    def probe_not_probed_reason(self, precision: str) -> str:
        if precision == "tf32":
            return "tf32 is a GPU mode"
        if precision == "fp8":
            return "fp8 matmul needs a GPU with fp8 tensor cores"
        return f"{precision} matmul is not probed on {self.framework}:{self.spec.device}"

    def probe_vector_precisions(self) -> tuple[str, ...]:
        """Precisions of the element-wise (vector) roof on this device."""
        if not self.probe_kernels:
            return ()
        return tuple(getattr(self._kernels(), "VECTOR_PRECISIONS", {}).get(self.spec.device, ()))

    def probe_matmul(self, precision: str, m: int, k: int | None = None, n: int | None = None,
                     batch: int = 1) -> Step:
        """(batch x) m x k @ k x n in ``precision`` (k, n default to m): 2 batch m k n FLOPs per call."""
        return self._kernel("matmul")(self, precision, m, k or m, n or m, batch)

    def probe_vector(self, precision: str, nbytes: int) -> Step:
        """Element-wise FLOPs on cache-resident arrays of ``nbytes``; FLOPs per call in
        ``notes["flops_per_call"]``."""
        return self._kernel("vector")(self, precision, nbytes)

    def probe_read(self, nbytes: int) -> Step:
        """A reduction over an fp32 array of that size: 1 read, no write."""
        return self._kernel("read")(self, nbytes)

    def probe_inplace(self, nbytes: int) -> Step:
        """An in-place update of an fp32 array of that size: 1 read + 1 write of the same lines."""
        return self._kernel("inplace")(self, nbytes)

    def probe_cache_bytes(self) -> int | None:
        """The accelerator's last-level cache in bytes, where the framework says (None: unknown)."""
        fn = getattr(self._kernels(), "cache_bytes", None) if self.probe_kernels else None
        return fn(self) if fn else None

    def probe_copy(self, nbytes: int) -> Step:
        """Device copy of a ``probe_elements(nbytes)`` fp32 array: read + write per call."""
        return self._kernel("copy")(self, nbytes)

    def probe_triad(self, nbytes: int) -> Step:
        """STREAM triad a = b + s*c over fp32 arrays of that size: 2 reads + 1 write."""
        return self._kernel("triad")(self, nbytes)

    def probe_transfer(self, nbytes: int, direction: str) -> Step:
        """Host->device (``h2d``) or device->host (``d2h``) copy of that many bytes."""
        return self._kernel("transfer")(self, nbytes, direction)


def backend_class(framework: str) -> type[Backend]:
    """The registered class of a framework (KeyError when none is)."""
    from xpubench.backends import registry

    return registry.backend_classes()[framework]


def make_backend(spec: BackendSpec | str) -> Backend:
    if isinstance(spec, str):
        spec = BackendSpec.parse(spec)
    return backend_class(spec.framework)(spec)


def all_specs() -> list[BackendSpec]:
    """Every spec a registered framework knows (device index 0), for ``xpubench list``."""
    from xpubench.backends import registry

    return [BackendSpec(fw, dev, p) for fw, cls in registry.backend_classes().items()
            for dev in cls.devices for p in PRECISIONS]


def default_specs() -> list[BackendSpec]:
    from xpubench.backends import registry

    out: list[BackendSpec] = []
    for cls in registry.backend_classes().values():
        try:
            out.extend(cls.default_specs())
        except ImportError:
            continue
    return out

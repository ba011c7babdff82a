"""``NumpyBackend``: what a framework outside xpubench implements to be benchmarked."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable

import numpy as np

from xpubench.backends.base import Availability, Backend, BackendSpec, Step
from xpubench.seeding import seed_for


class NumpyContext:
    """The Context protocol (xpubench.backends.base.Context) over numpy arrays."""

    def __init__(self, precision: str, overrides: dict[str, Any] | None, seed: int = 0, options: Any = None):
        self.options = options  # the run's options (RunOptions), None outside a run
        self.device = "cpu"
        self.precision = precision
        self.compute_dtype = np.float32
        self.seed = seed
        self.overrides = overrides or {}
        self.compile_s: float | None = None

    def _rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng(seed_for(name, self.seed))

    def randn(self, name, shape, scale=1.0, mean=0.0):
        if name in self.overrides:
            return np.array(self.overrides[name], dtype=np.float32)
        return (self._rng(name).standard_normal(tuple(shape), dtype=np.float32) * scale + mean)

    def rand(self, name, shape, low=0.0, high=1.0):
        return self._rng(name).uniform(low, high, tuple(shape)).astype(np.float32)

    def randint(self, name, shape, high):
        return self._rng(name).integers(0, high, tuple(shape))

    def activation(self, name, shape, scale=1.0, requires_grad=False):
        return self.randn(name, shape, scale=scale).astype(self.compute_dtype)

    def put(self, obj):
        return np.asarray(obj)

    def numpy(self, x):
        return np.asarray(x, dtype=np.float64)

    def compile(self, fn: Callable, *example_args, donate_argnums=(), static_argnums=()):
        return fn

    def autocast(self):
        return contextlib.nullcontext()


class NumpyBackend(Backend):
    framework = "numpy"
    devices = ("cpu",)
    software = ("numpy",)
    software_optional = ("xpb-numpy",)  # this distribution, listed since it is installed
    timing_method = "perf_counter"

    @classmethod
    def default_specs(cls) -> list[BackendSpec]:
        return [BackendSpec("numpy", "cpu", "fp32")]

    def availability(self) -> Availability:
        if self.spec.precision != "fp32":
            return Availability(False, "this numpy backend computes in fp32 only")
        return Availability(True)

    def setup(self, threads: int | None = None) -> dict[str, Any]:
        return {"numpy": np.__version__, "device_key": self.device_key}

    def activate(self) -> None:
        pass

    def context(self, overrides: dict[str, Any] | None = None, options: Any = None) -> NumpyContext:
        return NumpyContext(self.spec.precision, overrides, options=options)

    @property
    def waits(self) -> bool:
        return False  # numpy returns when the work is done

    def synchronize(self) -> None:
        pass

    def time_block(self, step: Step, n: int) -> float:
        run = step.run
        t0 = time.perf_counter()
        for _ in range(n):
            run()
        return time.perf_counter() - t0

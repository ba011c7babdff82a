"""``TorchContext``: what a torch builder gets (the Context protocol, plus torch itself)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable

from xpubench.seeding import seed_for

if TYPE_CHECKING:
    from xpubench.options import RunOptions
    from xpubench.backends.torch.backend import TorchBackend


class TorchContext:
    """The device, seeded inputs, the precision policy (autocast for bf16/fp16)."""

    def __init__(self, backend: "TorchBackend", overrides: dict[str, Any] | None, seed: int = 0,
                 options: "RunOptions | None" = None):
        import torch

        self.torch = torch
        self.backend = backend
        self.options = options  # the run's options (e.g. torch_compile); None outside a run
        self.device = backend.device
        self.precision = backend.spec.precision
        self.overrides = overrides or {}
        self.seed = seed
        self.compute_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
            self.precision, torch.float32)
        self.compile_s: float | None = None  # eager: nothing compiled ahead of time

    def _draw(self, name: str, shape, kind: str, **kw):
        torch = self.torch
        if name in self.overrides:  # a copy: in-place steps must not write into the caller's array
            return torch.tensor(self.overrides[name], dtype=torch.float32, device=self.device)
        g = torch.Generator(device=self.device).manual_seed(seed_for(name, self.seed))
        if kind == "normal":
            return torch.randn(*shape, generator=g, device=self.device) * kw.get("scale", 1.0) + kw.get("mean", 0.0)
        if kind == "uniform":
            lo, hi = kw.get("low", 0.0), kw.get("high", 1.0)
            return torch.rand(*shape, generator=g, device=self.device) * (hi - lo) + lo
        if kind == "int":
            return torch.randint(0, kw["high"], tuple(shape), generator=g, device=self.device)
        raise ValueError(kind)

    def randn(self, name: str, shape, scale: float = 1.0, mean: float = 0.0):
        """fp32 normal samples on the device (parameters, targets)."""
        return self._draw(name, shape, "normal", scale=scale, mean=mean)

    def rand(self, name: str, shape, low: float = 0.0, high: float = 1.0):
        """Uniform samples in [low, high) (an override is used as given)."""
        return self._draw(name, shape, "uniform", low=low, high=high)

    def randint(self, name: str, shape, high: int):
        if name in self.overrides:
            return self.torch.tensor(self.overrides[name], dtype=self.torch.long, device=self.device)
        return self._draw(name, shape, "int", high=high)

    def activation(self, name: str, shape, scale: float = 1.0, requires_grad: bool = False):
        """An activation in the compute dtype, as a mixed-precision network feeds it."""
        t = self.randn(name, shape, scale=scale).to(self.compute_dtype)
        return t.requires_grad_(requires_grad)

    def module(self, m):
        return m.to(self.device)

    def put(self, obj: Any) -> Any:
        """A module/tensor, numpy array or (nested) container on the device; dtypes kept."""
        if isinstance(obj, dict):
            return type(obj)((k, self.put(v)) for k, v in obj.items())
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.put(v) for v in obj)
        if hasattr(obj, "to") and callable(obj.to):
            return obj.to(self.device)
        return self.torch.as_tensor(obj).to(self.device)

    def compile(self, fn: Callable, *example_args: Any, donate_argnums: tuple[int, ...] = (),
                static_argnums: tuple[int, ...] = ()) -> Callable:
        """Eager: ``fn`` unchanged (torch.compile is a case's own choice, see suites/training)."""
        return fn

    def autocast(self):
        if self.precision in ("bf16", "fp16"):
            return self.torch.autocast(self.device.type, dtype=self.compute_dtype)
        return contextlib.nullcontext()

    @staticmethod
    def numpy(t) -> Any:
        import numpy as np

        return t.detach().float().cpu().numpy().astype(np.float64)

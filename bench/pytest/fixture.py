"""``XpuBackend``: what the ``xpu_backend`` fixture hands a user's own benchmark.

    def test_my_layer(xpu_backend, benchmark):
        x = xpu_backend.tensor("x", (32, 256))          # seeded, on the device
        layer = xpu_backend.put(MyLayer())               # torch module / jax pytree
        xpu_backend.bench(benchmark, layer, x, units=32, unit="samples")

``bench`` measures the call through xpubench's one measuring path (warm-up, calibrated
rounds, meters) with pytest-benchmark's timer plugged in, waits for the device
inside each timed block, runs it under the backend's precision policy (torch
autocast for bf16/fp16) and fills ``benchmark.extra_info`` with the fields
``xpubench report`` reads.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable

from xpubench.measure import step as measuring
from xpubench.pytest import timer as support  # support.device_wait: how sync() waits

if TYPE_CHECKING:
    from xpubench.backends.base import Backend
    from xpubench.pytest.session import SessionState


class XpuBackend:
    """One backend (framework, device, precision), set up and activated for a test."""

    def __init__(self, backend: "Backend", state: "SessionState", *, suite: str, case: str,
                 params: dict[str, Any] | None = None):
        self.backend = backend
        self.spec: str = str(backend.spec)
        self.framework: str = backend.spec.framework
        self.precision: str = backend.spec.precision
        #: the framework's device object (``torch.device`` or a ``jax.Device``)
        self.device: Any = getattr(backend, "device", None)
        #: the backend's builder context (seeded draws, dtype policy); see backends/
        self.ctx: Any = backend.context()
        self._state = state
        self._suite = suite
        self._case = case
        self._params = dict(params or {})

    def __repr__(self) -> str:
        return f"XpuBackend({self.spec!r})"

    @property
    def compute_dtype(self) -> Any:
        """The dtype activations run in: float32 for fp32/tf32, bfloat16/float16 for those modes."""
        return self.ctx.compute_dtype

    # ----------------------------------------------------------------- data
    # Each helper asks the backend's builder context (backends/): no framework here.
    def tensor(self, name: str, shape: tuple[int, ...], scale: float = 1.0, requires_grad: bool = False) -> Any:
        """A seeded random activation on the device, in the compute dtype.

        The same ``name`` gives the same values on every run (seeded by name).
        ``requires_grad`` applies where tensors carry it (torch).
        """
        return self.ctx.activation(name, shape, scale=scale, requires_grad=requires_grad)

    def randn(self, name: str, shape: tuple[int, ...], scale: float = 1.0) -> Any:
        """Seeded fp32 normal samples on the device (weights, targets)."""
        return self.ctx.randn(name, shape, scale=scale)

    def put(self, obj: Any) -> Any:
        """Place a module/tensor, a numpy array or a (nested) container (a JAX pytree) on
        the device.

        Parameters keep their dtype (fp32): the precision mode applies to compute,
        as in a mixed-precision network.
        """
        return self.ctx.put(obj)

    def numpy(self, x: Any) -> Any:
        """A float64 numpy copy of a device array (for checks)."""
        return self.ctx.numpy(x)

    # ------------------------------------------------------------ execution
    def autocast(self) -> contextlib.AbstractContextManager:
        """The backend's precision policy: torch autocast for bf16/fp16; a no-op otherwise
        and on JAX, where the dtype policy is the inputs' dtype (cast parameters with
        ``.astype(x.dtype)``)."""
        return self.ctx.autocast()

    def compile(self, fn: Callable, *example_args: Any, donate_argnums: tuple[int, ...] = ()) -> Callable:
        """JAX: jit and compile ahead of time for these arguments (compile time is recorded
        apart, never in the step time). torch: returns ``fn`` unchanged (eager)."""
        return self.ctx.compile(fn, *example_args, donate_argnums=donate_argnums)

    def sync(self, out: Any = None) -> Any:
        """Wait until the device finished: the work behind ``out`` (JAX needs it), or all
        queued work (torch CUDA). Returns ``out``."""
        return self.backend.sync(out)

    def bench(self, benchmark: Any, fn: Callable, *args: Any, units: float | None = None,
              unit: str | None = None, mode: str = "call", flops: float | None = None,
              bytes: float | None = None, **kwargs: Any) -> Any:
        """Time ``fn(*args, **kwargs)`` with pytest-benchmark, device-correct; return its result.

        ``units``: work per call (samples, tokens, ...) for throughput, named by ``unit``;
        ``flops``/``bytes``: per call, where known. On JAX, ``fn`` must return its outputs
        (the timer waits on them); on torch the device is synchronized.
        """
        from xpubench.backends.base import Step
        from xpubench.measure.record import extra_info_fields, one_line
        from xpubench.results.jsonsafe import json_safe

        state = self._state
        step = Step(run=lambda: fn(*args, **kwargs), compile_s=getattr(self.ctx, "compile_s", None) or None)
        units_per_step = float(units) if units is not None else 1.0
        info: dict[str, Any] = {
            "suite": self._suite, "case": self._case, "params": self._params, "mode": mode,
            "size": state.options.size, "backend": self.spec, "framework": self.framework,
            "device": self.backend.spec.device, "precision": self.precision, "status": "ok", "reason": None,
            "unit": unit or ("items" if units is not None else "calls"), "units_per_step": units_per_step,
            "flops_per_step": flops, "bytes_per_step": bytes, "error_vs_fp32": None,
        }
        if benchmark.group is None:
            benchmark.group = f"{self._suite}::{self._case}"  # the backends of one test side by side
        try:
            self.backend.activate()
            self.backend.reset_peak_memory()
            with self.autocast(), support.BenchmarkTimer(benchmark, self.backend) as timer:  # autocast: entered once
                m = measuring.measure_step(self.backend, step, state.options, timer=timer,
                                           units_per_step=units_per_step)
                info.update(extra_info_fields(m))
                # the call's result for the test: the untimed call, or one more after the timed rounds
                return timer.untimed_result if m.timing is None else step.run()
        except Exception as exc:
            info.update(status="error", reason=one_line(exc))
            raise
        finally:
            benchmark.extra_info.update(json_safe(info))

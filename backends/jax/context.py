"""``JaxContext``: what a JAX builder gets (the Context protocol, plus jax, keys and rngs)."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, Callable

from xpubench.seeding import seed_for

if TYPE_CHECKING:
    from xpubench.options import RunOptions
    from xpubench.backends.jax.backend import JaxBackend


class JaxContext:
    """Device, seeded inputs, dtype policy, ahead-of-time compile."""

    def __init__(self, backend: "JaxBackend", overrides: dict[str, Any] | None, seed: int = 0,
                 options: "RunOptions | None" = None):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.backend = backend
        self.options = options  # the run's options (e.g. torch_compile); None outside a run
        self.device = backend.device
        self.precision = backend.spec.precision
        self.overrides = overrides or {}
        self.seed = seed
        self.compute_dtype = {"bf16": jnp.bfloat16, "fp16": jnp.float16}.get(self.precision, jnp.float32)
        self.param_dtype = jnp.float32
        self.compile_s: float = 0.0

    def key(self, name: str):
        return self.jax.device_put(self.jax.random.PRNGKey(seed_for(name, self.seed)), self.device)

    def _put(self, value, dtype=None):
        arr = self.jnp.asarray(value, dtype=dtype or self.jnp.float32)
        return self.jax.device_put(arr, self.device)

    def _host_rng(self, name: str):
        """numpy's generator seeded as the name's draw: inputs are made on the host and copied once,
        where jax.random would compile a small program for every new shape (about 0.1 s each on CPU)."""
        import numpy as np

        return np.random.default_rng(seed_for(name, self.seed))

    def randn(self, name: str, shape, scale: float = 1.0, mean: float = 0.0):
        if name in self.overrides:
            return self._put(self.overrides[name])
        x = self._host_rng(name).standard_normal(tuple(shape), dtype="float32")
        return self.jax.device_put(x * scale + mean if (scale, mean) != (1.0, 0.0) else x, self.device)

    def rand(self, name: str, shape, low: float = 0.0, high: float = 1.0):
        if name in self.overrides:
            return self._put(self.overrides[name])
        x = self._host_rng(name).uniform(low, high, tuple(shape)).astype("float32")
        return self.jax.device_put(x, self.device)

    def randint(self, name: str, shape, high: int):
        if name in self.overrides:
            return self._put(self.overrides[name], self.jnp.int32)
        x = self._host_rng(name).integers(0, high, tuple(shape), dtype="int32")
        return self.jax.device_put(x, self.device)

    def activation(self, name: str, shape, scale: float = 1.0, requires_grad: bool = False):
        """In the compute dtype; ``requires_grad`` means nothing here (JAX differentiates functions)."""
        if name in self.overrides:
            return self._put(self.overrides[name]).astype(self.compute_dtype)
        x = self._host_rng(name).standard_normal(tuple(shape), dtype="float32")
        x = (x * scale if scale != 1.0 else x).astype(self.compute_dtype)  # ml_dtypes casts bf16/fp16 on the host
        return self.jax.device_put(x, self.device)

    def rngs(self, seed_name: str = "init"):
        from flax import nnx

        return nnx.Rngs(seed_for(seed_name, self.seed) & 0x7FFFFFFF)

    def put(self, obj: Any) -> Any:
        """Arrays or a pytree of them on the device (dtypes kept)."""
        return self.jax.device_put(obj, self.device)

    def compile(self, fn: Callable, *args, donate_argnums: tuple[int, ...] = (), static_argnums=()):
        """Ahead-of-time compile for these arguments; the time goes to compile_s."""
        t0 = time.perf_counter()
        compiled = self.jax.jit(fn, donate_argnums=donate_argnums, static_argnums=static_argnums) \
            .lower(*args).compile()
        self.compile_s += time.perf_counter() - t0
        return compiled

    def autocast(self):
        """A no-op: the dtype policy is the inputs' dtype (cast parameters with ``.astype``)."""
        return contextlib.nullcontext()

    def numpy(self, a):
        import numpy as np

        return np.asarray(self.jax.device_get(a).astype(self.jnp.float32), dtype=np.float64)

"""JAX on CPU, GPU and TPU — one code path for every platform.

Devices come from ``jax.devices(platform)``. Every step is a jitted function
compiled ahead of time (``jit(f).lower(*args).compile()``), so compile time is
measured apart and never lands in step times; state-updating steps donate their
buffers. Before a clock is read the outputs are waited on with
``jax.block_until_ready``.

Precision mirrors torch autocast as a dtype policy: parameters stay fp32, inputs
and compute run in bf16/fp16 (flax ``dtype=`` / ``param_dtype=``). Where they differ:
torch autocast keeps some ops (normalizations, softmax, losses) in fp32 whatever
the input dtype, while a flax layer with ``dtype=bf16`` returns bf16 (its statistics
are still computed in fp32).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable

from xpubench.backends import availability as av
from xpubench.backends.base import Availability, Backend, BackendSpec, Step
from xpubench.backends.jax import availability as jav
from xpubench.backends.jax.context import JaxContext

if TYPE_CHECKING:
    from xpubench.options import RunOptions

DEFAULT_PRECISIONS = {"cpu": ("fp32", "bf16"), "gpu": ("fp32", "bf16"), "tpu": ("fp32", "bf16")}
MATMUL_PRECISION = {"fp32": "highest", "tf32": "tensorfloat32", "bf16": "default", "fp16": "default",
                    "int8": "default", "fp8": "default"}


def pick_device(platform: str, index: int, devices_fn: Callable[[str], list]) -> Any:
    """The ``index``-th device of ``platform``; a clear error when there is none."""
    try:
        devices = devices_fn(platform)
    except RuntimeError as e:  # jax raises when the platform is not initialised
        raise RuntimeError(f"no {platform.upper()} visible to JAX ({str(e).splitlines()[0]})") from None
    if not devices:
        raise RuntimeError(f"no {platform.upper()} visible to JAX")
    if index >= len(devices):
        raise RuntimeError(f"no {platform} device {index} ({len(devices)} visible)")
    return devices[index]


def device_peak_memory(device: Any) -> dict[str, Any]:
    """Peak device memory from ``memory_stats()`` where the platform reports it."""
    try:
        stats = device.memory_stats()
    except Exception as e:  # some PJRT plugins raise instead of returning None
        stats = None
        why = f"memory_stats() failed: {e.__class__.__name__}"
    else:
        why = f"{device.platform} does not report memory_stats()"
    if not stats or "peak_bytes_in_use" not in stats:
        return {"device_peak_bytes": None, "device_method": "unavailable", "device_reason": why}
    return {"device_peak_bytes": int(stats["peak_bytes_in_use"]),
            "device_in_use_bytes": int(stats.get("bytes_in_use", 0)),
            "device_limit_bytes": stats.get("bytes_limit"),
            # XLA cannot reset the high-water mark: it covers the worker's life so far,
            # and the runner gives each case on a GPU/TPU a fresh worker.
            "device_method": "jax memory_stats peak_bytes_in_use (since worker start; not resettable)"}


class JaxBackend(Backend):
    framework = "jax"
    devices = ("cpu", "gpu", "tpu")
    software = ("jax", "jaxlib", "flax", "optax")
    software_optional = ("jax-cuda12-plugin", "jax-cuda13-plugin", "jax-cuda12-pjrt", "jax-cuda13-pjrt",
                         "libtpu", "libtpu-nightly")
    probe_kernels = "xpubench.backends.jax.probe"
    timing_method = "block_until_ready"
    wait_name = "block_until_ready"

    def __init__(self, spec: BackendSpec, devices_fn: Callable[[str], list] | None = None):
        super().__init__(spec)
        self.device = None
        self._devices_fn = devices_fn

    @property
    def device_kind(self) -> str:
        return "cuda" if self.spec.device == "gpu" else self.spec.device  # JAX's "gpu": an NVIDIA GPU

    @property
    def fresh_worker_per_case(self) -> bool:
        # XLA's peak_bytes_in_use cannot be reset; CPU reports no peak at all.
        return self.spec.device in ("gpu", "tpu")

    @classmethod
    def default_specs(cls) -> list[BackendSpec]:
        if not av.module_present("jax"):
            return []
        specs = [BackendSpec("jax", "cpu", p) for p in DEFAULT_PRECISIONS["cpu"]]
        for dev in ("gpu", "tpu"):
            if cls(BackendSpec("jax", dev, "fp32")).availability().ok:
                specs += [BackendSpec("jax", dev, p) for p in DEFAULT_PRECISIONS[dev]]
        return specs

    def availability(self) -> Availability:
        if not av.module_present("jax"):
            return Availability(False, "jax is not installed")
        dev, p = self.spec.device, self.spec.precision
        if p == "tf32" and dev != "gpu":
            return Availability(False, "tf32 is a GPU precision mode")
        if p == "fp8" and dev != "gpu":
            return Availability(False, "fp8 needs a GPU with fp8 support")
        if dev == "gpu":
            if not jav.jax_gpu_plugin():
                return Availability(False, "no GPU visible to JAX: no jax CUDA plugin installed (pip install 'jax[cuda12]')")
            if av.nvidia_gpu_count() == 0:
                return Availability(False, "no GPU visible to JAX: no NVIDIA device")
        if dev == "tpu":
            if not jav.jax_tpu_runtime():
                return Availability(False, "no TPU visible to JAX: libtpu not installed (pip install 'jax[tpu]')")
            if av.tpu_chip_count() == 0:
                return Availability(False, "no TPU visible to JAX: no TPU device nodes")
        return Availability(True)

    def setup(self, threads: int | None = None) -> dict[str, Any]:
        # Before jax starts: no GPU preallocation, so peaks mean something.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        if threads and self.spec.device == "cpu":
            flags = os.environ.get("XLA_FLAGS", "")
            if "intra_op_parallelism_threads" not in flags:
                os.environ["XLA_FLAGS"] = (flags + f" --xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
                                           f" intra_op_parallelism_threads={threads}").strip()
        import jax

        self._jax = jax
        self.device = pick_device(self.spec.device, self.spec.device_index, self._devices_fn or jax.devices)
        # device_kind: JAX's name for the device (kept for old readers), also as device_name
        return {"jax": jax.__version__, "device_kind": self.device.device_kind,
                "device_name": self.device.device_kind, "device_key": self.device_key,
                "platform": self.device.platform, "threads": threads or os.cpu_count(),
                "xla_flags": os.environ.get("XLA_FLAGS", ""),
                "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE")}

    def activate(self) -> None:
        self._jax.config.update("jax_default_matmul_precision", MATMUL_PRECISION[self.spec.precision])

    def context(self, overrides: dict[str, Any] | None = None, options: "RunOptions | None" = None) -> JaxContext:
        return JaxContext(self, overrides, options=options)

    def synchronize(self) -> None:
        # Nothing global to wait on in JAX: time_block waits on the step's outputs.
        pass

    @property
    def wait_each_call(self) -> bool:  # type: ignore[override]
        # XLA:CPU may overlap independent calls; waiting on each keeps one step at a
        # time, as torch's synchronous CPU ops do. Accelerator streams run in order.
        return self.spec.device == "cpu"

    def wait(self, out: Any) -> None:
        self._jax.block_until_ready(out)

    def time_block(self, step: Step, n: int) -> float:
        run = step.run
        block = self._jax.block_until_ready
        t0 = time.perf_counter()
        if self.wait_each_call:
            for _ in range(n):
                block(run())
        else:
            out = None
            for _ in range(n):  # accelerator streams run in order: wait on the last
                out = run()
            if out is not None:
                block(out)
        return time.perf_counter() - t0

    def peak_memory(self) -> dict[str, Any]:
        return device_peak_memory(self.device)

    def device_memory_bytes(self) -> int | None:
        if self.device is None or self.device.platform == "cpu":
            return None
        try:
            return int((self.device.memory_stats() or {})["bytes_limit"])
        except Exception:  # a platform without memory_stats, or without this field
            return None

    def release(self) -> None:
        import gc

        gc.collect()

    def probe_not_probed_reason(self, precision: str) -> str:
        if precision == "fp16" and self.spec.device == "tpu":
            return "TPUs have no fp16 matrix path (bf16 instead)"
        return super().probe_not_probed_reason(precision)

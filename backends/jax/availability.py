"""Can this machine run JAX on a device? Answered from package metadata and device nodes."""

from __future__ import annotations

from xpubench.backends.availability import installed


def jax_gpu_plugin() -> str | None:
    """The installed jax CUDA plugin (``name version``), or None."""
    for dist in ("jax-cuda13-plugin", "jax-cuda12-plugin", "jax_cuda12_plugin"):
        v = installed(dist)
        if v:
            return f"{dist} {v}"
    return None


def jax_tpu_runtime() -> str | None:
    v = installed("libtpu") or installed("libtpu-nightly")
    return f"libtpu {v}" if v else None

"""Cheap, framework-free facts: installed distributions and visible devices.

``xpubench list`` and the run planner must answer "can this machine run X?" in
milliseconds; importing torch or jax takes seconds. The worker still re-checks with
the real framework and records ``skipped`` with its reason if the cheap answer lied.
"""

from __future__ import annotations

import glob
import importlib.metadata as md
import importlib.util
import os


def installed(dist: str) -> str | None:
    """Version of an installed distribution, or None."""
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def nvidia_gpu_count(proc_root: str = "/proc/driver/nvidia/gpus", dev_glob: str = "/dev/nvidia[0-9]*") -> int:
    """GPUs the NVIDIA driver exposes (procfs first, device nodes as a fallback)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        n = len(os.listdir(proc_root))
    except OSError:
        n = len(glob.glob(dev_glob))
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        n = min(n, len(ids))
    return n


def cuda_device_missing(index: int) -> str | None:
    """Why CUDA device ``index`` is not there (None = it is), from the driver's view."""
    count = nvidia_gpu_count()
    if count == 0:
        return "no CUDA device visible"
    if index >= count:
        return f"no CUDA device {index} ({count} visible)"
    return None


def tpu_chip_count(dev_glob: str = "/dev/accel[0-9]*", vfio_glob: str = "/dev/vfio/[0-9]*") -> int:
    """TPU chips visible as device nodes (accel on v4 and older, vfio on v5+)."""
    return len(glob.glob(dev_glob)) or len(glob.glob(vfio_glob))

"""Fingerprint of the machine and software that produced a run.

Returns the ``machine`` block of the results file (see DESIGN.md).  Everything
here is cheap: no framework is imported (versions come from package metadata),
NVML is imported only inside ``fingerprint``, and each probe that can fail
gives ``None`` instead of raising.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import os
import platform
import re
import socket
import sys
from pathlib import Path
from typing import Any

from xpubench.hardware.cpu import cpu_info, read_text, run_command

_MACHINE_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_MACHINE_ID_MAX = 100

# The harness's own packages, always listed (None when not installed). Each backend
# names its framework's (``Backend.software`` / ``software_optional``).
_SOFTWARE = ("numpy", "nvidia-ml-py", "psutil")
# Environment variables that change what a benchmark measures.
_ENV_VARS = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "NVIDIA_TF32_OVERRIDE",
    "XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "JAX_PLATFORMS", "JAX_ENABLE_X64", "TPU_ACCELERATOR_TYPE",
    "PYTORCH_CUDA_ALLOC_CONF", "TORCH_CUDNN_V8_API_DISABLED",
)

_GIT_TIMEOUT_S = 3.0


# --------------------------------------------------------------------------- public

def fingerprint(machine_id: str | None = None, *, nvml: Any = None,
                repo_dir: Path | None = None) -> dict:
    """Return the ``machine`` block.

    ``machine_id``: used as given after validation (it becomes a folder name
    ``results/<machine_id>/``); otherwise derived from the hardware.
    ``nvml``: an injected NVML module (tests); default the real pynvml.
    ``repo_dir``: the checkout whose git state is recorded; default the
    checkout holding this package (None when it is not one).
    """
    if machine_id is not None:
        validate_machine_id(machine_id)
    cpu = cpu_info()
    accelerators = accelerators_info(nvml=nvml)
    memory = memory_bytes()
    if machine_id is None:
        machine_id = derive_machine_id(cpu, memory, accelerators)
    return {
        "machine_id": machine_id,
        "hostname": socket.gethostname(),
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "version": platform.version(),
            "machine": platform.machine(),
        },
        "cpu": cpu,
        "accelerators": accelerators,
        "memory_bytes": memory,
        "software": software_versions(),
        "env_vars": {k: os.environ[k] for k in _ENV_VARS if k in os.environ},
        "git": git_info(repo_dir),
    }


def validate_machine_id(machine_id: str) -> str:
    """Raise ValueError unless ``machine_id`` is safe as a single folder name."""
    if (not isinstance(machine_id, str) or not _MACHINE_ID_RE.match(machine_id)
            or machine_id.startswith(".") or len(machine_id) > _MACHINE_ID_MAX):
        raise ValueError(
            f"invalid machine id {machine_id!r}: use 1-{_MACHINE_ID_MAX} letters, digits, "
            "'-', '_' or '.', not starting with '.' (it becomes the folder results/<machine_id>/)"
        )
    return machine_id


# --------------------------------------------------------------------------- memory

def memory_bytes() -> int | None:
    try:
        import psutil  # noqa: PLC0415

        return int(psutil.virtual_memory().total)
    except Exception:
        pass
    text = read_text("/proc/meminfo") or ""
    m = re.search(r"^MemTotal:\s+(\d+)\s+kB", text, re.M)
    if m:
        return int(m.group(1)) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


# --------------------------------------------------------------------------- accelerators

def accelerators_info(*, nvml: Any = None) -> list[dict]:
    """NVIDIA GPUs through NVML (empty when NVML/driver is missing), then TPUs."""
    return _nvidia_gpus(nvml) + _tpus()


def _nvidia_gpus(nvml: Any) -> list[dict]:
    from xpubench.hardware.telemetry.nvml import NvmlUnavailable, open_session  # noqa: PLC0415

    try:
        session = open_session(nvml)
        count = session.device_count()
    except NvmlUnavailable:
        return []
    except Exception as exc:  # an NVMLError from nvmlDeviceGetCount
        if isinstance(exc, _nvml_error_type(nvml)):
            return []
        raise
    mod = session.mod
    driver = session.call("nvmlSystemGetDriverVersion")
    cuda_drv = session.call("nvmlSystemGetCudaDriverVersion")
    cuda_drv_str = f"{cuda_drv // 1000}.{(cuda_drv % 1000) // 10}" if isinstance(cuda_drv, int) else None
    sm = getattr(mod, "NVML_CLOCK_SM", 1)
    mem = getattr(mod, "NVML_CLOCK_MEM", 2)
    gpus = []
    for i in range(count):
        try:
            h = session.handle(i)
        except session.error:
            continue
        meminfo = session.call("nvmlDeviceGetMemoryInfo", h)
        cc = session.call("nvmlDeviceGetCudaComputeCapability", h)
        limit_mw = session.call("nvmlDeviceGetEnforcedPowerLimit", h)
        gpus.append({
            "kind": "cuda",
            "index": i,
            "name": session.call("nvmlDeviceGetName", h),
            "driver": driver,
            "cuda_driver": cuda_drv_str,
            "memory_bytes": int(meminfo.total) if meminfo is not None else None,
            "clocks_mhz": {
                "sm": session.call("nvmlDeviceGetClockInfo", h, sm),
                "mem": session.call("nvmlDeviceGetClockInfo", h, mem),
                "sm_max": session.call("nvmlDeviceGetMaxClockInfo", h, sm),
                "mem_max": session.call("nvmlDeviceGetMaxClockInfo", h, mem),
            },
            "compute_capability": f"{cc[0]}.{cc[1]}" if isinstance(cc, tuple) and len(cc) == 2 else None,
            "power_limit_w": limit_mw / 1000.0 if isinstance(limit_mw, (int, float)) else None,
            "uuid": session.call("nvmlDeviceGetUUID", h),
        })
    return gpus


def _nvml_error_type(nvml: Any) -> type[BaseException]:
    if nvml is not None:
        base = getattr(nvml, "NVMLError", None)
        if isinstance(base, type):
            return base
    try:
        from xpubench.hardware.telemetry.nvml import import_pynvml  # noqa: PLC0415

        return import_pynvml().NVMLError
    except ImportError:
        return OSError


def _tpus() -> list[dict]:
    """TPU chips of a Cloud TPU VM, seen as device files (no JAX import).

    Only reported when libtpu is installed, so Intel NPU /dev/accel nodes on
    laptops are not mistaken for TPUs.
    """
    if _version("libtpu") is None and _version("libtpu-nightly") is None:
        return []
    dev = Path("/dev")
    chips = sorted(p.name for p in dev.glob("accel[0-9]*"))
    if not chips:
        vfio = dev / "vfio"
        chips = sorted(p.name for p in vfio.glob("[0-9]*")) if vfio.is_dir() else []
    name = os.environ.get("TPU_ACCELERATOR_TYPE")
    return [{"kind": "tpu", "index": i, "name": name, "device_file": c} for i, c in enumerate(chips)]


# --------------------------------------------------------------------------- software

def software_versions() -> dict:
    """Versions from package metadata: the registered backends' software, then ours."""
    from xpubench.backends.registry import backend_classes  # classes only: no framework import

    backends = backend_classes().values()
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in [d for b in backends for d in b.software] + list(_SOFTWARE):
        out[dist] = _version(dist)
    for dist in (d for b in backends for d in b.software_optional):
        v = _version(dist)
        if v is not None:
            out[dist] = v
    out["xpubench"] = _version("xpubench") or getattr(sys.modules.get("xpubench"), "__version__", None)
    return out


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------- git

def git_info(repo_dir: Path | None = None) -> dict | None:
    """``{"commit", "branch", "dirty"}`` of a checkout, or None outside one.

    With no ``repo_dir`` the checkout holding this package is used, and only
    when its top level is that folder (an installed copy under some other
    project's tree must not report that project's commit).
    """
    default = repo_dir is None
    # the package is the repository's bench/ folder (pyproject's package-dir): its parent is the checkout
    where = Path(__file__).resolve().parents[2] if default else Path(repo_dir)
    if not where.is_dir():
        return None
    top = _git(where, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    if default and Path(top).resolve() != where:
        return None
    commit = _git(where, "rev-parse", "HEAD")  # None in a repo with no commits yet
    branch = _git(where, "rev-parse", "--abbrev-ref", "HEAD")
    if branch is None or branch == "HEAD":  # detached head, or no commits yet
        branch = _git(where, "symbolic-ref", "--short", "-q", "HEAD")
    status = _git(where, "status", "--porcelain", strip=False)
    return {"commit": commit, "branch": branch, "dirty": None if status is None else bool(status.strip())}


def _git(where: Path, *args: str, strip: bool = True) -> str | None:
    env = dict(os.environ, LC_ALL="C", GIT_OPTIONAL_LOCKS="0")  # never take index.lock
    return run_command(["git", "-C", str(where), *args], timeout=_GIT_TIMEOUT_S, env=env, strip=strip)


# --------------------------------------------------------------------------- machine id

def derive_machine_id(cpu: dict, memory: int | None, accelerators: list[dict]) -> str:
    """A readable id from the hardware, stable across runs on one machine.

    e.g. ``amd-epyc-2c-24g-6f1e0a`` or ``intel-xeon-8480-16c-128g-1xh100-80gb-hbm3-1a2b3c``;
    the hash tail (of /etc/machine-id, else the hostname) separates identical boxes.
    """
    parts = [_slug(cpu.get("model") or platform.machine() or "cpu", drop=_CPU_NOISE, limit=28)]
    if cpu.get("logical_cores"):
        parts.append(f"{cpu['logical_cores']}c")
    if memory:
        parts.append(f"{max(1, round(memory / 2**30))}g")
    names: dict[str, int] = {}
    for acc in accelerators:
        key = _slug(acc.get("name") or acc.get("kind") or "acc", drop=_GPU_NOISE, limit=20)
        names[key] = names.get(key, 0) + 1
    parts += [f"{n}x{k}" for k, n in sorted(names.items())]
    parts.append(_host_hash())
    return validate_machine_id("-".join(p for p in parts if p)[:_MACHINE_ID_MAX])


_CPU_NOISE = {"r", "tm", "cpu", "processor", "with", "radeon", "graphics", "platinum", "gold",
              "silver", "bronze", "core", "genuine", "intel(r)", "n"}
_GPU_NOISE = {"nvidia", "geforce", "tesla"}


def _slug(text: str, *, drop: set[str], limit: int) -> str:
    text = re.sub(r"\((r|tm)\)", " ", text.lower())
    text = re.sub(r"@.*$", " ", text)               # "@ 2.10GHz"
    text = re.sub(r"\b\d+(\.\d+)?\s*ghz\b", " ", text)
    text = re.sub(r"\b\d+-core\b", " ", text)       # "16-Core Processor"
    text = re.sub(r"\b\d+(st|nd|rd|th) gen\b", " ", text)  # "11th Gen Intel"
    text = re.sub(r"\bw/", " ", text)              # "w/ Radeon 780M Graphics"
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w and w not in drop]
    slug = "-".join(words)[:limit].strip("-")
    return slug or "unknown"


def _host_hash() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        text = read_text(path)
        if text:
            return hashlib.sha256(text.encode()).hexdigest()[:6]
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]

"""The CPU of this machine: model, vendor, ISA flags, cores, clock, the threads a process may use."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

# Instruction-set flags that decide which precision paths are fast on a CPU.
# x86 names as in /proc/cpuinfo; aarch64 names as in its "Features" line.
_X86_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c",
    "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
)
_ARM_FLAGS = ("asimd", "asimdhp", "sve", "sve2", "bf16", "i8mm")


def cpu_threads_info() -> dict:
    """How many CPU threads this process may really use, and who limits it."""
    logical = os.cpu_count()
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    load: list[float] | None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "logical_cores": logical,
        "affinity_cores": affinity,
        "cgroup_cpu_limit": _cgroup_cpu_limit(),
        "load_avg": load,
        "thread_env": {k: os.environ.get(k) for k in
                       ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }


# --------------------------------------------------------------------------- cpu

def cpu_info() -> dict:
    fields = _parse_cpuinfo(read_text("/proc/cpuinfo"))
    model = fields.get("model name") or fields.get("Model") or _platform_cpu_model()
    vendor = fields.get("vendor_id") or fields.get("CPU implementer") or _platform_vendor(model)
    flag_line = fields.get("flags") or fields.get("Features")
    flags: dict[str, bool | None]
    if flag_line is not None:
        present = set(flag_line.split())
        names = _ARM_FLAGS if "Features" in fields and "flags" not in fields else _X86_FLAGS
        flags = {name: name in present for name in names}
    else:
        # No flag list (macOS, Windows): unknown, not "absent".
        flags = {name: None for name in _X86_FLAGS}
    threads = cpu_threads_info()
    return {
        "model": model,
        "vendor": vendor,
        "flags": flags,
        "physical_cores": _physical_cores(fields),
        "logical_cores": threads["logical_cores"],
        "affinity_cores": threads["affinity_cores"],
        "cgroup_cpu_limit": threads["cgroup_cpu_limit"],
        "governor": read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "freq_mhz": _cpu_freq_mhz(),
    }


def _parse_cpuinfo(text: str | None) -> dict[str, str]:
    """Fields of the first processor block (plus the global ones on ARM)."""
    out: dict[str, str] = {}
    if not text:
        return out
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor" and "processor" in out:
            continue  # later blocks repeat the same fields
        out.setdefault(key, value)
    # physical-core count needs every block
    pairs = set()
    phys = core = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            phys = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not line.strip():
            if core is not None:
                pairs.add((phys, core))
            phys = core = None
    if core is not None:
        pairs.add((phys, core))
    if pairs:
        out["_physical_pairs"] = str(len(pairs))
    return out


def _physical_cores(fields: dict[str, str]) -> int | None:
    try:
        import psutil  # noqa: PLC0415 - cheap, but keep module import light

        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    except Exception:  # psutil missing or unsupported platform
        pass
    pairs = fields.get("_physical_pairs")
    return int(pairs) if pairs else None


def _platform_cpu_model() -> str | None:
    if sys.platform == "darwin":
        out = run_command(["sysctl", "-n", "machdep.cpu.brand_string"], timeout=2.0)
        if out:
            return out
    return platform.processor() or platform.machine() or None


def _platform_vendor(model: str | None) -> str | None:
    m = (model or "").lower()
    for key, vendor in (("intel", "GenuineIntel"), ("amd", "AuthenticAMD"), ("apple", "Apple")):
        if key in m:
            return vendor
    return None


def _cpu_freq_mhz() -> dict | None:
    base = Path("/sys/devices/system/cpu/cpu0/cpufreq")
    cur, lo, hi = (_read_float(base / f) for f in
                   ("scaling_cur_freq", "cpuinfo_min_freq", "cpuinfo_max_freq"))
    if cur or lo or hi:  # sysfs values are kHz
        return {k: (round(v / 1000.0, 1) if v else None)
                for k, v in (("current", cur), ("min", lo), ("max", hi))}
    try:
        import psutil  # noqa: PLC0415

        f = psutil.cpu_freq()
    except Exception:
        f = None
    if f is None:
        return None
    # psutil reports 0.0 for what it could not read (VMs); 0 is not a frequency
    vals = {"current": f.current or None, "min": f.min or None, "max": f.max or None}
    return vals if any(vals.values()) else None


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by a cgroup v2 quota (containers), None when unlimited/unknown."""
    text = read_text("/sys/fs/cgroup/cpu.max")
    if not text:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        return round(int(parts[0]) / int(parts[1]), 2)
    except (ValueError, ZeroDivisionError):
        return None


# --------------------------------------------------------------------------- helpers

def read_text(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip()
    except OSError:
        return None


def _read_float(path: Path) -> float | None:
    text = read_text(path)
    try:
        return float(text) if text else None
    except ValueError:
        return None


def run_command(cmd: list[str], *, timeout: float, env: dict | None = None, strip: bool = True) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() if strip else proc.stdout

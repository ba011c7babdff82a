"""A modelled CPU power figure for machines without RAPL.

    P = TDP_visible * (IDLE_SHARE + (1 - IDLE_SHARE) * utilisation)
    E = P * window_s

``TDP_visible`` is the package TDP scaled by the logical CPUs this machine
shows over the package's thread count (a 2-vCPU cloud VM is not charged a
whole 360 W socket; a two-socket box is charged two), or ``cpu_tdp_w`` as the
user gave it (meaning: the power of the CPUs we can see, at full load).
``utilisation`` is the machine-wide busy share over the window (so it is
comparable to RAPL, which measures the whole package), falling back to this
process's CPU time.

This is an estimate of factor-of-two quality: it is always reported with
``method="estimate"``, ``is_estimate=True`` and all its inputs, and never
summed into measured energy.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

from xpubench.hardware.telemetry.cpu_load import CpuLoadProbe
from xpubench.hardware.telemetry.energy import EnergyReading

IDLE_SHARE = 0.2           # package power at idle, as a share of TDP (rough)
DEFAULT_W_PER_THREAD = 4.0  # unknown CPU: watts per logical CPU at full load
ESTIMATE_MIN_WINDOW_S = 0.0  # a model, not a meter: nothing to wait for (the >= 1 s window is for real meters)


@dataclass(frozen=True)
class CpuPowerSpec:
    pattern: str      # regex searched in the lower-cased model name
    name: str
    tdp_w: float      # vendor TDP / base power per package (Apple: typical package power)
    threads: int      # logical CPUs per package


# Most specific first: the first row whose pattern matches wins.
TDP_TABLE: tuple[CpuPowerSpec, ...] = (
    CpuPowerSpec(r"xeon.*\b6980p\b", "Xeon 6980P", 500, 256),
    CpuPowerSpec(r"xeon.*\b8592\+?", "Xeon Platinum 8592+", 350, 128),
    CpuPowerSpec(r"xeon.*\b8480\+?", "Xeon Platinum 8480+", 350, 112),
    CpuPowerSpec(r"xeon.*\b8380\b", "Xeon Platinum 8380", 270, 80),
    CpuPowerSpec(r"xeon.*\b8275cl\b", "Xeon Platinum 8275CL", 240, 48),
    CpuPowerSpec(r"xeon.*\b6338\b", "Xeon Gold 6338", 205, 64),
    CpuPowerSpec(r"epyc\s+9754\b", "EPYC 9754", 360, 256),
    CpuPowerSpec(r"epyc\s+9654\b", "EPYC 9654", 360, 192),
    CpuPowerSpec(r"epyc\s+9554\b", "EPYC 9554", 360, 128),
    CpuPowerSpec(r"epyc\s+7763\b", "EPYC 7763", 280, 128),
    CpuPowerSpec(r"epyc\s+7543\b", "EPYC 7543", 225, 64),
    CpuPowerSpec(r"epyc\s+7b13\b", "EPYC 7B13", 240, 128),
    CpuPowerSpec(r"i9-1[34]900k", "Core i9-13900K/14900K", 125, 32),
    CpuPowerSpec(r"i7-12700k", "Core i7-12700K", 125, 20),
    CpuPowerSpec(r"i7-1185g7", "Core i7-1185G7", 28, 8),
    CpuPowerSpec(r"ultra 7 155h", "Core Ultra 7 155H", 28, 22),
    CpuPowerSpec(r"ryzen 9 7950x", "Ryzen 9 7950X", 170, 32),
    CpuPowerSpec(r"ryzen 9 5950x", "Ryzen 9 5950X", 105, 32),
    CpuPowerSpec(r"ryzen 7 (pro )?7840u", "Ryzen 7 7840U", 28, 16),
    CpuPowerSpec(r"apple m[123] (max|ultra)", "Apple M1-M3 Max/Ultra", 60, 16),
    CpuPowerSpec(r"apple m[1234] pro", "Apple M1-M4 Pro", 35, 12),
    CpuPowerSpec(r"apple m[1234]\b", "Apple M1-M4", 20, 8),
    # Family rows for model strings that hide the SKU (cloud VMs show "AMD EPYC").
    CpuPowerSpec(r"\bepyc\b", "EPYC (family, SKU unknown)", 280, 128),
    CpuPowerSpec(r"\bxeon\b", "Xeon (family, SKU unknown)", 250, 80),
)


def lookup_tdp(model: str | None) -> CpuPowerSpec | None:
    text = (model or "").lower()
    text = re.sub(r"\((r|tm)\)", "", text)
    for spec in TDP_TABLE:
        if re.search(spec.pattern, text):
            return spec
    return None


def visible_tdp(model: str | None, logical_cpus: int, cpu_tdp_w: float | None) -> tuple[float, dict]:
    """Watts at full load for the CPUs we can see, and where that number came from."""
    if cpu_tdp_w is not None:
        return float(cpu_tdp_w), {"tdp_w": float(cpu_tdp_w), "tdp_source": "user (cpu_tdp_w)"}
    spec = lookup_tdp(model)
    if spec is None:
        w = DEFAULT_W_PER_THREAD * logical_cpus
        return w, {"tdp_w": None, "tdp_source": f"default: unknown CPU {model!r}, "
                   f"{DEFAULT_W_PER_THREAD:g} W per logical CPU x {logical_cpus}"}
    scale = logical_cpus / spec.threads
    return spec.tdp_w * scale, {
        "tdp_w": spec.tdp_w,
        "tdp_source": f"table: {spec.name} ({spec.tdp_w:g} W, {spec.threads} threads per package)",
        "tdp_scale": round(scale, 4),
    }


class CpuEstimateMeter:
    method = "estimate"
    min_window_s = ESTIMATE_MIN_WINDOW_S

    def __init__(self, cpu_model: str | None, logical_cpus: int, *, cpu_tdp_w: float | None = None,
                 clock: Callable[[], float] = time.perf_counter, why: str | None = None) -> None:
        self.cpu_model = cpu_model
        self.logical_cpus = max(1, logical_cpus)
        self.watts_full, self.tdp_info = visible_tdp(cpu_model, self.logical_cpus, cpu_tdp_w)
        self.probe = CpuLoadProbe(clock, self.logical_cpus)
        self.source = "estimate:cpu-tdp"
        self.scope = "cpu-packages (modelled)"
        self.why = why  # why nothing better was available, e.g. "RAPL: permission denied"
        self.last_load = None

    def start(self) -> None:
        self.probe.start()

    def stop(self) -> EnergyReading:
        load = self.last_load = self.probe.stop()
        util, util_source = load.system_util, "system (psutil cpu_times)"
        if util is None:
            util, util_source = load.process_util, "process CPU time"
        reading = EnergyReading(self.method, self.source, self.scope, is_estimate=True)
        if self.why:
            reading.notes.append(f"no measured CPU energy: {self.why}")
        reading.notes.append("modelled from TDP and utilisation; not a measurement")
        inputs = {
            **self.tdp_info,
            "watts_full_load_visible": round(self.watts_full, 3),
            "logical_cpus": self.logical_cpus,
            "cpu_model": self.cpu_model,
            "utilisation": None if util is None else round(util, 4),
            "utilisation_source": util_source,
            **load.as_dict(),
            "model": f"P = watts_full_load_visible * ({IDLE_SHARE:g} + {1 - IDLE_SHARE:g} * utilisation)",
        }
        reading.details = {"estimate_inputs": inputs}
        if util is None or load.window_s <= 0:
            reading.reason = "no CPU utilisation over the window"
            return reading
        watts = self.watts_full * (IDLE_SHARE + (1 - IDLE_SHARE) * util)
        reading.joules = watts * load.window_s
        return reading

    def close(self) -> None:
        pass

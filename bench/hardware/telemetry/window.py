"""One telemetry window around the timed rounds of a measurement.

    win = open_window(backend.device_kind, backend.spec.device_index)
    win.start()                      # right after a device synchronize
    ... timed rounds, until the window lasts at least win.min_window_s ...
    result = win.stop(steps=N, units_per_step=U)   # right after the final synchronize
    win.close()

``result`` = {"energy": {...}, "host_memory": {...}, "device_state": {...} | None,
"warnings": [...]}.  Choosing the energy source never raises for a missing
driver, file or permission: the window falls through to the next method and
says why.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any, Callable

from xpubench.hardware.telemetry.cpu_load import CpuLoadProbe
from xpubench.hardware.telemetry.energy import EnergyMeter, UnavailableMeter, energy_block
from xpubench.hardware.telemetry.estimate import CpuEstimateMeter
from xpubench.hardware.telemetry.gpu_energy import NvmlCounterMeter, NvmlPowerMeter
from xpubench.hardware.telemetry.gpu_state import GpuStateMonitor
from xpubench.hardware.telemetry.host_memory import HostPeakMeter
from xpubench.hardware.telemetry.nvml import NvmlUnavailable, describe_error, is_not_supported, open_session
from xpubench.hardware.telemetry.rapl import RaplMeter, RaplUnavailable

# Device kinds with an energy source here (``Backend.device_kind``); any other kind
# gets a window whose energy is unavailable, with the reason.
DEVICE_KINDS = ("cpu", "cuda", "tpu")
TPU_REASON = "no energy API for TPU in the VM"


class TelemetryWindow:
    def __init__(self, device_kind: str, energy: EnergyMeter, *, host: HostPeakMeter | None,
                 gpu_state: GpuStateMonitor | None = None, clock: Callable[[], float] = time.perf_counter,
                 open_notes: list[str] | None = None) -> None:
        self.device_kind = device_kind
        self.energy = energy
        self.host = host
        self.gpu_state = gpu_state
        self.clock = clock
        self.load = CpuLoadProbe(clock)
        self.open_notes = list(open_notes or [])
        self._t0: float | None = None
        self._closed = False

    @property
    def min_window_s(self) -> float:
        """Shortest timed window for which the energy figure means something (0 = no energy meter)."""
        return float(self.energy.min_window_s)

    @property
    def energy_method(self) -> str:
        return self.energy.method

    def start(self) -> None:
        if self._closed:
            raise RuntimeError("telemetry window already closed")
        if self._t0 is not None:
            raise RuntimeError("telemetry window already started")
        # cheapest and least time-critical first; the energy edge last, nearest the timed rounds
        if self.host is not None:  # None: the caller meters host memory over the whole case
            self.host.start()
        if self.gpu_state is not None:
            self.gpu_state.start()
        self.load.start()
        self.energy.start()
        self._t0 = self.clock()

    def stop(self, steps: int, units_per_step: float | None = None) -> dict:
        if self._t0 is None:
            raise RuntimeError("telemetry window stopped before start()")
        t1 = self.clock()
        reading = self.energy.stop()
        window_s = t1 - self._t0
        self._t0 = None
        warnings: list[str] = []
        device_state = None
        if self.gpu_state is not None:
            device_state, gpu_warnings = self.gpu_state.stop()
            warnings += gpu_warnings
        host = self.host.stop() if self.host is not None else None
        load = self.load.stop()

        reading.notes[:0] = self.open_notes
        short = self.min_window_s > 0 and window_s < self.min_window_s
        if short and reading.method != "unavailable":
            reading.notes.append(f"window_too_short ({window_s:.3g} s < {self.min_window_s:.3g} s)")
        block = energy_block(reading, window_s=window_s, steps=steps, units_per_step=units_per_step)
        if "zero_delta" in block["notes"]:
            warnings.append(f"energy counter did not advance over the {window_s:.3g} s window; energy not reported")
        if "counter_reset" in block["notes"]:
            warnings.append("GPU energy counter was reset during the window; energy not reported")
        if short and reading.method != "unavailable":
            warnings.append(f"energy window {window_s:.3g} s is shorter than the {self.min_window_s:.3g} s "
                            f"{reading.method} needs; treat energy as rough")
        busy = load.busy_warning()
        if busy:
            warnings.append(busy)
        return {"energy": block, "host_memory": host.as_dict() if host else {}, "device_state": device_state,
                "warnings": warnings}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for part in (self.energy, self.host, self.gpu_state):
            if part is not None:
                part.close()

    def __enter__(self) -> "TelemetryWindow":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_window(device_kind: str, device_index: int | None = None, *, device_uuid: str | None = None,
                cpu_tdp_w: float | None = None, energy_estimate: bool = False, host_memory: bool = True,
                nvml: Any = None, powercap_root: str | Path = "/sys/class/powercap",
                clock: Callable[[], float] = time.perf_counter,
                rapl_reader: Callable[[Path], str] | None = None) -> TelemetryWindow:
    """Pick the best energy source for ``device_kind`` and build a window.

    ``device_kind``: the backend's ``device_kind``: "cpu", "cuda" (an NVIDIA GPU), "tpu",
    or another kind, which has no energy meter here.
    ``device_index``: the framework's device ordinal; ``device_uuid``: its UUID as NVML
    spells it ("GPU-..."), which the backend knows (``Backend.device_uuid()``) and which
    finds the right NVML device whatever the orders; without it the ordinal is mapped
    through CUDA_VISIBLE_DEVICES and the notes say it was assumed.  ``energy_estimate``:
    on a CPU without RAPL, a modelled figure (labelled ``estimate``) instead of "not
    measured". ``host_memory``: False when the caller meters host memory itself (over
    the whole case, from before its build).  ``nvml``, ``rapl_reader``, ``clock``:
    injection points for tests.
    """
    kind = device_kind.lower()
    host = HostPeakMeter() if host_memory else None
    if kind not in DEVICE_KINDS:
        why = f"no energy meter for {kind} devices (meters exist for {', '.join(DEVICE_KINDS)})"
        return TelemetryWindow(kind, UnavailableMeter(why), host=host, clock=clock)
    if kind == "tpu":
        return TelemetryWindow(kind, UnavailableMeter(TPU_REASON, scope="tpu"), host=host, clock=clock)
    if kind == "cpu":
        return TelemetryWindow(kind, _cpu_energy(cpu_tdp_w, powercap_root, rapl_reader, clock, energy_estimate),
                               host=host, clock=clock)
    energy, state, notes = _gpu_energy(device_index, device_uuid, nvml, clock)
    return TelemetryWindow(kind, energy, host=host, gpu_state=state, clock=clock, open_notes=notes)


def _cpu_energy(cpu_tdp_w: float | None, powercap_root: str | Path, reader: Callable[[Path], str] | None,
                clock: Callable[[], float], estimate: bool) -> EnergyMeter:
    try:
        return RaplMeter(powercap_root, reader=reader)
    except RaplUnavailable as exc:
        why = f"RAPL unavailable: {exc}"
    if not estimate:
        # A model of power from utilisation carries no information the time does not:
        # it is not shown as a measurement unless asked for.
        return UnavailableMeter(f"not measured: {why} (--energy-estimate records a modelled figure)",
                                scope="cpu-package")
    return CpuEstimateMeter(_cpu_model(), os.cpu_count() or 1, cpu_tdp_w=cpu_tdp_w, clock=clock, why=why)


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str | None:
    from xpubench.hardware.cpu import cpu_info  # noqa: PLC0415 - only needed for estimates

    return cpu_info().get("model")


def _gpu_energy(device_index: int | None, device_uuid: str | None, nvml: Any, clock: Callable[[], float]
                ) -> tuple[EnergyMeter, GpuStateMonitor | None, list[str]]:
    try:
        session = open_session(nvml)
    except NvmlUnavailable as exc:
        return UnavailableMeter(str(exc), scope="gpu-device"), None, []
    try:
        target = session.locate(device_index, device_uuid)
        handle = session.handle(target.index)
    except session.error as exc:
        return UnavailableMeter(f"no NVML handle for device {device_index}: {describe_error(exc)}",
                                scope="gpu-device"), None, []
    nvml_index, mig_note = target.index, target.mig_note()
    notes = target.notes + ([mig_note] if mig_note else [])
    scope = "mig-parent-gpu" if mig_note else "gpu-device"
    state = GpuStateMonitor(session, handle, nvml_index, target.notes, mig_note=mig_note)

    counter_error: BaseException | None = None
    try:
        NvmlCounterMeter(session, handle, nvml_index).read_mj()
    except session.error as exc:
        counter_error = exc
    if counter_error is None:
        return NvmlCounterMeter(session, handle, nvml_index, infer_period=nvml is None, scope=scope), state, notes
    why = ("energy counter not supported on this GPU (pre-Volta?)" if is_not_supported(session.mod, counter_error)
           else f"energy counter failed: {describe_error(counter_error)}")
    power = NvmlPowerMeter(session, handle, nvml_index, clock=clock, scope=scope)
    try:
        power.read_w()
    except session.error as exc:
        reason = f"{why}; power reading failed too: {describe_error(exc)}"
        return UnavailableMeter(reason, source=f"nvml:{nvml_index}", scope=scope), state, notes
    return power, state, notes + [why + "; integrating sampled power instead"]

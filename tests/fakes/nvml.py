"""A fake pynvml module: the function names bench uses, scripted per device.

Errors are the real pynvml exception classes (nvidia-ml-py imports fine
without a driver), so the code under test catches exactly what it would
catch on a GPU machine. ``missing_symbols`` plays an older driver: the binding
has the function, the library lacks the C symbol, and the call raises
NVML_ERROR_FUNCTION_NOT_FOUND as pynvml does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import pynvml as real


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-11111111-2222-3333-4444-555555555555"
    memory_total: int = 80 * 2**30
    memory_used: int = 1 * 2**30
    sm_clock: int = 1980
    mem_clock: int = 2619
    sm_max: int = 1980
    mem_max: int = 2619
    temperature: int = 45
    power_limit_mw: int = 700_000
    # Scripted readings: each read pops the next value (the last one repeats).
    energy_mj: list[int] | Exception = field(default_factory=lambda: [1_000_000, 1_050_000])
    power_mw: list[int] | Exception = field(default_factory=lambda: [300_000])
    reasons: list[int] = field(default_factory=lambda: [0])
    compute_capability: tuple[int, int] = (9, 0)
    migs: list["FakeMig"] = field(default_factory=list)  # MIG slices, when MIG mode is on


@dataclass(eq=False)
class FakeMig:
    """A MIG slice: its own UUID; no meters of its own (NVML answers NOT_SUPPORTED)."""

    uuid: str
    parent: FakeGpu | None = field(default=None, repr=False)


def _next(seq: list[Any]) -> Any:
    return seq.pop(0) if len(seq) > 1 else seq[0]


class FakeNvml:
    """Drop-in for the pynvml module in bench code paths."""

    # error classes and constants from the real module
    NVMLError = real.NVMLError
    NVMLError_NotSupported = real.NVMLError_NotSupported
    NVMLError_LibraryNotFound = real.NVMLError_LibraryNotFound
    NVMLError_DriverNotLoaded = real.NVMLError_DriverNotLoaded
    NVML_CLOCK_SM = real.NVML_CLOCK_SM
    NVML_CLOCK_MEM = real.NVML_CLOCK_MEM
    NVML_TEMPERATURE_GPU = real.NVML_TEMPERATURE_GPU

    def __init__(self, gpus: list[FakeGpu] | None = None, *, init_error: Exception | None = None,
                 driver: str = "550.54.15", on_read: Callable[[str], None] | None = None,
                 missing_symbols: tuple[str, ...] = ()) -> None:
        self.gpus = [FakeGpu()] if gpus is None else gpus
        for gpu in self.gpus:
            for mig in gpu.migs:
                mig.parent = gpu
        self.init_error = init_error
        self.driver = driver
        self.init_calls = 0
        self.on_read = on_read  # hook so a test can advance a fake clock per reading
        self.missing_symbols = set(missing_symbols)
        self.calls: list[str] = []  # every nvml* function called, in order

    def __getattribute__(self, name: str) -> Any:
        attr = object.__getattribute__(self, name)
        if name.startswith("nvml"):
            object.__getattribute__(self, "calls").append(name)
            if name in object.__getattribute__(self, "missing_symbols"):
                def missing(*args: Any) -> Any:
                    raise real.NVMLError(real.NVML_ERROR_FUNCTION_NOT_FOUND)
                return missing
        return attr

    # --- library
    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        if not 0 <= i < len(self.gpus):
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[i]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu | FakeMig:
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return gpu
            for mig in gpu.migs:
                if mig.uuid == uuid:
                    return mig
        raise real.NVMLError(real.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetIndex(self, h: FakeGpu) -> int:
        if isinstance(h, FakeMig):
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return next(i for i, gpu in enumerate(self.gpus) if gpu is h)  # identity: fakes may be equal

    # --- MIG
    def nvmlDeviceIsMigDeviceHandle(self, h: Any) -> Any:
        return real.c_uint(1 if isinstance(h, FakeMig) else 0)  # pynvml returns the c_uint

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, h: Any) -> FakeGpu:
        if not isinstance(h, FakeMig):
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return h.parent

    def nvmlDeviceGetMaxMigDeviceCount(self, h: FakeGpu) -> int:
        if not h.migs:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: FakeGpu, i: int) -> FakeMig:
        if i >= len(h.migs):
            raise real.NVMLError(real.NVML_ERROR_NOT_FOUND)
        return h.migs[i]

    # --- identity
    def nvmlDeviceGetName(self, h: FakeGpu) -> str:
        return h.name

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        return h.uuid

    def nvmlDeviceGetCudaComputeCapability(self, h: FakeGpu) -> tuple[int, int]:
        return h.compute_capability

    def nvmlDeviceGetMemoryInfo(self, h: FakeGpu, version: Any = None) -> Any:
        return real.c_nvmlMemory_t(total=h.memory_total, free=h.memory_total - h.memory_used,
                                   used=h.memory_used)

    # --- state
    def nvmlDeviceGetClockInfo(self, h: FakeGpu, kind: int) -> int:
        return h.sm_clock if kind == real.NVML_CLOCK_SM else h.mem_clock

    def nvmlDeviceGetMaxClockInfo(self, h: FakeGpu, kind: int) -> int:
        return h.sm_max if kind == real.NVML_CLOCK_SM else h.mem_max

    def nvmlDeviceGetTemperature(self, h: FakeGpu, sensor: int) -> int:
        return h.temperature

    def nvmlDeviceGetTemperatureV(self, h: FakeGpu, sensor: int) -> int:
        return h.temperature

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeGpu) -> int:
        return h.power_limit_mw

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: FakeGpu) -> int:
        return _next(h.reasons)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: FakeGpu) -> int:
        return _next(h.reasons)

    # --- energy
    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeGpu) -> int:
        if isinstance(h, FakeMig):
            raise not_supported()
        if isinstance(h.energy_mj, Exception):
            raise h.energy_mj
        if self.on_read:
            self.on_read("energy")
        return _next(h.energy_mj)

    def nvmlDeviceGetPowerUsage(self, h: FakeGpu) -> int:
        if isinstance(h, FakeMig):
            raise not_supported()
        if isinstance(h.power_mw, Exception):
            raise h.power_mw
        if self.on_read:
            self.on_read("power")
        return _next(h.power_mw)


def not_supported() -> Exception:
    return real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)  # real returns the subclass


def library_not_found() -> Exception:
    return real.NVMLError(real.NVML_ERROR_LIBRARY_NOT_FOUND)


def driver_not_loaded() -> Exception:
    return real.NVMLError(real.NVML_ERROR_DRIVER_NOT_LOADED)


def function_not_found() -> Exception:
    return real.NVMLError(real.NVML_ERROR_FUNCTION_NOT_FOUND)

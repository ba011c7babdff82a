"""The one door to NVML.

pynvml (the ``nvidia-ml-py`` distribution) is imported lazily, the first time
something asks for a session, so ``import bench`` stays fast and works on
machines without it.  Tests inject a fake module with the same function names.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable

# NVML return codes we reason about (stable values from nvml.h); used when an
# injected module raises plain NVMLError objects carrying ``.value``.
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13  # the C symbol is missing from this driver


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used here; ``str(exc)`` says why (one line)."""


def import_pynvml() -> ModuleType:
    """Import pynvml quietly (the deprecated ``pynvml`` shim emits a FutureWarning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import pynvml  # noqa: PLC0415 - lazy on purpose

    return pynvml


def _error_base(mod: Any) -> type[BaseException]:
    base = getattr(mod, "NVMLError", None)
    return base if isinstance(base, type) else Exception


def error_code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def is_not_supported(mod: Any, exc: BaseException) -> bool:
    cls = getattr(mod, "NVMLError_NotSupported", None)
    if isinstance(cls, type) and isinstance(exc, cls):
        return True
    return error_code(exc) == NVML_ERROR_NOT_SUPPORTED


def describe_error(exc: BaseException) -> str:
    """A one-line reason, e.g. 'NVML: NVML Shared Library Not Found'."""
    text = str(exc).strip() or type(exc).__name__
    return f"NVML: {text}"


def _decode(value: Any) -> Any:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


@dataclass
class NvmlSession:
    """An initialised NVML module plus a cache of device handles."""

    mod: Any
    _handles: dict[int, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _answered: dict[tuple[str, ...], str] = field(default_factory=dict)  # call_first's last good name

    @property
    def error(self) -> type[BaseException]:
        return _error_base(self.mod)

    def device_count(self) -> int:
        return int(self.mod.nvmlDeviceGetCount())

    def handle(self, nvml_index: int) -> Any:
        with self._lock:
            if nvml_index not in self._handles:
                self._handles[nvml_index] = self.mod.nvmlDeviceGetHandleByIndex(nvml_index)
            return self._handles[nvml_index]

    def call(self, name: str, *args: Any, default: Any = None) -> Any:
        """Call ``mod.<name>(*args)``; NVML errors or a missing function give ``default``.

        Used for informational queries where one unsupported field must not
        sink the whole record.
        """
        fn: Callable[..., Any] | None = getattr(self.mod, name, None)
        if fn is None:
            return default
        try:
            return _decode(fn(*args))
        except self.error:
            return default

    def call_first(self, names: tuple[str, ...], *args: Any) -> tuple[Any, str | None]:
        """The first of ``names`` that answers: (value, None), or (None, why none did).

        The Python binding has every name, but the C symbol may be missing from an
        older driver (NVML_ERROR_FUNCTION_NOT_FOUND) or the query unsupported: any
        NVML error moves on to the next name. The name that answered is tried first
        next time.
        """
        with self._lock:
            order = sorted(names, key=lambda n: n != self._answered.get(names))
        errors: list[str] = []
        for name in order:
            fn = getattr(self.mod, name, None)
            if fn is None:
                errors.append(f"{name}: not in this pynvml")
                continue
            try:
                value = _decode(fn(*args))
            except self.error as exc:
                errors.append(f"{name}: {describe_error(exc)}")
                continue
            with self._lock:
                self._answered[names] = name
            return value, None
        return None, "; ".join(errors)

    def locate(self, device_index: int | None, device_uuid: str | None = None) -> "NvmlTarget":
        """The NVML device whose meters belong to a framework device (a CUDA ordinal).

        The UUID the framework reports is the only sure link: CUDA orders devices
        fastest first by default, NVML by PCI bus, and CUDA_VISIBLE_DEVICES renumbers
        them. Without a UUID the ordinal (through CUDA_VISIBLE_DEVICES) is an
        assumption, and the notes say so. A MIG slice is metered by its whole GPU.
        """
        idx = 0 if device_index is None else int(device_index)
        notes: list[str] = []
        if device_uuid:
            found = self._find_uuid(device_uuid)
            if found is not None:
                n, mig = found
                return NvmlTarget(n, [f"cuda:{idx} -> NVML index {n} by UUID {device_uuid}"], mig)
            notes.append(f"no NVML device has cuda:{idx}'s UUID {device_uuid}")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if idx < len(entries) and not entries[idx].isdigit():
            # a UUID (GPU-..., possibly abbreviated) or a MIG slice's id
            found = self._find_uuid(entries[idx])
            if found is not None:
                n, mig = found
                return NvmlTarget(n, notes + [f"cuda:{idx} -> NVML index {n} via CUDA_VISIBLE_DEVICES "
                                              f"entry {entries[idx]}"], mig)
            return NvmlTarget(idx, notes + [f"could not map CUDA_VISIBLE_DEVICES entry {entries[idx]!r}; "
                                            f"assumed NVML index {idx}"])
        n = int(entries[idx]) if idx < len(entries) else idx
        how = f"CUDA_VISIBLE_DEVICES={visible}" if idx < len(entries) else "the same ordinal"
        if self.device_count() > 1:
            notes.append(f"cuda:{idx} assumed to be NVML index {n} ({how}); CUDA and NVML may order "
                         "GPUs differently, so energy and clocks may be another GPU's")
        elif idx < len(entries):
            notes.append(f"cuda:{idx} -> NVML index {n} via {how}")
        return NvmlTarget(n, notes)

    def _find_uuid(self, wanted: str) -> tuple[int, str | None] | None:
        """(NVML index of the physical GPU, the MIG slice's UUID or None) for a UUID or prefix."""
        # CUDA reports a MIG slice's own UUID bytes; NVML spells those "MIG-...".
        bare = wanted[4:] if wanted[:4] in ("GPU-", "MIG-") else wanted
        spellings = list(dict.fromkeys([wanted, f"GPU-{bare}", f"MIG-{bare}"]))
        for uuid in spellings:
            handle = self.call("nvmlDeviceGetHandleByUUID", uuid)
            if handle is not None:
                return self._physical(handle, uuid)
        # CUDA_VISIBLE_DEVICES accepts a unique prefix: compare against every GPU and slice
        for n in range(self.device_count()):
            gpu = self.handle(n)
            if self._uuid_matches(gpu, spellings):
                return n, None
            for i in range(int(self.call("nvmlDeviceGetMaxMigDeviceCount", gpu, default=0) or 0)):
                mig = self.call("nvmlDeviceGetMigDeviceHandleByIndex", gpu, i)
                if mig is not None and self._uuid_matches(mig, spellings):
                    return n, self.call("nvmlDeviceGetUUID", mig)
        return None

    def _uuid_matches(self, handle: Any, spellings: list[str]) -> bool:
        uuid = self.call("nvmlDeviceGetUUID", handle, default="") or ""
        return bool(uuid) and any(uuid.startswith(s) for s in spellings)

    def _physical(self, handle: Any, uuid: str) -> tuple[int, str | None] | None:
        is_mig = self.call("nvmlDeviceIsMigDeviceHandle", handle, default=0)
        if int(getattr(is_mig, "value", is_mig) or 0):
            parent = self.call("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle)
            index = self.call("nvmlDeviceGetIndex", parent) if parent is not None else None
            return (int(index), uuid) if index is not None else None
        index = self.call("nvmlDeviceGetIndex", handle)
        return (int(index), None) if index is not None else None


@dataclass(frozen=True)
class NvmlTarget:
    """The physical GPU whose meters stand for a framework device, and how it was found."""

    index: int  # NVML index of the whole GPU
    notes: list[str]
    mig_uuid: str | None = None  # the framework device is this MIG slice of that GPU

    def mig_note(self) -> str | None:
        if self.mig_uuid is None:
            return None
        return (f"MIG slice {self.mig_uuid}: energy, power, clocks and throttle reasons are those of "
                f"the whole GPU (NVML index {self.index}), shared with any other slice's work")


_real_session: NvmlSession | None = None
_real_failure: str | None = None
_real_lock = threading.Lock()


def open_session(nvml: Any = None) -> NvmlSession:
    """Return an initialised session, or raise NvmlUnavailable with the reason.

    With ``nvml`` given (a fake module in tests) a fresh session is made and
    its ``nvmlInit`` called.  Without it, the real pynvml is imported and
    initialised once per process; a failure is remembered so later callers do
    not pay for a second library search.
    """
    if nvml is not None:
        return _init(nvml)
    global _real_session, _real_failure
    with _real_lock:
        if _real_session is not None:
            return _real_session
        if _real_failure is not None:
            raise NvmlUnavailable(_real_failure)
        try:
            mod = import_pynvml()
        except ImportError:
            _real_failure = "nvidia-ml-py (pynvml) is not installed"
            raise NvmlUnavailable(_real_failure) from None
        try:
            _real_session = _init(mod)
        except NvmlUnavailable as exc:
            _real_failure = str(exc)
            raise
        return _real_session


def _init(mod: Any) -> NvmlSession:
    try:
        mod.nvmlInit()
    except _error_base(mod) as exc:
        raise NvmlUnavailable(describe_error(exc)) from None
    except OSError as exc:  # a broken libnvidia-ml can surface as OSError
        raise NvmlUnavailable(f"NVML: {exc}") from None
    return NvmlSession(mod)

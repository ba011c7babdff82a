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

    def nvml_index_for(self, device_index: int | None) -> tuple[int, list[str]]:
        """Map a framework device index (CUDA ordinal) to an NVML index.

        CUDA ordinals count only the devices left visible by
        CUDA_VISIBLE_DEVICES; NVML always sees all of them.  Returns the NVML
        index and notes describing the mapping so it can be recorded.
        """
        idx = 0 if device_index is None else int(device_index)
        notes: list[str] = []
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is None or visible.strip() == "":
            return idx, notes
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if idx >= len(entries):
            return idx, [f"CUDA_VISIBLE_DEVICES={visible!r} has no entry {idx}; using NVML index {idx}"]
        entry = entries[idx]
        if entry.isdigit():
            notes.append(f"cuda:{idx} -> NVML index {entry} via CUDA_VISIBLE_DEVICES={visible}")
            return int(entry), notes
        # A UUID (GPU-..., possibly abbreviated) or MIG id: find it by prefix.
        for n in range(self.device_count()):
            uuid = self.call("nvmlDeviceGetUUID", self.handle(n), default="") or ""
            if uuid and (uuid == entry or uuid.startswith(entry)):
                notes.append(f"cuda:{idx} -> NVML index {n} via CUDA_VISIBLE_DEVICES uuid {entry}")
                return n, notes
        notes.append(f"could not map CUDA_VISIBLE_DEVICES entry {entry!r}; using NVML index {idx}")
        return idx, notes


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

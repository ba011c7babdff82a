"""The typed view over one measurement record (with ``run_view``, the only code that knows the JSON layout).

Compare, the nightly gate and the report read records through :class:`Measurement`
and runs through :class:`xpubench.results.run_view.Run`; a field moved or added in
the results file is changed here once. A value that is absent, null, NaN or of the
wrong type reads as ``None`` (unknown), never 0. Old files (fewer fields) and
converted pytest-benchmark files read through the same accessors.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator, Mapping

from xpubench.results.schema import FAILED_STATUSES

DEFAULT_UNIT = "units"
CONFIDENCE = 0.95  # of the stored (or derived) CI of the median

Key = tuple[str, str, str, str]  # suite, case, mode, backend


def finite(x: Any) -> float | None:
    """A finite float, or None (JSON null, NaN, strings, booleans)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _positive(x: Any) -> float | None:
    x = finite(x)
    return x if x is not None and x > 0 else None


def block(holder: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``holder[key]`` when it is a JSON object, else an empty one."""
    value = holder.get(key)
    return value if isinstance(value, Mapping) else {}


# --------------------------------------------------------------------------- backend strings
_DEVICE_RE = re.compile(r"^(.*?)(\d+)$")


@dataclass(frozen=True)
class BackendParts:
    """``framework:device[N]:precision`` split into its parts ("" where a part is missing)."""

    framework: str
    device: str  # as written, index included: "cuda1"
    device_kind: str  # "cuda"
    device_index: int | None
    precision: str

    def with_precision(self, precision: str) -> str:
        """The same framework and device at another precision: the fp32 twin of a reduced mode."""
        return f"{self.framework}:{self.device}:{precision}"


def split_backend(text: Any) -> BackendParts:
    """The one neutral splitter of backend strings: ``torch:cuda1:bf16`` -> torch, cuda1 (cuda, 1), bf16.

    It validates nothing (``xpubench.backends`` parses specs it can run); a results
    file may name a runtime this installation does not know.
    """
    framework, device, precision = (str(text).split(":", 2) + ["", ""])[:3]
    m = _DEVICE_RE.match(device)
    kind, index = (m.group(1), int(m.group(2))) if m and m.group(1) else (device, None)
    return BackendParts(framework, device, kind, index, precision)


# --------------------------------------------------------------------------- telemetry blocks
@dataclass(frozen=True)
class Memory:
    """The ``memory`` block: peaks above the case's baseline, with the method of each."""

    device_peak_bytes: float | None
    host_peak_bytes: float | None
    device_method: str | None
    host_method: str | None
    shared_method: str | None  # older files name one ``method`` for both peaks

    def peak(self, kind: str) -> float | None:
        return self.device_peak_bytes if kind == "device" else self.host_peak_bytes

    def method(self, kind: str) -> str | None:
        own = self.device_method if kind == "device" else self.host_method
        return own or self.shared_method

    @property
    def headline(self) -> tuple[float, str, str] | None:
        """(bytes, "device" | "host", method): the device peak when measured, else the host peak."""
        for kind in ("device", "host"):
            b = self.peak(kind)
            if b is not None and b > 0:
                return b, kind, self.method(kind) or ""
        return None


@dataclass(frozen=True)
class Energy:
    """The ``energy`` block; a modelled estimate says so (``is_estimate``)."""

    joules_per_step: float | None
    joules_per_unit: float | None  # stored, else per step / units per step
    avg_power_w: float | None
    method: str
    is_estimate: bool


# --------------------------------------------------------------------------- one measurement
# Fields the named accessors cover (and ``name``, ``size``, ``traceback``: the case, the run's size,
# and text too long for a record view); :meth:`Measurement.other_fields` yields the rest.
_NAMED = frozenset({"suite", "case", "name", "params", "mode", "backend", "framework", "device", "precision",
                    "status", "reason", "time_s", "unit", "units_per_step", "throughput_per_s", "memory",
                    "energy", "traceback", "size", "roofline", "first_call_s", "warmup_s", "compile_s",
                    "error_vs_fp32"})
# (drift and the overheads have accessors too, but the record view shows them as they are stored)
_NAMED_TIME = frozenset({"median", "ci95", "rounds", "iterations_per_round", "stop_reason", "iqr", "samples"})


@dataclass(frozen=True, eq=False)
class Measurement:
    """One measurement record (a dict of a results file), read through typed accessors."""

    raw: Mapping[str, Any]

    @classmethod
    def of(cls, record: "Measurement | Mapping[str, Any]") -> "Measurement":
        return record if isinstance(record, Measurement) else cls(record)

    def get(self, key: str, default: Any = None) -> Any:
        """A field no accessor names (e.g. one a newer version added), as stored."""
        return self.raw.get(key, default)

    def with_fields(self, **fields: Any) -> "Measurement":
        """A view of a copy of the record with ``fields`` set (the record itself is not changed)."""
        return Measurement({**self.raw, **fields})

    # ----------------------------------------------------------------- identity
    @property
    def suite(self) -> str:
        return str(self.raw.get("suite", ""))

    @property
    def case(self) -> str:
        return str(self.raw.get("case", ""))

    @property
    def case_name(self) -> str:
        """The case without a ``suite/`` prefix (some writers include it)."""
        case, suite = self.case, self.suite
        return case[len(suite) + 1:] if suite and case.startswith(suite + "/") else case

    @property
    def mode(self) -> str:
        return str(self.raw.get("mode", ""))

    @property
    def params(self) -> dict[str, Any]:
        p = self.raw.get("params")
        return dict(p) if isinstance(p, Mapping) else {}

    @property
    def backend(self) -> str:
        return str(self.raw.get("backend", ""))

    @cached_property
    def backend_parts(self) -> BackendParts:
        return split_backend(self.backend)

    @property
    def framework(self) -> str:
        return self.backend_parts.framework

    @property
    def device(self) -> str:
        return self.backend_parts.device

    @property
    def precision(self) -> str:
        return self.backend_parts.precision

    @property
    def key(self) -> Key:
        return (self.suite, self.case, self.mode, self.backend)

    @property
    def status(self) -> str:
        return str(self.raw.get("status") or "ok")

    @property
    def reason(self) -> str:
        r = self.raw.get("reason")
        return "" if r is None else str(r)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        """oom, timeout, crashed, diverged, error: it ran and did not finish (skipped is not failed)."""
        return self.status in FAILED_STATUSES

    # ----------------------------------------------------------------- time
    @property
    def time_block(self) -> Mapping[str, Any]:
        return block(self.raw, "time_s")

    @cached_property
    def samples(self) -> tuple[float, ...]:
        """The positive, finite per-round seconds per step (empty when none were stored)."""
        raw = self.time_block.get("samples")
        if not isinstance(raw, list):
            return ()
        # one pass, no call per value: thousands of records x dozens of rounds in a report
        return tuple(float(v) for v in raw if type(v) in (float, int) and 0 < v < math.inf)

    @cached_property
    def median(self) -> float | None:
        """Median seconds per step: stored, else the median of the samples."""
        med = _positive(self.time_block.get("median"))
        if med is None and self.samples:
            from xpubench.measure.stats import quantile

            med = quantile(sorted(self.samples), 0.5)
        return med

    @property
    def stored_ci95(self) -> tuple[float, float] | None:
        ci = self.time_block.get("ci95")
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            lo, hi = finite(ci[0]), finite(ci[1])
            if lo is not None and hi is not None and 0 < lo <= hi:
                return lo, hi
        return None

    @cached_property
    def ci95(self) -> tuple[float, float] | None:
        """95% CI of the median: stored, else from the samples by the timing loop's own rule."""
        stored = self.stored_ci95
        if stored is not None or len(self.samples) < 2:
            return stored
        from xpubench.measure.median_ci import median_ci

        ci = median_ci(self.samples, CONFIDENCE)
        return ci.low, ci.high

    @property
    def rel_ci(self) -> float | None:
        """Half-width of the CI relative to the median (the larger side)."""
        ci, med = self.ci95, self.median
        if ci is None or med is None:
            return None
        return max(med - ci[0], ci[1] - med) / med

    @property
    def rounds(self) -> int | None:
        n = self.time_block.get("rounds")
        if isinstance(n, int) and not isinstance(n, bool):
            return n
        return len(self.samples) or None

    @property
    def iterations_per_round(self) -> int | None:
        n = self.time_block.get("iterations_per_round")
        return n if isinstance(n, int) and not isinstance(n, bool) else None

    @property
    def stop_reason(self) -> str | None:
        r = self.time_block.get("stop_reason")
        return str(r) if r else None

    @property
    def iqr(self) -> float | None:
        return finite(self.time_block.get("iqr"))

    @property
    def drift(self) -> float | None:
        """Relative change of the median from the first third of the rounds to the last third."""
        return finite(self.time_block.get("drift"))

    @property
    def timer_overhead_s(self) -> float | None:
        return finite(self.time_block.get("timer_overhead_s"))

    @property
    def overhead_fraction(self) -> float | None:
        """The harness's own cost as a fraction of a timed round."""
        return finite(self.time_block.get("overhead_fraction"))

    @property
    def warmup_s(self) -> float | None:
        return finite(self.raw.get("warmup_s"))

    @property
    def compile_s(self) -> float | None:
        return finite(self.raw.get("compile_s"))

    @property
    def first_call_s(self) -> float | None:
        return finite(self.raw.get("first_call_s"))

    # ----------------------------------------------------------------- work
    @property
    def unit(self) -> str:
        return str(self.raw.get("unit") or DEFAULT_UNIT)

    @property
    def units_per_step(self) -> float | None:
        u = finite(self.raw.get("units_per_step"))
        if u is None:
            thr, med = finite(self.raw.get("throughput_per_s")), self.median
            if thr is not None and med is not None:
                u = thr * med
        return u

    @property
    def throughput(self) -> float | None:
        """Units of work per second: stored, else units per step / median."""
        thr = finite(self.raw.get("throughput_per_s"))
        if thr is None:
            u, med = finite(self.raw.get("units_per_step")), self.median
            if u is not None and med:
                thr = u / med
        return thr if thr and thr > 0 else None

    @property
    def throughput_ci(self) -> tuple[float, float] | None:
        """CI of the throughput from the CI of the median time (slow end -> low throughput)."""
        ci, u = self.ci95, self.units_per_step
        if ci is None or not u:
            return None
        return u / ci[1], u / ci[0]

    @property
    def flops_per_step(self) -> float | None:
        return _positive(self.raw.get("flops_per_step"))

    @property
    def bytes_per_step(self) -> float | None:
        return _positive(self.raw.get("bytes_per_step"))

    # ----------------------------------------------------------------- telemetry and quality
    @property
    def memory(self) -> Memory | None:
        mem = self.raw.get("memory")
        if not isinstance(mem, Mapping):
            return None
        text = lambda k: str(mem.get(k)) if mem.get(k) else None  # noqa: E731
        return Memory(finite(mem.get("device_peak_bytes")), finite(mem.get("host_peak_bytes")),
                      text("device_method"), text("host_method"), text("method"))

    @property
    def peak_memory(self) -> tuple[float, str, str] | None:
        """(bytes, "device" | "host", method) of the headline peak, or None."""
        mem = self.memory
        return mem.headline if mem else None

    @property
    def energy(self) -> Energy | None:
        e = self.raw.get("energy")
        if not isinstance(e, Mapping):
            return None
        per_step = finite(e.get("joules_per_step"))
        per_unit = finite(e.get("joules_per_unit"))
        if per_unit is None and per_step is not None:
            u = self.units_per_step
            per_unit = per_step / u if u else None
        return Energy(per_step, per_unit, finite(e.get("avg_power_w")), str(e.get("method") or "unknown"),
                      e.get("method") == "estimate" or e.get("is_estimate") is True)

    @property
    def roofline(self) -> dict[str, Any] | None:
        """The record's ``roofline`` block (``xpubench.hardware.roofline.FIELDS``), or None."""
        rf = self.raw.get("roofline")
        return dict(rf) if isinstance(rf, Mapping) else None

    @property
    def error_vs_fp32(self) -> float | None:
        return finite(self.raw.get("error_vs_fp32"))

    @property
    def warnings(self) -> list[str]:
        w = self.raw.get("warnings")
        return [str(x) for x in w] if isinstance(w, list) else []

    @property
    def notes(self) -> dict[str, Any]:
        n = self.raw.get("notes")
        return dict(n) if isinstance(n, Mapping) else {}

    def other_fields(self) -> Iterator[tuple[str, Any]]:
        """Fields no accessor above names (newer or suite-specific ones), in file order."""
        return ((k, v) for k, v in self.raw.items() if k not in _NAMED)

    def other_time_fields(self) -> Iterator[tuple[str, Any]]:
        return ((k, v) for k, v in self.time_block.items() if k not in _NAMED_TIME)

"""Energy readings and the ``energy`` block of a measurement.

Every meter returns an ``EnergyReading`` for one window.  ``joules`` is None
whenever we could not measure (never 0), with ``reason`` saying why.  An
estimate is always labelled ``method="estimate"`` and ``is_estimate=True``, so
no consumer can add it to measured totals by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

METHODS = ("nvml-counter", "nvml-power", "rapl", "estimate", "unavailable")

# Our own rough, documented uncertainty class per method (no vendor publishes
# one): counters are good to a few percent over long enough windows, polled
# power is worse (it is often a 1 s moving average), estimates are
# factor-of-two guesses.
UNCERTAINTY = {
    "nvml-counter": "a few % (counter resolution over the window)",
    "nvml-power": "~10% or worse (sampled, averaged power)",
    "rapl": "a few % (package counters, whole socket)",
    "estimate": "factor of 2 (modelled, not measured)",
    "unavailable": None,
}


@dataclass
class EnergyReading:
    """What one meter saw over one window."""

    method: str
    source: str
    scope: str
    joules: float | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    is_estimate: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown energy method {self.method!r}; expected one of {METHODS}")
        if self.method == "estimate":
            self.is_estimate = True  # cannot be switched off


class EnergyMeter(Protocol):
    """One energy source over one window; the window calls start, stop, close."""

    method: str
    min_window_s: float

    def start(self) -> None: ...
    def stop(self) -> EnergyReading: ...
    def close(self) -> None: ...


def energy_block(reading: EnergyReading, *, window_s: float | None, steps: int,
                 units_per_step: float | None) -> dict:
    """The ``energy`` dict of a measurement (results-file names)."""
    joules = reading.joules
    notes = list(reading.notes)
    reason = reading.reason
    if joules is not None and joules == 0.0:
        # A zero delta means the counter did not update inside the window,
        # not that the work was free.
        notes.append("zero_delta")
        reason = reason or "energy counter did not advance during the window (window too short?)"
        joules = None
    if joules is not None and joules < 0:
        notes.append("negative_delta")
        reason = reason or "energy went backwards during the window"
        joules = None
    per_step = joules / steps if joules is not None and steps > 0 else None
    units = steps * units_per_step if units_per_step else None
    per_unit = joules / units if joules is not None and units else None
    power = joules / window_s if joules is not None and window_s and window_s > 0 else None
    if joules is None and reason is None:
        reason = "no energy reading"
    block = {
        "joules_per_step": per_step,
        "joules_per_unit": per_unit,
        "avg_power_w": power,
        "joules": joules,
        "window_s": window_s,
        "method": reading.method,
        "source": reading.source,
        "scope": reading.scope,
        "is_estimate": reading.is_estimate,
        "uncertainty": UNCERTAINTY.get(reading.method),
        "notes": notes,
        "reason": reason if joules is None else reading.reason,
    }
    block.update(reading.details)
    return block


class UnavailableMeter:
    """No energy source here (TPU VMs, NVML missing ...): values stay None."""

    method = "unavailable"
    min_window_s = 0.0  # nothing to wait for, so do not make the runner wait

    def __init__(self, reason: str, *, source: str = "none", scope: str = "none",
                 notes: list[str] | None = None) -> None:
        self.reason = reason
        self.source = source
        self.scope = scope
        self.notes = list(notes or [])

    def start(self) -> None:
        pass

    def stop(self) -> EnergyReading:
        return EnergyReading("unavailable", self.source, self.scope, None, self.reason, list(self.notes))

    def close(self) -> None:
        pass

"""CPU package (and DRAM) energy from the Linux powercap RAPL counters.

Zones live under /sys/class/powercap as ``intel-rapl:N`` (packages, also on
recent AMD kernels) or ``amd-rapl:N``, with sub-zones ``intel-rapl:N:M``.
We count each package plus its ``dram`` sub-zone, and skip ``psys`` (the
whole platform, which already contains the packages) and the ``core`` /
``uncore`` sub-zones (parts of their package): summing them would count the
same joules twice.  ``intel-rapl-mmio`` duplicates the package domain and is
skipped for the same reason.

Counters wrap at ``max_energy_range_uj``.  A daemon thread polls them often
enough that no two wraps can happen between polls, and each poll adds
``(now - before) mod range``; so any number of wraps between the window's
edges is counted.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from xpubench.hardware.telemetry.energy import EnergyReading
from xpubench.hardware.telemetry.poller import Poller

ZONE_RE = re.compile(r"^(?:intel|amd)-rapl:(\d+)(?::(\d+))?$")
RAPL_MIN_WINDOW_S = 1.0  # counters update about every 1 ms
# Power we assume no single zone exceeds, to pick a poll period that sees every wrap.
ASSUMED_MAX_ZONE_W = 1000.0

Reader = Callable[[Path], str]


def _default_reader(path: Path) -> str:
    return path.read_text()


class RaplUnavailable(RuntimeError):
    """RAPL cannot be used here; ``str(exc)`` is the reason."""


@dataclass
class RaplZone:
    zone_id: str          # "intel-rapl:0:0"
    label: str            # "package-0", "package-0/dram"
    kind: str             # "package" | "dram"
    path: Path
    max_range_uj: int


@dataclass
class WrapCounter:
    """Unfolds one wrapping energy_uj file into a monotonic total (µJ)."""

    zone: RaplZone
    reader: Reader
    last_raw: int | None = None
    total_uj: int = 0
    wraps: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def read_raw(self) -> int:
        return int(self.reader(self.zone.path / "energy_uj").strip())

    def update(self) -> int:
        """Read once, fold the change into the total, return the total."""
        with self._lock:  # read inside the lock: a stale read landing late would look like a wrap
            raw = self.read_raw()
            if self.last_raw is not None:
                if raw < self.last_raw:
                    self.wraps += 1
                self.total_uj += (raw - self.last_raw) % self.zone.max_range_uj
            self.last_raw = raw
            return self.total_uj


def discover_zones(root: Path | str, reader: Reader = _default_reader) -> tuple[list[RaplZone], list[str]]:
    """Zones to count, and notes on the ones skipped.  Raises RaplUnavailable."""
    root = Path(root)
    if not root.is_dir():
        raise RaplUnavailable(f"{root} not found (no powercap RAPL interface)")
    found: dict[str, Path] = {}
    # flat (/sys/class/powercap/intel-rapl:0) and nested (.../intel-rapl/intel-rapl:0/intel-rapl:0:0)
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if ZONE_RE.match(entry.name):
                found.setdefault(entry.name, entry)
            if depth < 2 and entry.is_dir() and (ZONE_RE.match(entry.name) or entry.name in ("intel-rapl", "amd-rapl")):
                stack.append((entry, depth + 1))
    if not found:
        raise RaplUnavailable(f"no RAPL zones under {root}")

    names: dict[str, str] = {}
    for zone_id, path in found.items():
        try:
            names[zone_id] = reader(path / "name").strip()
        except PermissionError:
            raise RaplUnavailable(f"permission denied reading {path / 'name'}") from None
        except OSError:
            names[zone_id] = ""

    zones: list[RaplZone] = []
    skipped: list[str] = []
    for zone_id in sorted(found, key=_zone_sort_key):
        name = names[zone_id]
        pkg, sub = ZONE_RE.match(zone_id).groups()
        if sub is None:
            if name.startswith("package") or name == "dram":
                kind, label = ("package" if name.startswith("package") else "dram"), name
            else:  # psys and unknown platform domains overlap the packages
                skipped.append(f"skipped {zone_id} ({name or 'unnamed'}): overlaps package domains")
                continue
        else:
            if name != "dram":  # core/uncore are parts of their package
                skipped.append(f"skipped {zone_id} ({name or 'unnamed'}): sub-zone of a package")
                continue
            parent = names.get(zone_id.rsplit(":", 1)[0]) or f"package-{pkg}"
            kind, label = "dram", f"{parent}/dram"
        try:
            max_range = int(reader(found[zone_id] / "max_energy_range_uj").strip())
        except PermissionError:
            raise RaplUnavailable(f"permission denied reading {found[zone_id] / 'max_energy_range_uj'}") from None
        except (OSError, ValueError):
            skipped.append(f"skipped {zone_id} ({name}): no max_energy_range_uj")
            continue
        zones.append(RaplZone(zone_id, label, kind, found[zone_id], max_range))
    if not any(z.kind == "package" for z in zones):
        raise RaplUnavailable(f"no RAPL package zone under {root}")
    return zones, skipped


def _zone_sort_key(zone_id: str) -> tuple[int, int]:
    pkg, sub = ZONE_RE.match(zone_id).groups()
    return int(pkg), -1 if sub is None else int(sub)


class RaplMeter:
    """Energy of all CPU packages (+ DRAM) between start() and stop()."""

    method = "rapl"
    min_window_s = RAPL_MIN_WINDOW_S

    def __init__(self, root: Path | str = "/sys/class/powercap", *, reader: Reader | None = None,
                 poll_interval_s: float | None = None, start_thread: bool = True) -> None:
        self.reader = reader or _default_reader
        zones, self.skipped = discover_zones(root, self.reader)
        self.notes: list[str] = []
        self.counters: list[WrapCounter] = []
        for zone in zones:
            counter = WrapCounter(zone, self.reader)
            try:
                counter.update()
            except PermissionError:
                if zone.kind == "package":
                    raise RaplUnavailable(
                        f"permission denied reading {zone.path / 'energy_uj'} "
                        "(RAPL energy is root-only since Linux 5.10)") from None
                self.notes.append(f"dropped {zone.label}: permission denied")
                continue
            except (OSError, ValueError) as exc:
                if zone.kind == "package":
                    raise RaplUnavailable(f"cannot read {zone.path / 'energy_uj'}: {exc}") from None
                self.notes.append(f"dropped {zone.label}: {exc}")
                continue
            self.counters.append(counter)
        self.source = "rapl:" + "+".join(c.zone.label for c in self.counters)
        self.scope = "cpu-packages+dram" if any(c.zone.kind == "dram" for c in self.counters) else "cpu-packages"
        self.poll_interval_s = poll_interval_s or self._safe_poll_interval()
        self.start_thread = start_thread
        self._base: dict[str, int] = {}
        self._wraps_base: dict[str, int] = {}
        self._errors: list[str] = []
        self._poller = Poller(self.poll, self.poll_interval_s, "xpubench-rapl")

    def _safe_poll_interval(self) -> float:
        # fastest possible wrap: range / max power; poll 4x faster, at most every 1 s
        wrap_s = min(c.zone.max_range_uj for c in self.counters) / 1e6 / ASSUMED_MAX_ZONE_W
        return max(0.01, min(1.0, wrap_s / 4))

    def poll(self) -> None:
        """Read every counter once (the thread calls this; tests call it directly)."""
        for c in self.counters:
            try:
                c.update()
            except (OSError, ValueError) as exc:
                if len(self._errors) < 3:
                    self._errors.append(f"{c.zone.label}: {exc}")

    def start(self) -> None:
        self._poller.stop()
        self._errors = []
        self._base = {}
        for c in self.counters:
            self._base[c.zone.label] = c.update()
            self._wraps_base[c.zone.label] = c.wraps
        if self.start_thread:
            self._poller.start()

    def stop(self) -> EnergyReading:
        self._poller.stop()
        reading = EnergyReading(self.method, self.source, self.scope, notes=list(self.notes))
        if not self._base:
            reading.reason = "RaplMeter.stop() without start()"
            return reading
        components: dict[str, float] = {}
        wraps = 0
        try:
            for c in self.counters:
                components[c.zone.label] = (c.update() - self._base[c.zone.label]) / 1e6
                wraps += c.wraps - self._wraps_base[c.zone.label]
        except (OSError, ValueError) as exc:
            reading.reason = f"RAPL counter unreadable at window end: {exc}"
            return reading
        if wraps:
            reading.notes.append(f"wrapped x{wraps} (unfolded)")
        if self._errors:
            reading.notes.append("poll errors: " + "; ".join(self._errors))
        reading.joules = sum(components.values())
        reading.details = {"components_j": components}
        self._base = {}
        return reading

    def close(self) -> None:
        self._poller.stop()

"""Build a fake /sys/class/powercap tree and script its energy counters."""

from __future__ import annotations

import os
from pathlib import Path

MAX_RANGE_UJ = 10_000_000  # a 10 J counter range, so tests can wrap it easily


class FakePowercap:
    """Zones under ``root``; ``set_energy`` rewrites energy_uj atomically.

    Atomic writes matter: the meter's poll thread may read at any moment, and
    a half-written number would look like a counter wrap.
    """

    def __init__(self, root: Path, *, prefix: str = "intel-rapl", nested: bool = False) -> None:
        self.root = Path(root)
        self.prefix = prefix
        self.nested = nested
        self.zones: dict[str, Path] = {}
        self.root.mkdir(parents=True, exist_ok=True)

    def add_zone(self, zone_id: str, name: str, energy_uj: int = 0, max_range_uj: int = MAX_RANGE_UJ) -> Path:
        parts = zone_id.split(":")
        if self.nested:
            base = self.root / self.prefix
            path = base / ":".join(parts[:2])
            if len(parts) == 3:
                path = path / zone_id
        else:
            path = self.root / zone_id
        path.mkdir(parents=True, exist_ok=True)
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        self.zones[zone_id] = path
        self.set_energy(zone_id, energy_uj)
        return path

    def set_energy(self, zone_id: str, energy_uj: int) -> None:
        path = self.zones[zone_id] / "energy_uj"
        tmp = path.with_name("energy_uj.tmp")
        tmp.write_text(f"{energy_uj}\n")
        os.replace(tmp, path)


def standard_tree(root: Path, *, prefix: str = "intel-rapl", nested: bool = False) -> FakePowercap:
    """package-0 with dram and core sub-zones, plus a psys zone (both to be ignored)."""
    pc = FakePowercap(root, prefix=prefix, nested=nested)
    pc.add_zone(f"{prefix}:0", "package-0", 1_000_000)
    pc.add_zone(f"{prefix}:0:0", "dram", 100_000)
    pc.add_zone(f"{prefix}:0:1", "core", 500_000)
    pc.add_zone(f"{prefix}:1", "psys", 2_000_000)
    return pc

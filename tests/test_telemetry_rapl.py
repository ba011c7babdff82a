"""RAPL from a fake powercap tree: zone choice, wraps, permissions."""

from __future__ import annotations

from pathlib import Path

import pytest

from xpubench.hardware.telemetry import open_window
from xpubench.hardware.telemetry.rapl import RaplMeter, RaplUnavailable, discover_zones
from tests.fakes.powercap import MAX_RANGE_UJ, FakePowercap, standard_tree


def test_discovery_keeps_package_and_dram_skips_psys_and_core(tmp_path):
    standard_tree(tmp_path)
    zones, skipped = discover_zones(tmp_path)
    assert [(z.zone_id, z.label, z.kind) for z in zones] == [
        ("intel-rapl:0", "package-0", "package"),
        ("intel-rapl:0:0", "package-0/dram", "dram"),
    ]
    assert any("intel-rapl:1 (psys)" in s for s in skipped)
    assert any("intel-rapl:0:1 (core)" in s for s in skipped)
    assert zones[0].max_range_uj == MAX_RANGE_UJ


@pytest.mark.parametrize("prefix, nested", [("intel-rapl", True), ("amd-rapl", False)])
def test_discovery_nested_layout_and_amd_root(tmp_path, prefix, nested):
    standard_tree(tmp_path, prefix=prefix, nested=nested)
    zones, _ = discover_zones(tmp_path)
    assert [z.label for z in zones] == ["package-0", "package-0/dram"]


def test_two_packages_each_with_dram(tmp_path):
    pc = standard_tree(tmp_path)
    pc.add_zone("intel-rapl:2", "package-1", 0)
    pc.add_zone("intel-rapl:2:0", "dram", 0)
    meter = RaplMeter(tmp_path, start_thread=False)
    meter.start()
    for zone in ("intel-rapl:0", "intel-rapl:0:0", "intel-rapl:2", "intel-rapl:2:0"):
        pc.set_energy(zone, {"intel-rapl:0": 2_000_000, "intel-rapl:0:0": 200_000,
                             "intel-rapl:2": 1_000_000, "intel-rapl:2:0": 100_000}[zone])
    reading = meter.stop()
    assert reading.details["components_j"] == pytest.approx(
        {"package-0": 1.0, "package-0/dram": 0.1, "package-1": 1.0, "package-1/dram": 0.1})
    assert reading.joules == pytest.approx(2.2)


def test_simple_window_sums_package_and_dram_not_psys_or_core(tmp_path):
    pc = standard_tree(tmp_path)
    meter = RaplMeter(tmp_path, start_thread=False)
    assert meter.scope == "cpu-packages+dram"
    meter.start()
    pc.set_energy("intel-rapl:0", 3_000_000)   # +2 J
    pc.set_energy("intel-rapl:0:0", 600_000)   # +0.5 J
    pc.set_energy("intel-rapl:0:1", 2_500_000)  # core: ignored
    pc.set_energy("intel-rapl:1", 9_000_000)   # psys: ignored
    reading = meter.stop()
    assert reading.method == "rapl" and not reading.is_estimate
    assert reading.joules == pytest.approx(2.5)
    assert reading.details["components_j"] == pytest.approx({"package-0": 2.0, "package-0/dram": 0.5})


def test_single_wrap_unfolded(tmp_path):
    pc = standard_tree(tmp_path)
    pc.set_energy("intel-rapl:0", 9_000_000)
    meter = RaplMeter(tmp_path, start_thread=False)
    meter.start()
    pc.set_energy("intel-rapl:0", 1_000_000)  # 9 -> 10 (wrap) -> 1: +2 J
    reading = meter.stop()
    assert reading.details["components_j"]["package-0"] == pytest.approx(2.0)
    assert "wrapped x1 (unfolded)" in reading.notes


def test_two_wraps_between_edges_counted_by_polls(tmp_path):
    pc = standard_tree(tmp_path)
    pc.set_energy("intel-rapl:0", 9_000_000)
    meter = RaplMeter(tmp_path, start_thread=False)
    meter.start()
    pc.set_energy("intel-rapl:0", 5_000_000)  # wrap 1: +6 J
    meter.poll()
    pc.set_energy("intel-rapl:0", 4_000_000)  # wrap 2: +9 J
    meter.poll()
    pc.set_energy("intel-rapl:0", 6_000_000)  # +2 J
    reading = meter.stop()
    assert reading.details["components_j"]["package-0"] == pytest.approx(17.0)
    assert "wrapped x2 (unfolded)" in reading.notes


def test_poll_interval_fast_enough_to_see_every_wrap(tmp_path):
    standard_tree(tmp_path)
    meter = RaplMeter(tmp_path, start_thread=False)
    # a 10 J range at up to 1000 W wraps every 10 ms: poll at the 10 ms floor
    assert meter.poll_interval_s <= 0.01 + 1e-12
    big = tmp_path / "big"
    pc = FakePowercap(big)
    pc.add_zone("intel-rapl:0", "package-0", 0, max_range_uj=262_143_328_850)
    assert RaplMeter(big, start_thread=False).poll_interval_s == 1.0


def _denying(names: tuple[str, ...]):
    def reader(path: Path) -> str:
        if any(str(path).endswith(n) for n in names):
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text()
    return reader


def test_permission_denied_is_unavailable_not_crash(tmp_path):
    standard_tree(tmp_path)
    with pytest.raises(RaplUnavailable, match="^permission denied"):
        RaplMeter(tmp_path, reader=_denying(("intel-rapl:0/energy_uj",)), start_thread=False)


def test_permission_denied_on_dram_only_drops_dram(tmp_path):
    pc = standard_tree(tmp_path)
    meter = RaplMeter(tmp_path, reader=_denying(("intel-rapl:0:0/energy_uj",)), start_thread=False)
    assert meter.scope == "cpu-packages"
    meter.start()
    pc.set_energy("intel-rapl:0", 2_000_000)
    reading = meter.stop()
    assert reading.joules == pytest.approx(1.0)
    assert any("dram" in n and "permission denied" in n for n in reading.notes)


def test_open_window_cpu_falls_back_to_estimate_on_permission_error(tmp_path):
    standard_tree(tmp_path)
    win = open_window("cpu", powercap_root=tmp_path, rapl_reader=_denying(("energy_uj",)), energy_estimate=True)
    win.start()
    res = win.stop(steps=1)
    win.close()
    e = res["energy"]
    assert e["method"] == "estimate" and e["is_estimate"] is True
    assert any("permission denied" in n for n in e["notes"])


def test_missing_or_empty_root(tmp_path):
    with pytest.raises(RaplUnavailable, match="not found"):
        RaplMeter(tmp_path / "absent")
    with pytest.raises(RaplUnavailable, match="no RAPL zones"):
        RaplMeter(tmp_path)
    psys_only = FakePowercap(tmp_path / "p")
    psys_only.add_zone("intel-rapl:0", "psys")
    with pytest.raises(RaplUnavailable, match="no RAPL package"):
        RaplMeter(tmp_path / "p")


def test_open_window_cpu_uses_rapl_with_its_poll_thread(tmp_path):
    pc = standard_tree(tmp_path)
    now = [100.0]
    win = open_window("cpu", powercap_root=tmp_path, clock=lambda: now[0])
    assert win.energy_method == "rapl" and win.min_window_s >= 1.0
    win.start()
    pc.set_energy("intel-rapl:0", 5_000_000)   # +4 J
    pc.set_energy("intel-rapl:0:0", 1_100_000)  # +1 J
    now[0] += 2.0
    res = win.stop(steps=10, units_per_step=8)
    win.close()
    e = res["energy"]
    assert e["method"] == "rapl" and e["is_estimate"] is False
    assert e["joules"] == pytest.approx(5.0)
    assert e["joules_per_step"] == pytest.approx(0.5)
    assert e["joules_per_unit"] == pytest.approx(0.5 / 8)
    assert e["avg_power_w"] == pytest.approx(2.5)
    assert e["window_s"] == pytest.approx(2.0)
    assert e["scope"] == "cpu-packages+dram"

"""GPU energy and state through a fake NVML module (real pynvml error classes)."""

from __future__ import annotations

import pytest

from xpubench.hardware.telemetry import decode_clock_event_reasons, open_window
from xpubench.hardware.telemetry.gpu_energy import NvmlPowerMeter, counter_min_window_s, infer_counter_period
from xpubench.hardware.telemetry.gpu_state import GpuStateMonitor
from xpubench.hardware.telemetry.nvml import open_session
from tests.fakes.nvml import FakeGpu, FakeMig, FakeNvml, driver_not_loaded, library_not_found, not_supported


class Clock:
    """A clock that moves only when the test says so."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _not_busy(warnings: list[str]) -> list[str]:
    # other engineers' processes may load this machine: that warning is real, not under test
    return [w for w in warnings if not w.startswith("machine busy")]


def _run(win, clock: Clock, seconds: float, steps: int, units: float | None = None) -> dict:
    win.start()
    clock.t += seconds
    res = win.stop(steps=steps, units_per_step=units)
    win.close()
    return res


@pytest.mark.parametrize("kind", ["cuda", "CUDA"])
def test_counter_path_joules_per_step_and_power(kind):
    # reads: the probe at open, then the two window edges
    fake = FakeNvml([FakeGpu(energy_mj=[999_000, 1_000_000, 1_250_000])])
    clock = Clock()
    win = open_window(kind, 0, nvml=fake, clock=clock)
    assert win.energy_method == "nvml-counter"
    assert win.min_window_s >= 1.0
    res = _run(win, clock, 10.0, steps=50, units=4)
    e = res["energy"]
    assert e["method"] == "nvml-counter" and e["is_estimate"] is False
    assert e["joules"] == pytest.approx(250.0)
    assert e["joules_per_step"] == pytest.approx(5.0)
    assert e["joules_per_unit"] == pytest.approx(1.25)
    assert e["avg_power_w"] == pytest.approx(25.0)
    assert e["window_s"] == pytest.approx(10.0)
    assert e["source"] == "nvml:0" and e["scope"] == "gpu-device"
    assert e["reason"] is None
    assert _not_busy(res["warnings"]) == []


def test_counter_reset_flags_window_invalid():
    fake = FakeNvml([FakeGpu(energy_mj=[5_000_000, 5_000_000, 1_000])])
    clock = Clock()
    res = _run(open_window("cuda", nvml=fake, clock=clock), clock, 5.0, steps=10)
    e = res["energy"]
    assert e["joules"] is None and e["joules_per_step"] is None and e["avg_power_w"] is None
    assert "counter_reset" in e["notes"]
    assert "reset" in e["reason"]
    assert any("reset" in w for w in res["warnings"])


def test_zero_delta_flagged_not_reported_as_zero():
    fake = FakeNvml([FakeGpu(energy_mj=[7_000, 7_000, 7_000])])
    clock = Clock()
    res = _run(open_window("cuda", nvml=fake, clock=clock), clock, 5.0, steps=10)
    e = res["energy"]
    assert e["joules"] is None and e["joules_per_step"] is None
    assert "zero_delta" in e["notes"]
    assert any("did not advance" in w for w in res["warnings"])


def test_short_window_is_noted():
    fake = FakeNvml([FakeGpu(energy_mj=[0, 1_000, 2_000])])
    clock = Clock()
    res = _run(open_window("cuda", nvml=fake, clock=clock), clock, 0.1, steps=1)
    assert res["energy"]["joules"] == pytest.approx(1.0)
    assert any(n.startswith("window_too_short") for n in res["energy"]["notes"])
    assert any("shorter than" in w for w in res["warnings"])


def test_not_supported_counter_falls_back_to_power_integration():
    fake = FakeNvml([FakeGpu(energy_mj=not_supported(), power_mw=[200_000])])
    clock = Clock()
    win = open_window("cuda", nvml=fake, clock=clock)
    assert win.energy_method == "nvml-power"
    res = _run(win, clock, 4.0, steps=8)
    e = res["energy"]
    assert e["method"] == "nvml-power"
    # constant 200 W for 4 s, whatever samples the thread added in between
    assert e["joules"] == pytest.approx(800.0)
    assert e["joules_per_step"] == pytest.approx(100.0)
    assert e["avg_power_w"] == pytest.approx(200.0)
    assert any("not supported" in n for n in e["notes"])


def test_power_meter_trapezoid_with_injected_clock():
    fake = FakeNvml([FakeGpu(power_mw=[100_000, 300_000, 300_000, 100_000])])
    session = open_session(fake)
    clock = Clock(0.0)
    meter = NvmlPowerMeter(session, session.handle(0), 0, clock=clock, start_thread=False)
    meter.start()           # t=0: 100 W
    clock.t = 1.0
    meter.sample()          # t=1: 300 W  -> 200 J
    clock.t = 3.0
    meter.sample()          # t=3: 300 W  -> 600 J
    clock.t = 4.0
    reading = meter.stop()  # t=4: 100 W  -> 200 J
    assert reading.joules == pytest.approx(1000.0)
    assert reading.details["power_samples"] == 4
    assert reading.details["power_w"] == {"min": 100.0, "max": 300.0}


@pytest.mark.parametrize("make_error", [library_not_found, driver_not_loaded])
def test_missing_driver_is_unavailable_not_a_crash(make_error):
    fake = FakeNvml([FakeGpu()], init_error=make_error())
    clock = Clock()
    win = open_window("cuda", 0, nvml=fake, clock=clock)
    assert win.min_window_s == 0.0  # nothing to wait for
    res = _run(win, clock, 1.0, steps=3)
    e = res["energy"]
    assert e["method"] == "unavailable"
    assert e["joules"] is None and e["joules_per_step"] is None and e["avg_power_w"] is None
    assert e["reason"].startswith("NVML:")
    assert res["device_state"] is None
    assert res["host_memory"]["host_method"]


def test_real_pynvml_without_driver_is_unavailable():
    # nvidia-ml-py is installed here but there is no NVIDIA driver on this machine
    win = open_window("cuda", 0)
    win.start()
    res = win.stop(steps=1)
    win.close()
    assert res["energy"]["method"] in ("unavailable", "nvml-counter", "nvml-power")
    if res["energy"]["method"] == "unavailable":
        assert res["energy"]["joules"] is None and res["energy"]["reason"]


def test_neither_counter_nor_power_is_unavailable_with_both_reasons():
    fake = FakeNvml([FakeGpu(energy_mj=not_supported(), power_mw=not_supported())])
    clock = Clock()
    res = _run(open_window("cuda", nvml=fake, clock=clock), clock, 2.0, steps=1)
    e = res["energy"]
    assert e["method"] == "unavailable" and e["joules"] is None
    assert "counter not supported" in e["reason"] and "power reading failed" in e["reason"]
    assert res["device_state"] is not None  # clocks etc. still recorded


def test_device_state_fields_and_throttle_warning():
    gpu = FakeGpu(energy_mj=[0, 0, 100_000], reasons=[0x4 | 0x40], temperature=87)
    clock = Clock()
    res = _run(open_window("cuda", nvml=FakeNvml([gpu]), clock=clock), clock, 2.0, steps=1)
    st = res["device_state"]
    assert st["start"]["sm_clock_mhz"] == 1980 and st["start"]["mem_clock_mhz"] == 2619
    assert st["start"]["temperature_c"] == 87
    assert st["start"]["power_limit_w"] == 700.0
    assert st["stop"]["nvml_used_bytes_info"] == 2**30
    assert st["stop"]["clock_event_reasons"] == 0x44
    assert st["clock_event_names_seen"] == ["sw_power_cap", "hw_thermal"]
    assert st["throttled"] is True
    assert any("throttled" in w and "hw_thermal" in w for w in res["warnings"])


def test_throttle_inside_the_window_seen_by_poll():
    fake = FakeNvml([FakeGpu(reasons=[0x0, 0x20, 0x1])])
    session = open_session(fake)
    mon = GpuStateMonitor(session, session.handle(0), 0, start_thread=False)
    mon.start()   # 0x0
    mon.poll()    # 0x20 sw_thermal, gone again by the end
    state, warnings = mon.stop()  # 0x1 gpu_idle: not a throttle
    assert state["stop"]["clock_event_names"] == ["gpu_idle"]
    assert state["clock_event_names_seen"] == ["gpu_idle", "sw_thermal"]
    assert state["throttled"] is True and state["polls"] == 1
    assert len(warnings) == 1 and "sw_thermal" in warnings[0]


def test_idle_reason_alone_is_not_a_throttle():
    clock = Clock()
    fake = FakeNvml([FakeGpu(energy_mj=[0, 0, 5_000], reasons=[0x1])])
    res = _run(open_window("cuda", nvml=fake, clock=clock), clock, 2.0, steps=1)
    assert res["device_state"]["throttled"] is False
    assert _not_busy(res["warnings"]) == []


def test_decode_clock_event_reasons():
    assert decode_clock_event_reasons(0) == []
    assert decode_clock_event_reasons(None) == []
    assert decode_clock_event_reasons(0x1 | 0x8 | 0x80 | 0x400) == [
        "gpu_idle", "hw_slowdown", "power_brake", "bit_0x400"]
    assert decode_clock_event_reasons(0x4 | 0x20 | 0x40) == ["sw_power_cap", "sw_thermal", "hw_thermal"]


def test_cuda_visible_devices_maps_to_nvml_index(monkeypatch):
    gpus = [FakeGpu(uuid=f"GPU-{i}aaaa", energy_mj=[0, 0, 1000 * (i + 1)]) for i in range(4)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    clock = Clock()
    res = _run(open_window("cuda", 1, nvml=FakeNvml(gpus), clock=clock), clock, 2.0, steps=1)
    assert res["energy"]["source"] == "nvml:3"
    assert res["energy"]["joules"] == pytest.approx(4.0)
    assert res["device_state"]["nvml_index"] == 3
    # without a UUID the mapping is an assumption on a multi-GPU host, and the record says so
    assert any("assumed" in n for n in res["energy"]["notes"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-2")
    session = open_session(FakeNvml(gpus))
    assert session.locate(0).index == 2


def test_uuid_finds_the_gpu_when_cuda_and_nvml_orders_differ(monkeypatch):
    # NVML orders by PCI bus, CUDA fastest first: CUDA's device 0 is NVML's device 1
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    slow = FakeGpu(name="NVIDIA T4", uuid="GPU-aaaaaaaa-0000-0000-0000-000000000000", energy_mj=[0, 0, 1_000])
    fast = FakeGpu(uuid="GPU-bbbbbbbb-0000-0000-0000-000000000000", energy_mj=[0, 0, 9_000], sm_clock=1755)
    clock = Clock()
    win = open_window("cuda", 0, device_uuid=fast.uuid, nvml=FakeNvml([slow, fast]), clock=clock)
    res = _run(win, clock, 2.0, steps=1)
    assert res["energy"]["source"] == "nvml:1"
    assert res["energy"]["joules"] == pytest.approx(9.0)
    assert res["device_state"]["nvml_index"] == 1
    assert res["device_state"]["start"]["sm_clock_mhz"] == 1755
    assert any("by UUID" in n for n in res["device_state"]["index_notes"])
    assert not any("assumed" in n for n in res["energy"]["notes"])


def test_unknown_uuid_falls_back_to_the_ordinal_and_says_so(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    session = open_session(FakeNvml([FakeGpu(uuid="GPU-1"), FakeGpu(uuid="GPU-2")]))
    target = session.locate(1, "GPU-ffffffff-0000-0000-0000-000000000000")
    assert target.index == 1 and target.mig_uuid is None
    assert "no NVML device has" in target.notes[0] and "assumed" in target.notes[1]


MIG_UUID = "MIG-c0ffee00-1111-2222-3333-444444444444"


@pytest.mark.parametrize("how", ["uuid", "cuda_visible_devices"])
def test_mig_slice_is_metered_by_its_whole_gpu_and_says_so(monkeypatch, how):
    other = FakeGpu(uuid="GPU-00000000-0000-0000-0000-000000000000", energy_mj=[0, 0, 1_000])
    parent = FakeGpu(uuid="GPU-99999999-0000-0000-0000-000000000000", energy_mj=[0, 0, 30_000],
                     migs=[FakeMig("MIG-00000000-0000-0000-0000-000000000001"), FakeMig(MIG_UUID)])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if how == "uuid":
        # torch reports the slice's UUID bytes; the backend spells them "GPU-..."
        uuid = "GPU-" + MIG_UUID[4:]
    else:
        uuid = None
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", MIG_UUID[:12])  # an abbreviated MIG id
    clock = Clock()
    win = open_window("cuda", 0, device_uuid=uuid, nvml=FakeNvml([other, parent]), clock=clock)
    res = _run(win, clock, 2.0, steps=1)
    e = res["energy"]
    assert e["source"] == "nvml:1" and e["scope"] == "mig-parent-gpu"
    assert e["joules"] == pytest.approx(30.0)  # the whole GPU's energy, not 0 and not the slice's
    assert any(MIG_UUID in n and "whole GPU" in n for n in e["notes"])
    assert MIG_UUID in res["device_state"]["mig_slice_note"]
    assert any("MIG slice" in w for w in res["warnings"])


def test_throttle_reasons_fall_back_to_the_older_call_on_an_old_driver():
    # pre-R535: the binding has ...ClocksEventReasons but the driver lacks the C symbol
    fake = FakeNvml([FakeGpu(energy_mj=[0, 0, 5_000], reasons=[0x40])],
                    missing_symbols=("nvmlDeviceGetCurrentClocksEventReasons",))
    clock = Clock()
    res = _run(open_window("cuda", nvml=fake, clock=clock), clock, 2.0, steps=1)
    st = res["device_state"]
    assert st["throttled"] is True and st["clock_event_names_seen"] == ["hw_thermal"]
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" in fake.calls
    assert any("hw_thermal" in w for w in res["warnings"])


def test_unreadable_throttle_reasons_are_unknown_not_false():
    fake = FakeNvml([FakeGpu(energy_mj=[0, 0, 5_000], reasons=[0x40])],
                    missing_symbols=("nvmlDeviceGetCurrentClocksEventReasons",
                                     "nvmlDeviceGetCurrentClocksThrottleReasons"))
    clock = Clock()
    res = _run(open_window("cuda", nvml=fake, clock=clock), clock, 2.0, steps=1)
    st = res["device_state"]
    assert st["throttled"] is None and st["clock_event_names_seen"] is None
    assert st["stop"]["clock_event_reasons"] is None and st["stop"]["clock_event_names"] is None
    assert "Function Not Found" in st["stop"]["clock_event_error"]
    assert any("throttle reasons unreadable" in w and "unknown (null)" in w for w in res["warnings"])
    assert res["energy"]["joules"] == pytest.approx(5.0)  # the rest of the record is unharmed


def test_temperature_uses_the_v_call_and_falls_back_to_the_deprecated_one():
    fake = FakeNvml([FakeGpu(temperature=61)])
    session = open_session(fake)
    mon = GpuStateMonitor(session, session.handle(0), 0, start_thread=False)
    mon.start()
    assert mon.stop()[0]["start"]["temperature_c"] == 61
    assert "nvmlDeviceGetTemperatureV" in fake.calls and "nvmlDeviceGetTemperature" not in fake.calls
    old = FakeNvml([FakeGpu(temperature=62)], missing_symbols=("nvmlDeviceGetTemperatureV",))
    session = open_session(old)
    mon = GpuStateMonitor(session, session.handle(0), 0, start_thread=False)
    mon.start()
    mon.poll()
    state, _ = mon.stop()
    assert state["start"]["temperature_c"] == 62 and state["max_temperature_c"] == 62
    assert "nvmlDeviceGetTemperature" in old.calls


def test_counter_update_period_inference():
    clock = Clock(0.0)
    def read():
        clock.t += 0.001          # each read takes 1 ms of fake time
        return int(clock.t / 0.02)  # the counter steps every 20 ms
    period = infer_counter_period(read, clock=clock, budget_s=0.5)
    assert period == pytest.approx(0.02, abs=0.0015)
    assert counter_min_window_s(period) == pytest.approx(1.0, abs=0.05)
    assert counter_min_window_s(0.1) == pytest.approx(2.0)
    assert counter_min_window_s(None) >= 1.0
    ticking = iter(range(10**6))
    assert infer_counter_period(lambda: 5, clock=lambda: next(ticking) * 0.001, budget_s=0.01) is None


def test_device_kind_without_a_meter_gives_unavailable_energy_with_the_reason():
    # a backend's own device kind (e.g. a third party's NPU): timing goes on, energy is null
    win = open_window("npu", 0)
    win.start()
    res = win.stop(steps=1)
    win.close()
    assert res["energy"]["method"] == "unavailable" and res["energy"]["joules_per_step"] is None
    assert "no energy meter for npu devices" in res["energy"]["reason"]


def _real_nvml_or_skip():
    from xpubench.hardware.telemetry.nvml import NvmlUnavailable

    try:
        session = open_session()
        if session.device_count() == 0:
            pytest.skip("NVML has no devices")
    except NvmlUnavailable as exc:
        pytest.skip(f"no NVIDIA driver: {exc}")
    return session


@pytest.mark.gpu
def test_real_gpu_counter_window_and_fingerprint():
    """Runs only where an NVIDIA driver answers: the real pynvml path end to end."""
    import time

    from xpubench.hardware.fingerprint import fingerprint

    _real_nvml_or_skip()
    gpus = fingerprint()["accelerators"]
    assert gpus and gpus[0]["kind"] == "cuda" and gpus[0]["memory_bytes"] > 0
    win = open_window("cuda", 0)
    assert win.energy_method in ("nvml-counter", "nvml-power")
    win.start()
    time.sleep(max(1.1, win.min_window_s))  # even an idle GPU draws tens of watts
    res = win.stop(steps=1)
    win.close()
    e = res["energy"]
    assert e["joules"] is not None and e["joules"] > 0, e
    assert 1.0 < e["avg_power_w"] < 2000.0
    st = res["device_state"]
    assert st["start"]["sm_clock_mhz"] is not None and st["stop"]["temperature_c"] is not None


def test_torch_backend_spells_the_cuda_uuid_as_nvml_does():
    from types import SimpleNamespace

    from xpubench.backends.base import make_backend

    b = make_backend("torch:cuda:fp32")
    assert b.device_uuid() is None  # before setup: no device chosen
    props = SimpleNamespace(uuid="58aa4b4e-5bb1-4b3e-9ae7-0c8a6b4d1c2f")  # str(props.uuid) in torch
    b.device = SimpleNamespace(type="cuda")
    b._torch = SimpleNamespace(cuda=SimpleNamespace(get_device_properties=lambda dev: props))
    assert b.device_uuid() == "GPU-58aa4b4e-5bb1-4b3e-9ae7-0c8a6b4d1c2f"
    assert make_backend("torch:cpu:fp32").device_uuid() is None


@pytest.mark.gpu
def test_real_cuda_uuid_is_found_in_nvml():
    """On a GPU: the UUID torch reports names an NVML device (no assumption about orders)."""
    from xpubench.backends.base import make_backend

    session = _real_nvml_or_skip()
    b = make_backend("torch:cuda:fp32")
    b.setup()
    uuid = b.device_uuid()
    assert uuid and uuid.startswith("GPU-")
    target = session.locate(0, uuid)
    assert any("by UUID" in n for n in target.notes), target.notes
    if target.mig_uuid is None:
        assert session.call("nvmlDeviceGetUUID", session.handle(target.index)) == uuid

"""`xpubench probe`: the probe at smoke size on CPU, the ceilings cache, the command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from xpubench.hardware import ceilings as cl
from xpubench.cli import probe as probe_cli
from xpubench.hardware import probe, probe_plan
from xpubench.hardware.device_roofs import device_roofs
from xpubench.cli.main import main
from xpubench.errors import UserError
from xpubench.hardware.roofline import attach_roofline


def cpu_flops_bound(flops_per_cycle: float) -> float:
    """cores x max clock x FLOPs per cycle: an upper bound no honest CPU timing exceeds.

    The clock is the highest one known (sysfs max, psutil max, /proc/cpuinfo); when no
    maximum is published (VMs), at least 5 GHz.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    mhz: list[float] = []
    try:
        mhz.append(float(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1000)
    except (OSError, ValueError):
        pass
    try:
        import psutil

        f = psutil.cpu_freq()
        if f and f.max:
            mhz.append(float(f.max))
    except Exception:
        pass
    known_max = bool(mhz)
    try:
        mhz += [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.lower().startswith("cpu mhz")]
    except (OSError, ValueError, IndexError):
        pass
    ghz = max(mhz, default=0.0) / 1000
    if not known_max:
        ghz = max(ghz, 5.0)
    return cores * ghz * 1e9 * flops_per_cycle


# fp32: AVX-512 FMA = 16 lanes x 2 FLOPs x 2 units = 64 FLOPs/cycle per core.
FP32_BOUND = cpu_flops_bound(64)
# bf16/fp16/int8: AMX tiles reach ~2048 ops/cycle per core; generous on purpose (it
# catches a timing that does not wait for the work, which is off by orders of magnitude).
REDUCED_BOUND = cpu_flops_bound(4096)
# Bandwidth: far above any DRAM a CPU has; smoke arrays may sit in the last-level cache,
# which on a many-core part scales with cores (64 B per cycle per core).
BANDWIDTH_BOUND = max(500e9, cpu_flops_bound(64))


def _check_entry(entry: dict, framework: str) -> None:
    assert entry["framework"] == framework and entry["device"] == "cpu"
    assert entry["size"] == "smoke"
    assert isinstance(entry["threads"], int) and entry["threads"] >= 1
    peaks = entry["matmul_flops_per_s"]
    assert "fp32" in peaks and "bf16" in peaks
    assert 0 < peaks["fp32"] < FP32_BOUND, (peaks["fp32"], FP32_BOUND)
    shapes = {s.label for s in probe_plan.plan_for("smoke", "cpu").matmul_shapes}
    assert {"64x64x64", "128x128x128", "256x64x64", "64x256x64", "4x(64x64x64)"} == shapes  # square, non-square, batched
    for p, v in peaks.items():
        assert 0 < v < REDUCED_BOUND, (p, v)
        d = entry["matmul"][p]
        assert d["best_shape"] in shapes and set(d["by_shape"]) <= shapes
        assert max(d["by_shape"].values()) == v  # the ceiling is the best of the sweep
    for p in ("fp32", "bf16"):  # the element-wise roof
        assert 0 < entry["vector_flops_per_s"][p] < REDUCED_BOUND
        assert entry["vector"][p]["flops_per_call"] > 0
    for kind, factor in (("copy", 2), ("triad", 3), ("read", 1), ("inplace", 2)):
        v = entry[f"{kind}_bytes_per_s"]
        assert 0 < v < BANDWIDTH_BOUND, (kind, v)
        bw = entry["bandwidth"][kind]
        assert bw["bytes_per_call"] == factor * bw["array_bytes"]
        assert bw["array_bytes"] == 16 << 20
    assert entry["device_key"] == "cpu"
    assert entry["cache_bytes"] is None or entry["cache_bytes"] >= 1 << 20
    assert entry["busy"] is None or "busy" in entry["busy"]
    assert 0 <= entry["cpu_load"]["other_util"] <= 1
    # host<->device transfers do not apply on a CPU: unknown, never 0
    assert entry["h2d_bytes_per_s"] is None and entry["d2h_bytes_per_s"] is None
    assert "tf32" in entry["unsupported"] and "fp8" in entry["unsupported"]
    json.dumps(entry, allow_nan=False)


@pytest.fixture(scope="module")
def torch_entry() -> dict:
    return probe.probe_device("torch:cpu", "smoke")


def test_probe_torch_cpu_smoke_gives_plausible_ceilings(torch_entry):
    import torch

    _check_entry(torch_entry, "torch")
    assert torch_entry["threads"] == torch.get_num_threads()
    assert torch_entry["matmul"]["fp32"]["dtype"] == "torch.float32"
    assert torch_entry["matmul"]["bf16"]["dtype"] == "torch.bfloat16"


@pytest.fixture(scope="module")
def jax_entry() -> dict:
    return probe.probe_device("jax:cpu", "smoke", precisions=("fp32", "bf16"))


def test_probe_jax_cpu_smoke_gives_plausible_ceilings(jax_entry):
    entry = jax_entry
    _check_entry(entry, "jax")
    assert entry["matmul"]["bf16"]["dtype"] == "bfloat16"
    assert set(entry["matmul_flops_per_s"]) == {"fp32", "bf16"}


def test_probed_ceilings_give_a_roofline_bound(torch_entry, tmp_path):
    doc = cl.merge(None, {"machine_id": "t"}, {"torch:cpu": torch_entry})
    run = {"run": {}, "machine": {"machine_id": "t", "accelerators": []}, "measurements": [
        {"suite": "normalization", "case": "c", "mode": "forward", "backend": "torch:cpu:fp32",
         "status": "ok", "flops_per_step": 8e6, "bytes_per_step": 8e6, "time_s": {"median": 1e-3}}]}
    rf = attach_roofline(run, doc)["measurements"][0]["roofline"]
    bw = max(torch_entry[f"{k}_bytes_per_s"] for k in ("copy", "triad", "read", "inplace"))
    assert rf["peak_bytes_per_s"] == pytest.approx(bw)
    assert rf["bound_flops_per_s"] == pytest.approx(min(torch_entry["matmul_flops_per_s"]["fp32"], 1.0 * bw))
    assert rf["fraction_of_bound"] == pytest.approx(8e9 / rf["bound_flops_per_s"])


def _hand_written_rate(shape, reps: int = 5) -> float:
    """FLOP/s of a plain torch.matmul loop on one shape, timed by hand (median of reps)."""
    import statistics
    import time

    import torch

    lead = (shape.batch,) if shape.batch > 1 else ()
    a, b = torch.randn(lead + (shape.m, shape.k)), torch.randn(lead + (shape.k, shape.n))
    torch.matmul(a, b)
    n = max(1, int(2e7 // shape.flops))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(n):
            torch.matmul(a, b)
        times.append((time.perf_counter() - t0) / n)
    return shape.flops / statistics.median(times)


def test_device_roof_is_the_best_framework_and_reaches_a_hand_written_loop(torch_entry, jax_entry):
    doc = cl.merge(None, {"machine_id": "t"}, {"torch:cpu": torch_entry, "jax:cpu": jax_entry})
    roof = doc["devices"]["cpu"]
    assert roof == device_roofs(doc)["cpu"]  # written to the file, derived again when read
    for p in ("fp32", "bf16"):
        rates = {k: e["matmul_flops_per_s"][p] for k, e in (("torch:cpu", torch_entry), ("jax:cpu", jax_entry))}
        best = max(rates, key=rates.get)
        assert roof["matmul_flops_per_s"][p] == rates[best]  # the max over frameworks ...
        assert roof["matmul_source"][p].startswith(best)  # ... and which one reached it
    assert roof["memory_bytes_per_s"] == max(e[f"{k}_bytes_per_s"] for e in (torch_entry, jax_entry)
                                             for k in ("copy", "triad", "read", "inplace"))
    # The probe's way of timing reaches what a plain loop reaches on the same shapes. The two
    # are timed interleaved, now (the fixture's probe ran minutes ago, under another load),
    # best of three each, with a loose factor: a shared 2-core machine is noisy.
    shapes = probe_plan.plan_for("smoke", "cpu").matmul_shapes
    ours, hand = [], []
    for _ in range(3):
        fresh = probe.probe_device("torch:cpu", "smoke", precisions=("fp32",))["matmul_flops_per_s"]["fp32"]
        ours.append(fresh)
        hand.append(max(_hand_written_rate(s) for s in shapes))
    assert max(ours) >= max(hand) / 3, (ours, hand)


def test_last_level_cache_from_a_fake_sysfs_tree(tmp_path):
    for i, (level, kind, size) in enumerate([(1, "Data", "32K"), (1, "Instruction", "32K"),
                                             (2, "Unified", "1024K"), (3, "Unified", "32768K")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    assert probe.cpu_last_level_cache_bytes(tmp_path) == 32 << 20
    assert probe.cpu_last_level_cache_bytes(tmp_path / "none") is None


# --------------------------------------------------------------------------- plans, targets
def test_plans():
    cpu = probe_plan.plan_for("default", "cpu")
    assert cpu.matmul_n == (512, 1024, 2048) and cpu.array_bytes == 256 << 20
    assert any(s.batch > 1 for s in cpu.matmul_shapes) and any(len({s.m, s.k, s.n}) > 1 for s in cpu.matmul_shapes)
    flops = [s.flops for s in cpu.matmul_shapes]
    assert flops == sorted(flops)  # smallest first: the time estimate for the next shape holds
    assert cpu.vector_bytes <= 1 << 20  # the element-wise kernel stays in cache
    gpu = probe_plan.plan_for("large", "cuda", memory_bytes=16 << 30)
    assert max(gpu.matmul_n) >= 8192
    assert gpu.array_bytes == 2 << 30  # capped at 1/8 of a 16 GiB device (triad holds 3 arrays)
    assert probe_plan.plan_for("smoke", "cpu").timing_config().time_budget_s <= 0.2
    with pytest.raises(UserError, match="unknown probe size"):
        probe_plan.plan_for("huge", "cpu")


@pytest.mark.parametrize("text,key", [("torch:cpu", "torch:cpu"), ("torch:cuda1", "torch:cuda1"),
                                      ("torch:cuda0", "torch:cuda"), ("jax:tpu", "jax:tpu"),
                                      ("torch:cpu:bf16", "torch:cpu"), (" JAX:CPU ", "jax:cpu")])
def test_parse_target(text, key):
    assert probe.parse_target(text) == key


@pytest.mark.parametrize("text", ["torch", "mxnet:cpu", "torch:tpu", "torch:cpu:fp64", "a:b:c:d"])
def test_parse_target_rejects(text):
    with pytest.raises(UserError):
        probe.parse_target(text)


def test_default_targets_here():
    targets = probe.default_targets()
    assert "torch:cpu" in targets and "jax:cpu" in targets
    assert len(targets) == len(set(targets))


# --------------------------------------------------------------------------- the cache
def _entry(value: float, size: str = "default") -> dict:
    return {"framework": "torch", "device": "cpu", "size": size, "threads": 2,
            "matmul_flops_per_s": {"fp32": value}, "copy_bytes_per_s": 1e10, "triad_bytes_per_s": 1.2e10,
            "h2d_bytes_per_s": None, "d2h_bytes_per_s": None, "measured_at": "2025-01-01T00:00:00+00:00"}


def test_save_load_merge(tmp_path):
    doc = cl.merge(None, {"machine_id": "box"}, {"torch:cpu": _entry(1e11), "jax:cpu": _entry(5e10)}, "0.1")
    path = cl.save_ceilings(tmp_path, doc)
    assert path == tmp_path / "box" / "ceilings.json"
    loaded = cl.load_ceilings(tmp_path, "box")
    assert loaded["schema_version"] == 1 and loaded["ceilings"]["torch:cpu"]["matmul_flops_per_s"]["fp32"] == 1e11
    # re-probing one device keeps the others
    doc2 = cl.merge(loaded, {"machine_id": "box"}, {"torch:cpu": _entry(2e11)})
    assert doc2["ceilings"]["torch:cpu"]["matmul_flops_per_s"]["fp32"] == 2e11
    assert doc2["ceilings"]["jax:cpu"]["matmul_flops_per_s"]["fp32"] == 5e10
    assert cl.load_ceilings(tmp_path, "nobody") is None


def test_broken_ceilings_file(tmp_path):
    p = tmp_path / "box" / "ceilings.json"
    p.parent.mkdir()
    p.write_text('{"schema_version": 1, "ceil')
    with pytest.raises(cl.CeilingsFileError, match="not valid JSON"):
        cl.load_ceilings(tmp_path, "box")
    p.write_text(json.dumps({"schema_version": 99, "ceilings": {}}))
    with pytest.raises(cl.CeilingsFileError, match="newer"):
        cl.load_ceilings(tmp_path, "box")
    # a run never fails on it: find_ceilings moves on to the next root
    good = tmp_path / "other"
    cl.save_ceilings(good, cl.merge(None, {"machine_id": "box"}, {"torch:cpu": _entry(1e11)}))
    assert cl.find_ceilings("box", [tmp_path, good])["ceilings"]["torch:cpu"]
    assert cl.find_ceilings("box", [tmp_path]) is None


# --------------------------------------------------------------------------- the command
def _no_probe(*a, **k):
    raise AssertionError("must not probe")


def test_command_reuses_cache(tmp_path, monkeypatch, capsys):
    cl.save_ceilings(tmp_path, cl.merge(None, {"machine_id": "box"}, {"torch:cpu": _entry(1.23e11)}))
    monkeypatch.setattr(probe, "probe_in_subprocess", _no_probe)
    rc = main(["probe", "-b", "torch:cpu", "--out", str(tmp_path), "--machine-id", "box"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "cached ceilings" in out and "123 GFLOP/s" in out and "--refresh" in out


def test_command_refresh_and_partial_cache(tmp_path, monkeypatch, capsys):
    cl.save_ceilings(tmp_path, cl.merge(None, {"machine_id": "box"}, {"torch:cpu": _entry(1e11)}))
    calls = []

    def fake(target, size, threads=None):
        calls.append((target, size))
        return {**_entry(3e11, size), "framework": target.split(":")[0]}

    monkeypatch.setattr(probe, "probe_in_subprocess", fake)
    # jax:cpu is not cached yet: only it is probed, torch:cpu is kept
    assert main(["probe", "-b", "torch:cpu", "-b", "jax:cpu", "--out", str(tmp_path),
                 "--machine-id", "box", "--size", "smoke"]) == 0
    assert calls == [("jax:cpu", "smoke")]
    doc = cl.load_ceilings(tmp_path, "box")
    assert doc["ceilings"]["torch:cpu"]["matmul_flops_per_s"]["fp32"] == 1e11
    assert doc["ceilings"]["jax:cpu"]["matmul_flops_per_s"]["fp32"] == 3e11
    # --refresh measures again
    assert main(["probe", "-b", "torch:cpu", "--out", str(tmp_path), "--machine-id", "box", "--refresh"]) == 0
    assert calls[-1] == ("torch:cpu", "default")
    assert cl.load_ceilings(tmp_path, "box")["ceilings"]["torch:cpu"]["matmul_flops_per_s"]["fp32"] == 3e11
    assert "ceilings:" in capsys.readouterr().out


def test_command_measures_again_what_was_probed_on_a_busy_machine(tmp_path, monkeypatch, capsys):
    busy = {**_entry(1e11), "busy": "machine busy: other processes used ~86% of all CPUs during the window"}
    cl.save_ceilings(tmp_path, cl.merge(None, {"machine_id": "box"}, {"torch:cpu": busy}))
    calls = []

    def fake(target, size, threads=None):
        calls.append(target)
        return {**_entry(3e11, size), "busy": None}

    monkeypatch.setattr(probe, "probe_in_subprocess", fake)
    assert main(["probe", "-b", "torch:cpu", "--out", str(tmp_path), "--machine-id", "box"]) == 0
    assert calls == ["torch:cpu"]  # not reused as the cache
    assert "probed on a busy machine" in capsys.readouterr().out
    assert cl.load_ceilings(tmp_path, "box")["ceilings"]["torch:cpu"]["busy"] is None
    # a busy probe is saved, marked, and said so
    monkeypatch.setattr(probe, "probe_in_subprocess", lambda t, s, th=None: busy)
    assert main(["probe", "-b", "torch:cpu", "--out", str(tmp_path), "--machine-id", "box", "--refresh"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "warning: the machine was busy" in out and "measured again by the next" in out
    doc = cl.load_ceilings(tmp_path, "box")
    assert doc["ceilings"]["torch:cpu"]["busy"] and doc["devices"]["cpu"]["busy"]


def test_command_shows_roofs_per_device(tmp_path, monkeypatch, capsys):
    entries = {"torch:cpu": _entry(2e11), "jax:cpu": {**_entry(4.5e11), "framework": "jax"}}
    cl.save_ceilings(tmp_path, cl.merge(None, {"machine_id": "box"}, entries))
    monkeypatch.setattr(probe, "probe_in_subprocess", _no_probe)
    assert main(["probe", "-b", "torch:cpu", "-b", "jax:cpu", "--out", str(tmp_path), "--machine-id", "box"]) == 0
    out = capsys.readouterr().out
    assert "roofs per device" in out and "each framework" in out
    row = next(line for line in out.splitlines() if "matmul" in line and "450 GFLOP/s" in line and "│ cpu" in line)
    assert "jax:cpu" in row  # the device roof names the framework that reached it
    assert [r for r in probe_cli.device_rows(cl.load_ceilings(tmp_path, "box")) if r[1] == "memory"][0][3] == "12 GB/s"


def test_command_failed_probe_exits_1(tmp_path, monkeypatch, capsys):
    def broken(target, size, threads=None):
        raise UserError(f"probe of {target} failed: RuntimeError: boom")

    monkeypatch.setattr(probe, "probe_in_subprocess", broken)
    assert main(["probe", "-b", "torch:cpu", "--out", str(tmp_path), "--machine-id", "box"]) == 1
    assert "boom" in capsys.readouterr().out
    assert cl.load_ceilings(tmp_path, "box") is None


def test_command_partial_failure_keeps_the_other_roofs(tmp_path, monkeypatch, capsys):
    def half(target, size, threads=None):
        if target == "jax:cpu":
            raise UserError("probe of jax:cpu failed: RuntimeError: boom")
        return _entry(2e11, size)

    monkeypatch.setattr(probe, "probe_in_subprocess", half)
    assert main(["probe", "-b", "torch:cpu", "-b", "jax:cpu", "--out", str(tmp_path), "--machine-id", "box"]) == 0
    assert "boom" in capsys.readouterr().out
    assert set(cl.load_ceilings(tmp_path, "box")["ceilings"]) == {"torch:cpu"}


def test_command_user_errors_exit_2(tmp_path, capsys):
    assert main(["probe", "-b", "torch:tpu", "--out", str(tmp_path), "--machine-id", "box"]) == 2
    assert "unknown device" in capsys.readouterr().err
    bad = tmp_path / "box" / "ceilings.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{")
    assert main(["probe", "-b", "torch:cpu", "--out", str(tmp_path), "--machine-id", "box"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_probe_in_subprocess_reports_unavailable_device():
    # a fresh process, a clear one-line reason (no GPU here)
    from xpubench.backends.torch.availability import cuda_usable

    if cuda_usable():
        pytest.skip("a GPU is present")
    with pytest.raises(UserError, match="cannot probe torch:cuda"):
        probe.probe_in_subprocess("torch:cuda", "smoke")


@pytest.mark.gpu
def test_probe_torch_cuda_smoke_stays_below_the_spec_sheet():
    """On a real GPU: every ceiling is positive and under the vendor's dense peak."""
    from xpubench.hardware import specsheet

    entry = probe.probe_device("torch:cuda", "smoke")
    assert entry["matmul_flops_per_s"]["fp32"] > 0 and entry["matmul_flops_per_s"]["bf16"] > 0
    for kind in ("copy", "triad", "h2d", "d2h"):
        assert entry[f"{kind}_bytes_per_s"] > 0, kind
    row = specsheet.match(entry["device_name"])
    if row is not None:
        for p, v in entry["matmul_flops_per_s"].items():
            if p in row.flops:
                assert v < 1.1 * row.flops[p], (p, v, row.flops[p])
        assert entry["copy_bytes_per_s"] < 1.1 * row.memory_bytes_per_s


# --------------------------------------------------------------------------- kernels
def test_int8_probe_feeds_int_mm_a_column_major_second_operand(monkeypatch):
    """cuBLASLt's int8 kernels take B column-major (K-major); row-major lands on a slow path."""
    import torch

    from xpubench.backends.base import make_backend

    seen = []
    real = torch._int_mm

    def spy(a, b, *args, **kw):
        seen.append((a.stride(), b.stride(), a.dtype, b.dtype))
        return real(a, b, *args, **kw)

    monkeypatch.setattr(torch, "_int_mm", spy)
    b = make_backend("torch:cpu:int8")
    b.setup()
    b.activate()
    n = 64
    step = b.probe_matmul("int8", n)
    step.run()
    assert len(seen) == 2  # the check call outside the timed loop, then the step
    for a_stride, b_stride, a_dtype, b_dtype in seen:
        assert a_dtype == b_dtype == torch.int8
        assert a_stride == (n, 1)  # A row-major
        assert b_stride == (1, n)  # B column-major


def test_a_backend_without_probe_kernels_is_probed_as_unsupported(monkeypatch):
    """The probe asks the backend for its kernels: one that has none gets reasons, not a crash."""
    from xpubench.backends import registry
    from tests.test_backend_entry_point import DIST

    monkeypatch.syspath_prepend(str(DIST))
    registry.reload()
    try:
        entry = probe.probe_device("numpy:cpu", "smoke")
    finally:
        monkeypatch.undo()
        registry.reload()
    assert entry["framework"] == "numpy" and entry["matmul_flops_per_s"] == {}
    assert entry["unsupported"]["fp32"] == "fp32 matmul is not probed on numpy:cpu"
    assert entry["unsupported"]["tf32"] == "tf32 is a GPU mode"
    assert entry["copy_bytes_per_s"] is None and entry["bandwidth"]["copy"]["reason"] == "no probe kernels for numpy"


def test_busy_means_a_tenth_of_the_cpus_taken_by_others():
    assert probe.busy_reason(None) is None and probe.busy_reason(0.05) is None
    assert probe.busy_reason(0.22) == "machine busy: other processes used ~22% of all CPUs while probing"

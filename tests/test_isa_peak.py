"""The ISA peak of a CPU from fake flags: AMD EPYC, Intel with AVX512-FP16/AMX, AVX2-only, ARM."""

from __future__ import annotations

import pytest

from xpubench.hardware.isa_peak import isa_peak

X86 = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
       "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu(vendor, present, cores=2, freq=None):
    return {"vendor": vendor, "flags": {f: f in present for f in X86}, "physical_cores": cores,
            "affinity_cores": cores, "logical_cores": cores, "cgroup_cpu_limit": None,
            "freq_mhz": freq if freq is not None else {"current": 2000.0, "min": None, "max": None}}


def test_intel_with_amx_has_a_bf16_roof_far_above_fp32():
    sapphire = cpu("GenuineIntel", set(X86), cores=2, freq={"current": 1900.0, "max": 3000.0, "min": 800.0})
    p = isa_peak(sapphire)
    assert p.flops_per_s["fp32"] == pytest.approx(2 * 3e9 * 64)
    assert p.flops_per_s["bf16"] == pytest.approx(2 * 3e9 * 1024)
    assert p.flops_per_s["int8"] == pytest.approx(2 * 3e9 * 2048)
    assert p.flops_per_s["fp16"] == pytest.approx(2 * 3e9 * 128)  # AVX512-FP16, no AMX-FP16 flag
    assert "AMX" in p.units["bf16"]
    assert not any("current" in a for a in p.assumptions)  # the maximum clock was readable


def test_amd_epyc_with_avx512_says_zen4_halves_it_and_uses_the_current_clock():
    epyc = cpu("AuthenticAMD", {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni"})
    p = isa_peak(epyc)
    assert p.flops_per_s["fp32"] == pytest.approx(2 * 2e9 * 64)
    assert p.per_cycle["bf16"] == 128 and p.per_cycle["int8"] == 256
    assert p.units["fp16"].startswith("no native fp16")
    assert any("Zen 4" in a for a in p.assumptions)
    assert any("current 2000 MHz" in a for a in p.assumptions)


def test_avx2_only_and_thread_limits():
    haswell = cpu("GenuineIntel", {"sse4_2", "avx", "avx2", "fma"}, cores=8)
    assert isa_peak(haswell).per_cycle == {"fp32": 32, "bf16": 32, "fp16": 32}
    assert isa_peak(haswell, threads=2).cores == 2


def test_unknown_flags_or_clock_give_no_figure():
    assert isa_peak({"flags": {f: None for f in X86}, "freq_mhz": {"current": 2000.0}, "physical_cores": 2}) is None
    assert isa_peak(cpu("GenuineIntel", {"avx2", "fma"}, freq={})) is None


def test_arm_neon():
    arm = {"vendor": "0x41", "flags": {"asimd": True, "sve": False}, "physical_cores": 4,
           "freq_mhz": {"max": 2500.0}}
    p = isa_peak(arm)
    assert p.flops_per_s["fp32"] == pytest.approx(4 * 2.5e9 * 16)

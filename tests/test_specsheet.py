"""Spec-sheet matching on device names as NVML, torch, JAX and Cloud TPU report them."""

from __future__ import annotations

import pytest

from xpubench.hardware import specsheet

# (reported name, expected row)
NAMES = [
    # NVML / torch.cuda.get_device_properties(...).name
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200 SXM"),
    ("NVIDIA H200 NVL", "H200 NVL"),
    ("NVIDIA A100-SXM4-80GB", "A100 SXM 80GB"),
    ("NVIDIA A100-SXM4-40GB", "A100 SXM 40GB"),
    ("NVIDIA A100-PCIE-40GB", "A100 PCIe 40GB"),
    ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB"),
    ("NVIDIA L4", "L4"),
    ("Tesla T4", "T4"),
    ("AMD Instinct MI300X", "MI300X"),
    # JAX device.device_kind
    ("TPU v4", "TPU v4"),
    ("TPU v5 lite", "TPU v5e"),
    ("TPU v5", "TPU v5p"),
    ("TPU v5p", "TPU v5p"),
    ("TPU v6 lite", "TPU v6e"),
    # Cloud TPU VM TPU_ACCELERATOR_TYPE (the fingerprint's TPU name)
    ("v4-8", "TPU v4"),
    ("v5litepod-8", "TPU v5e"),
    ("v5p-8", "TPU v5p"),
    ("v6e-8", "TPU v6e"),
]


@pytest.mark.parametrize("name,row", NAMES)
def test_matches_reported_names(name, row):
    hit = specsheet.match(name)
    assert hit is not None, name
    assert hit.name == row


@pytest.mark.parametrize("name", [
    None, "", "cpu", "AMD EPYC", "Intel(R) Xeon(R) Platinum 8480+", "NVIDIA L40S", "NVIDIA L40",
    "NVIDIA GH200 480GB", "NVIDIA GeForce RTX 4090", "Tesla V100-SXM2-16GB", "TPU v3",
])
def test_unknown_and_lookalike_names_do_not_match(name):
    # L40S must not be taken for an L4, GH200 (different memory) not for an H200.
    assert specsheet.match(name) is None


def test_h100_sxm_figures_are_dense_peaks():
    row = specsheet.match("NVIDIA H100 80GB HBM3")
    assert row.flops["bf16"] == pytest.approx(989.4e12)
    assert row.flops["fp8"] == pytest.approx(2 * row.flops["bf16"], rel=1e-3)
    assert row.flops["tf32"] == pytest.approx(row.flops["bf16"] / 2, rel=1e-3)
    assert row.memory_bytes_per_s == pytest.approx(3.35e12)
    # ridge point of bf16: ~295 FLOP/byte (headline fact sheet)
    assert row.flops["bf16"] / row.memory_bytes_per_s == pytest.approx(295, rel=0.01)


def test_h200_has_h100_compute_and_more_bandwidth():
    h100, h200 = specsheet.match("NVIDIA H100 80GB HBM3"), specsheet.match("NVIDIA H200")
    assert h200.flops == h100.flops
    assert h200.memory_bytes_per_s == pytest.approx(4.8e12)


def test_every_row_is_complete_and_sourced():
    for row in specsheet.SPEC_SHEET:
        assert row.source and row.patterns
        assert row.memory_bytes_per_s > 1e11
        assert row.flops and all(v > 1e12 for v in row.flops.values())
        assert set(row.flops) <= {"fp32", "tf32", "bf16", "fp16", "fp8", "int8"}
        # the row is reachable by its own label
        assert specsheet.match(row.name) is row, row.name


def test_missing_precision_is_absent_not_zero():
    t4 = specsheet.spec_peaks("Tesla T4")
    assert "bf16" not in t4["matmul_flops_per_s"]
    tpu = specsheet.spec_peaks("TPU v5 lite")
    assert "fp32" not in tpu["matmul_flops_per_s"]
    assert tpu["matched_name"] == "TPU v5 lite" and tpu["name"] == "TPU v5e"
    assert tpu["source"].startswith("Google Cloud TPU")


def test_tpu_figures_match_googles_pages():
    # docs.cloud.google.com/tpu/docs/v5e and /v6e: "Peak compute per chip (Int8)", "HBM bandwidth per chip"
    v5e, v6e = specsheet.match("TPU v5 lite"), specsheet.match("TPU v6 lite")
    assert v5e.flops == {"bf16": pytest.approx(197e12), "int8": pytest.approx(393e12)}
    assert v6e.flops == {"bf16": pytest.approx(918e12), "int8": pytest.approx(1836e12)}
    assert v6e.memory_bytes_per_s == pytest.approx(1638e9)

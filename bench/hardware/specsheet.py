"""Vendor peak figures for common accelerators, matched to device names.

Dense figures only (no 2:4 sparsity), FLOP/s per precision and memory bandwidth in
bytes/s. Where a vendor quotes only a "with sparsity" number, the dense one is half
of it. A precision a chip has no fast path for (bf16 on a T4, fp32 on a TPU's
matrix unit) is left out: unknown, never 0.

Names are matched as NVML (``nvmlDeviceGetName``), torch (``get_device_properties``),
JAX (``device.device_kind``) and Cloud TPU (``TPU_ACCELERATOR_TYPE``) report them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

T = 1e12  # tera
G = 1e9  # giga


@dataclass(frozen=True)
class SpecRow:
    name: str  # our label, e.g. "H100 SXM"
    flops: dict[str, float]  # precision -> dense FLOP/s (int8: OP/s)
    memory_bytes_per_s: float
    source: str
    patterns: tuple[str, ...] = field(default=())  # regexes on the normalized device name

    def to_dict(self) -> dict[str, Any]:
        """The ``spec_peaks`` shape xpubench.hardware.roofline takes."""
        return {"name": self.name, "matmul_flops_per_s": dict(self.flops),
                "memory_bytes_per_s": self.memory_bytes_per_s, "source": self.source}


# Order matters: the first row whose pattern matches wins, so variants (NVL, PCIe,
# 80GB) come before the plain name.
SPEC_SHEET: tuple[SpecRow, ...] = (
    # Source: NVIDIA H100 Tensor Core GPU datasheet (H100 NVL column; dense = sparse/2).
    SpecRow("H100 NVL", {"fp32": 60 * T, "tf32": 417.5 * T, "bf16": 835.5 * T, "fp16": 835.5 * T,
                         "fp8": 1670.5 * T, "int8": 1670.5 * T}, 3.9e12,
            "NVIDIA H100 Tensor Core GPU datasheet (H100 NVL)", (r"h100.*\bnvl\b",)),
    # Source: NVIDIA H100 Tensor Core GPU Architecture whitepaper, table 1 (H100 PCIe).
    SpecRow("H100 PCIe", {"fp32": 51.2 * T, "tf32": 378 * T, "bf16": 756 * T, "fp16": 756 * T,
                          "fp8": 1513 * T, "int8": 1513 * T}, 2.0e12,
            "NVIDIA H100 Tensor Core GPU Architecture whitepaper (H100 PCIe)", (r"h100.*pcie",)),
    # Source: NVIDIA H100 Tensor Core GPU Architecture whitepaper, table 1 (H100 SXM5);
    # HBM3 bandwidth from the H100 datasheet. NVML: "NVIDIA H100 80GB HBM3".
    SpecRow("H100 SXM", {"fp32": 66.9 * T, "tf32": 494.7 * T, "bf16": 989.4 * T, "fp16": 989.4 * T,
                         "fp8": 1978.9 * T, "int8": 1978.9 * T}, 3.35e12,
            "NVIDIA H100 Tensor Core GPU Architecture whitepaper (H100 SXM5); H100 datasheet (HBM3)",
            (r"\bh100\b",)),
    # Source: NVIDIA H200 Tensor Core GPU datasheet (H200 NVL column; dense = sparse/2).
    SpecRow("H200 NVL", {"fp32": 60 * T, "tf32": 417.5 * T, "bf16": 835.5 * T, "fp16": 835.5 * T,
                         "fp8": 1670.5 * T, "int8": 1670.5 * T}, 4.8e12,
            "NVIDIA H200 Tensor Core GPU datasheet (H200 NVL)", (r"\bh200\b.*\bnvl\b",)),
    # Source: NVIDIA H200 Tensor Core GPU datasheet (H200 SXM; same compute as H100 SXM).
    SpecRow("H200 SXM", {"fp32": 66.9 * T, "tf32": 494.7 * T, "bf16": 989.4 * T, "fp16": 989.4 * T,
                         "fp8": 1978.9 * T, "int8": 1978.9 * T}, 4.8e12,
            "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM)", (r"\bh200\b",)),
    # Source: NVIDIA A100 Tensor Core GPU datasheet (80GB PCIe: 1,935 GB/s).
    SpecRow("A100 PCIe 80GB", {"fp32": 19.5 * T, "tf32": 156 * T, "bf16": 312 * T, "fp16": 312 * T,
                               "int8": 624 * T}, 1935 * G,
            "NVIDIA A100 Tensor Core GPU datasheet (A100 80GB PCIe)", (r"a100.*80gb.*pcie", r"a100.*pcie.*80gb")),
    # Source: NVIDIA A100 Tensor Core GPU datasheet (40GB PCIe: 1,555 GB/s).
    SpecRow("A100 PCIe 40GB", {"fp32": 19.5 * T, "tf32": 156 * T, "bf16": 312 * T, "fp16": 312 * T,
                               "int8": 624 * T}, 1555 * G,
            "NVIDIA A100 Tensor Core GPU datasheet (A100 40GB PCIe)", (r"a100.*pcie",)),
    # Source: NVIDIA A100 Tensor Core GPU datasheet (80GB SXM: 2,039 GB/s).
    SpecRow("A100 SXM 80GB", {"fp32": 19.5 * T, "tf32": 156 * T, "bf16": 312 * T, "fp16": 312 * T,
                              "int8": 624 * T}, 2039 * G,
            "NVIDIA A100 Tensor Core GPU datasheet (A100 80GB SXM)", (r"a100.*80gb",)),
    # Source: NVIDIA A100 Tensor Core GPU datasheet (40GB SXM: 1,555 GB/s).
    SpecRow("A100 SXM 40GB", {"fp32": 19.5 * T, "tf32": 156 * T, "bf16": 312 * T, "fp16": 312 * T,
                              "int8": 624 * T}, 1555 * G,
            "NVIDIA A100 Tensor Core GPU datasheet (A100 40GB SXM)", (r"\ba100\b",)),
    # Source: NVIDIA L4 Tensor Core GPU datasheet (tensor figures quoted with sparsity; halved).
    SpecRow("L4", {"fp32": 30.3 * T, "tf32": 60 * T, "bf16": 121 * T, "fp16": 121 * T,
                   "fp8": 242.5 * T, "int8": 242.5 * T}, 300 * G,
            "NVIDIA L4 Tensor Core GPU datasheet", (r"\bl4\b",)),
    # Source: NVIDIA T4 Tensor Core GPU datasheet (fp16 = mixed precision FP16/FP32; no bf16/tf32).
    SpecRow("T4", {"fp32": 8.1 * T, "fp16": 65 * T, "int8": 130 * T}, 320 * G,
            "NVIDIA T4 Tensor Core GPU datasheet", (r"\bt4\b",)),
    # Source: AMD Instinct MI300X accelerator datasheet (dense matrix figures).
    SpecRow("MI300X", {"fp32": 163.4 * T, "tf32": 653.7 * T, "bf16": 1307.4 * T, "fp16": 1307.4 * T,
                       "fp8": 2614.9 * T, "int8": 2614.9 * T}, 5.3e12,
            "AMD Instinct MI300X accelerator datasheet", (r"mi300x",)),
    # Source: Google Cloud TPU docs, "TPU v6e" system architecture (per chip).
    # JAX device_kind "TPU v6 lite"; TPU_ACCELERATOR_TYPE "v6e-8".
    SpecRow("TPU v6e", {"bf16": 918 * T, "int8": 1836 * T}, 1638 * G,
            "Google Cloud TPU documentation: TPU v6e", (r"\bv6 ?lite\b", r"\bv6e\b")),
    # Source: Google Cloud TPU docs, "TPU v5e" (per chip). device_kind "TPU v5 lite";
    # accelerator type "v5litepod-8".
    SpecRow("TPU v5e", {"bf16": 197 * T, "int8": 393 * T}, 819 * G,
            "Google Cloud TPU documentation: TPU v5e", (r"\bv5 ?lite", r"\bv5e\b")),
    # Source: Google Cloud TPU docs, "TPU v5p" (per chip). device_kind "TPU v5" or "TPU v5p".
    SpecRow("TPU v5p", {"bf16": 459 * T, "int8": 918 * T}, 2765 * G,
            "Google Cloud TPU documentation: TPU v5p", (r"\bv5p\b", r"^tpu v5$")),
    # Source: Google Cloud TPU docs, "TPU v4" (per chip). device_kind "TPU v4".
    SpecRow("TPU v4", {"bf16": 275 * T, "int8": 275 * T}, 1200 * G,
            "Google Cloud TPU documentation: TPU v4", (r"^tpu v4\b", r"^v4 \d+$")),
)

_COMPILED = [(row, [re.compile(p) for p in row.patterns]) for row in SPEC_SHEET]


def normalize(name: str) -> str:
    """Lower case, vendor prefixes and separators folded: 'NVIDIA A100-SXM4-80GB' -> 'a100 sxm4 80gb'."""
    n = name.strip().lower()
    n = re.sub(r"^(nvidia|tesla|amd|google)\s+", "", n)
    n = re.sub(r"^(tesla|instinct)\s+", "", n)
    n = re.sub(r"[-_/]+", " ", n)
    return re.sub(r"\s+", " ", n).strip()


def match(name: str | None) -> SpecRow | None:
    """The spec-sheet row for a device name, or None (CPUs, unknown chips)."""
    if not name:
        return None
    n = normalize(name)
    for row, pats in _COMPILED:
        if any(p.search(n) for p in pats):
            return row
    return None


def spec_peaks(name: str | None) -> dict[str, Any] | None:
    """``match(name).to_dict()`` with the name that matched, or None."""
    row = match(name)
    if row is None:
        return None
    return {**row.to_dict(), "matched_name": name}


def rows() -> list[dict[str, Any]]:
    """Every row, for tables and the report."""
    return [r.to_dict() for r in SPEC_SHEET]

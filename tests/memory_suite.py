"""A test-only suite whose cases hold a known amount of host memory (1 GiB, then 256 MiB)."""

from __future__ import annotations

from xpubench.backends.base import Step
from xpubench.spec.registry import Work, workload

MIB = 1 << 20

hold = workload(suite="memory", name="hold", modes=("forward",), unit="calls",
                sizes={"smoke": {}}, work=lambda p, m: Work(1), precisions=("fp32",),
                variants=({"mib": 1024}, {"mib": 256}))


@hold.builder("torch")
def build(ctx, params, mode):
    import torch

    buf = torch.ones(params["mib"] * MIB, dtype=torch.uint8)  # every page written: resident

    def run():
        return buf[:: 1 << 16].sum()

    return Step(run=run)

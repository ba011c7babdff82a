"""A test-only suite of spin steps of known length, for both frameworks (no framework is used).

Loaded into worker processes through XPUBENCH_SUITE_MODULES=tests.verdict_suite:
the schedule, repeat, merge, injection, confirmation and calibration tests need real
fresh worker processes, not real kernels.
"""

from __future__ import annotations

import time

from xpubench.backends.base import Step
from xpubench.spec.registry import Work, workload

SIZES = {"smoke": {"us": 200}, "default": {"us": 400}}


def use_suite_module(monkeypatch, module: str = __name__) -> None:
    """Register a test-only suite module here and in the worker processes (XPUBENCH_SUITE_MODULES)."""
    from xpubench.spec import registry as specmod

    monkeypatch.setenv("XPUBENCH_SUITE_MODULES", module)
    monkeypatch.setattr(specmod, "_LOADED", False)
    specmod.load_all()


def _spin_step(ctx, p, mode):
    seconds = p["us"] * 1e-6

    def run():
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    return Step(run=run)


for _name in ("spin_a", "spin_b"):
    _w = workload(suite="verdicts", name=_name, modes=("forward",), unit="calls", sizes=SIZES,
                  work=lambda p, m: Work(1), precisions=("fp32",))
    _w.builder("torch")(_spin_step)
    _w.builder("jax")(_spin_step)

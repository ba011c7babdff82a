"""A test-only suite whose builder notes the run options its context carries.

Loaded into worker processes through XPUBENCH_SUITE_MODULES=tests.options_suite:
the record's notes then show what reached the worker's builder.
"""

from __future__ import annotations

import time

from xpubench.backends.base import Step
from xpubench.spec.registry import Work, workload

seen_options = workload(suite="options", name="seen_options", modes=("forward",), unit="calls",
                        sizes={"smoke": {"n": 1}, "default": {"n": 1}}, work=lambda p, m: Work(1),
                        precisions=("fp32",))


@seen_options.builder("torch")
def build(ctx, params, mode):
    def run():
        end = time.perf_counter() + 2e-4
        while time.perf_counter() < end:
            pass

    opts = ctx.options
    return Step(run=run, notes={"torch_compile": opts.torch_compile if opts else "no options",
                                "size": opts.size if opts else None})

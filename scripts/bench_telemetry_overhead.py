"""What the meters cost: the same step timed with and without telemetry, interleaved.

Runs in one process on torch:cpu:fp32 (default: LayerNorm forward_backward, default size),
alternating meters-on and meters-off measurements so machine drift hits both alike,
and prints the median step time of each and their ratio.

    python scripts/bench_telemetry_overhead.py [--case GLOB] [--size default] [--pairs 5]
"""

from __future__ import annotations

import argparse
import statistics

from xpubench.backends.base import make_backend
from xpubench.spec import registry as specmod
from xpubench.measure.case import measure_case
from xpubench.options import RunOptions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="normalization/layernorm:forward_backward")
    ap.add_argument("--size", default="default")
    ap.add_argument("--backend", default="torch:cpu:fp32")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--budget", type=float, default=1.0)
    args = ap.parse_args()
    case = specmod.select(None, [args.case], args.size)[0]
    backend = make_backend(args.backend)
    backend.setup()
    on, off = [], []
    for i in range(args.pairs):
        for tele, sink in ((True, on), (False, off)) if i % 2 == 0 else ((False, off), (True, on)):
            rec = measure_case(backend, case, RunOptions(size=args.size, time_budget_s=args.budget,
                                                         telemetry=tele, accuracy=False))
            sink.append(rec["time_s"]["median"])
    m_on, m_off = statistics.median(on), statistics.median(off)
    print(f"case: {case.full_name} on {args.backend}, {args.pairs} interleaved pairs")
    print(f"with meters:    median {m_on * 1e3:.4f} ms   runs: {', '.join(f'{x * 1e3:.4f}' for x in on)}")
    print(f"without meters: median {m_off * 1e3:.4f} ms   runs: {', '.join(f'{x * 1e3:.4f}' for x in off)}")
    print(f"ratio with/without: {m_on / m_off:.4f}")


if __name__ == "__main__":
    main()

"""Harness vs hand-written loop: the classic MNIST training step on torch:cpu:fp32.

Runs, interleaved in one process (A B A B ..., so machine drift hits both alike):
  A. ``xpubench.measure.case.measure_case`` on training/mnist_cnn (default size: batch 128):
     its median step time (and mean, for reference);
  B. a plain training loop written here (same model, Adadelta, batch, loss):
     ``--warmup`` untimed steps, then ``--steps`` steps each timed with
     ``time.perf_counter``; median and mean of those step times.
Prints each run, then throughput (samples/s = batch / step time) from the median
over runs of each side's median, and the ratio harness / plain (1.0 = the harness
adds nothing; medians are compared because a busy machine inflates means).

    .venv/bin/python scripts/bench_harness_overhead.py [--runs 5] [--steps 20] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def plain_loop_step_times(steps: int, warmup: int, batch: int) -> list[float]:
    """Seconds per step of a hand-written MNIST training loop, one entry per step."""
    import torch
    import torch.nn.functional as F

    from xpubench.suites.models import cnn

    torch.manual_seed(0)
    model = cnn.torch_mnist_cnn()
    model.train()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-7)
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per plain-loop run")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before each plain-loop run")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()

    from xpubench.backends.base import make_backend
    from xpubench.spec import registry as specmod
    from xpubench.measure.case import measure_case
    from xpubench.options import RunOptions

    backend = make_backend("torch:cpu:fp32")
    info = backend.setup(args.threads)
    case = specmod.select(["training"], ["mnist_cnn"], "default")[0]
    batch = int(case.params["batch"])
    opts = RunOptions(size="default", telemetry=False, accuracy=False)
    print(f"case {case.full_name} on torch:cpu:fp32, threads={info['threads']}, torch {info['torch']}")

    harness, plain = [], []  # (median, mean) seconds per step, one pair per run
    for i in range(args.runs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = measure_case(backend, case, opts)
        t = rec["time_s"]
        harness.append((t["median"], t["mean"]))
        times = plain_loop_step_times(args.steps, args.warmup, batch)
        plain.append((statistics.median(times), statistics.fmean(times)))
        print(f"run {i + 1}: harness median {t['median'] * 1e3:7.2f} ms mean {t['mean'] * 1e3:7.2f} ms "
              f"({t['rounds']} rounds x {t['iterations_per_round']}, {t['stop_reason']})   "
              f"plain median {plain[-1][0] * 1e3:7.2f} ms mean {plain[-1][1] * 1e3:7.2f} ms")
    for k, what in ((0, "median"), (1, "mean")):
        h = statistics.median(r[k] for r in harness)
        p = statistics.median(r[k] for r in plain)
        print(f"by {what:6s}: harness {batch / h:8.1f} samples/s, plain loop {batch / p:8.1f} samples/s, "
              f"ratio harness/plain {p / h:.3f}")
    ratios = [p[0] / h[0] for h, p in zip(harness, plain)]
    print("per-run ratios (medians): " + ", ".join(f"{r:.3f}" for r in ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

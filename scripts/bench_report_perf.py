#!/usr/bin/env python3
"""Benchmark of `xpubench report` itself (not a test): 200 runs x 100 measurements.

Writes synthetic results files (4 machines x 50 nights, 100 measurements per run,
40 per-round samples each, a few failures and step changes), then times
``build_site`` (reading, deciding history flags, writing every page) and prints
the size of each page.

    .venv/bin/python scripts/bench_report_perf.py [--runs 200] [--measurements 100] [--keep DIR]

Target on the 2-core dev VM: under 10 s, every page under a few MB.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xpubench.report import build_site  # noqa: E402

SUITES = {"normalization": ("samples", 32), "training": ("tokens", 4096), "optimizers": ("parameters", 1e6)}
BACKENDS = ["torch:cpu:fp32", "jax:cpu:fp32", "torch:cuda:fp32", "torch:cuda:bf16"]


def _samples(rng: random.Random, median: float, n: int = 40) -> list[float]:
    return [median * math.exp(rng.gauss(0.0, 0.02)) for _ in range(n)]


def _time_block(xs: list[float]) -> dict:
    s = sorted(xs)
    n = len(s)
    med = s[n // 2]
    return {"median": med, "mean": sum(s) / n, "min": s[0], "max": s[-1], "iqr": s[3 * n // 4] - s[n // 4],
            "ci95": [s[max(0, n // 2 - 7)], s[min(n - 1, n // 2 + 7)]], "rounds": n, "iterations_per_round": 10,
            "stop_reason": "ci-target", "samples": xs, "timer_overhead_s": 4e-8, "drift": 0.003}


def make_run(rng: random.Random, machine: str, night: int, n_meas: int) -> dict:
    started = datetime(2026, 1, 1, 2, tzinfo=timezone.utc) + timedelta(days=night, minutes=7 * sum(map(ord, machine)) % 50)
    ms = []
    cases_per_suite = max(1, n_meas // (len(SUITES) * len(BACKENDS)) + 1)
    for suite, (unit, units) in SUITES.items():
        for c in range(cases_per_suite):
            for b in BACKENDS:
                if len(ms) >= n_meas:
                    break
                base = 1e-3 * (1 + c) * (0.01 if "cuda" in b else 1.0) * (0.6 if "bf16" in b else 1.0)
                step = 1.12 if (c == 0 and b == "torch:cuda:fp32" and night >= 30) else 1.0  # a regression
                m = {"suite": suite, "case": f"case{c}[n={32 * (c + 1)}]", "params": {"n": 32 * (c + 1)},
                     "mode": "forward", "backend": b, "framework": b.split(":")[0], "device": b.split(":")[1],
                     "precision": b.split(":")[2], "status": "ok", "reason": None, "unit": unit,
                     "units_per_step": units}
                if rng.random() < 0.01:
                    m.update(status=rng.choice(["oom", "timeout", "error"]), reason="synthetic failure")
                else:
                    t = _time_block(_samples(rng, base * step))
                    m.update(time_s=t, throughput_per_s=units / t["median"], compile_s=0.1, first_call_s=0.2,
                             memory={"device_peak_bytes": 2**30 if "cuda" in b else None,
                                     "device_method": "torch.cuda.max_memory_allocated",
                                     "host_peak_bytes": 2**28, "host_method": "psutil"},
                             energy={"joules_per_step": 30 * t["median"], "joules_per_unit": 30 * t["median"] / units,
                                     "avg_power_w": 30.0, "method": "nvml-counter" if "cuda" in b else "rapl"},
                             error_vs_fp32=1e-3 if "bf16" in b else None, mfu=0.3)
                ms.append(m)
    return {"schema_version": 1,
            "run": {"id": f"{machine}-{night:03d}", "started_at": started.isoformat(), "finished_at": None,
                    "command": "xpubench run", "xpubench_version": "0.1.0",
                    "git": {"commit": f"{night:040x}", "branch": "main", "dirty": False}},
            "machine": {"machine_id": machine, "hostname": machine, "os": {"system": "Linux"},
                        "cpu": {"model": "AMD EPYC", "logical_cores": 16}, "accelerators": [],
                        "memory_bytes": 2**36, "software": {"python": "3.11.7"}},
            "measurements": ms}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--measurements", type=int, default=100)
    ap.add_argument("--machines", type=int, default=4)
    ap.add_argument("--keep", type=Path, default=None, help="write inputs and site here and keep them")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="xpubench-report-perf-"))
    results, out = work / "results", work / "report"
    rng = random.Random(0)
    t0 = time.perf_counter()
    nights = math.ceil(args.runs / args.machines)
    written = 0
    for night in range(nights):
        for k in range(args.machines):
            if written == args.runs:
                break
            doc = make_run(rng, f"machine-{k}", night, args.measurements)
            path = results / doc["machine"]["machine_id"] / f"{doc['run']['id']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc))
            written += 1
    gen_s = time.perf_counter() - t0
    input_mb = sum(p.stat().st_size for p in results.rglob("*.json")) / 2**20

    t0, c0 = time.perf_counter(), time.process_time()
    index = build_site([results], out)
    build_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0

    print(f"inputs: {written} runs x {args.measurements} measurements, {input_mb:.1f} MiB "
          f"(generated in {gen_s:.1f} s)")
    print(f"report: {build_s:.2f} s wall, {cpu_s:.2f} s CPU  ->  {index}")
    pages = sorted(out.glob("*.html"), key=lambda p: -p.stat().st_size)
    for p in pages:
        print(f"  {p.name:32s} {p.stat().st_size / 2**20:7.2f} MiB")
    print(f"  {'plotly.min.js (shared)':32s} {(out / 'plotly.min.js').stat().st_size / 2**20:7.2f} MiB")
    largest = pages[0].stat().st_size / 2**20
    ok = build_s < 10 and largest < 5
    print(f"{'OK' if ok else 'OVER BUDGET'}: {build_s:.2f} s (budget 10 s), largest page {largest:.2f} MiB "
          "(budget a few MB)")
    if args.keep is None:
        shutil.rmtree(work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

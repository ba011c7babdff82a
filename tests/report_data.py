"""Builders of synthetic runs for the report and compare tests (results-file contract).

Sample distributions are either real (``REAL_SAMPLES``: per-round seconds per
step measured on this project's 2-core CPU VM with ``time.perf_counter`` around
a block of calls, rounded to 4 digits) or lognormal noise around a median.
"""

from __future__ import annotations

import json
import math
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# Real per-round samples (seconds per step), 48-60 rounds each.
REAL_SAMPLES: dict[str, list[float]] = {
    # torch.nn.LayerNorm(512) on a (64, 512) tensor, 1 thread, 20 calls per round: tight, one
    # cold first round and a slow ~1% upward drift.
    "torch_layernorm_64x512_cpu": [
        5.71e-05, 1.479e-05, 1.267e-05, 1.265e-05, 1.263e-05, 1.262e-05, 1.266e-05, 1.263e-05, 1.26e-05,
        1.265e-05, 1.27e-05, 1.268e-05, 1.269e-05, 1.269e-05, 1.264e-05, 1.263e-05, 1.263e-05, 1.569e-05,
        1.268e-05, 1.271e-05, 1.269e-05, 1.274e-05, 1.274e-05, 1.272e-05, 1.274e-05, 1.274e-05, 1.275e-05,
        1.274e-05, 1.274e-05, 1.275e-05, 1.287e-05, 1.273e-05, 1.42e-05, 1.273e-05, 1.274e-05, 1.273e-05,
        1.272e-05, 1.274e-05, 1.272e-05, 1.272e-05, 1.274e-05, 1.274e-05, 1.275e-05, 1.274e-05, 1.275e-05,
        1.275e-05, 1.278e-05, 1.275e-05],
    # numpy.sort of 20k float64, 5 calls per round: tight with rare 10-20% outliers.
    "numpy_sort_20k": [
        5.847e-05, 5.777e-05, 5.777e-05, 5.806e-05, 5.808e-05, 6.326e-05, 5.807e-05, 5.805e-05, 5.799e-05,
        5.797e-05, 5.802e-05, 5.797e-05, 6.833e-05, 5.801e-05, 5.79e-05, 5.79e-05, 5.797e-05, 5.837e-05,
        5.78e-05, 5.783e-05, 5.788e-05, 5.786e-05, 5.78e-05, 5.783e-05, 5.784e-05, 5.775e-05, 6.156e-05,
        5.818e-05, 5.817e-05, 5.818e-05, 5.799e-05, 5.788e-05, 5.79e-05, 5.81e-05, 5.811e-05, 5.815e-05,
        5.813e-05, 5.792e-05, 5.786e-05, 6.881e-05, 5.855e-05, 5.779e-05, 5.778e-05, 5.779e-05, 5.768e-05,
        5.762e-05, 5.766e-05, 5.789e-05],
    # 128x128 float32 matmul in torch, 1 thread, 20 calls per round: ~1% IQR.
    "torch_matmul_128_cpu": [
        4.019e-05, 4.011e-05, 3.991e-05, 4.156e-05, 3.985e-05, 3.971e-05, 4.062e-05, 3.943e-05, 4.048e-05,
        3.971e-05, 3.995e-05, 3.98e-05, 3.986e-05, 4.206e-05, 4.02e-05, 4.026e-05, 4.004e-05, 4.019e-05,
        4.199e-05, 3.979e-05, 3.967e-05, 3.964e-05, 3.963e-05, 4.096e-05, 3.97e-05, 3.952e-05, 3.952e-05,
        3.955e-05, 4.016e-05, 3.951e-05, 3.972e-05, 4.062e-05, 3.962e-05, 4.017e-05, 3.969e-05, 3.959e-05,
        3.968e-05, 3.957e-05, 4.068e-05, 3.967e-05, 4.005e-05, 4.005e-05, 4.035e-05, 4.181e-05, 3.976e-05,
        3.98e-05, 3.988e-05, 3.987e-05],
    # Conv2d(16, 32, 3) on (8, 16, 32, 32), 2 threads, while other processes competed for the
    # 2 cores: a 4x slow phase in the middle of the measurement (drift, not jitter).
    "torch_conv2d_contended_cpu": [
        0.0008699, 0.0008743, 0.000886, 0.0008432, 0.0008871, 0.00139, 0.00166, 0.003739, 0.003484,
        0.003614, 0.004078, 0.003316, 0.004084, 0.004192, 0.004158, 0.004132, 0.003999, 0.004395, 0.004103,
        0.004106, 0.004104, 0.004981, 0.006413, 0.004109, 0.004061, 0.005191, 0.005734, 0.003953, 0.0009932,
        0.001448, 0.001061, 0.001005, 0.0009829, 0.001, 0.001206, 0.001129, 0.0009755, 0.000957, 0.0009878,
        0.000999, 0.000998, 0.0009932, 0.00106, 0.0009942, 0.0009881, 0.0009954, 0.0009884, 0.0009774,
        0.001007, 0.001005, 0.0009991, 0.001008, 0.001087, 0.00106, 0.001116, 0.001046, 0.0009985, 0.001005,
        0.000998, 0.001016],
}

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


def lognormal_samples(rng: random.Random, median: float, spread: float = 0.02, n: int = 30) -> list[float]:
    """``n`` rounds of lognormal noise with relative spread ``spread`` around ``median``."""
    return [median * math.exp(rng.gauss(0.0, spread)) for _ in range(n)]


def _quantile(xs: list[float], q: float) -> float:
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def time_block(samples: list[float], iterations_per_round: int = 10) -> dict[str, Any]:
    xs = sorted(samples)
    n = len(xs)
    med = _quantile(xs, 0.5)
    # distribution-free CI of the median from order statistics (normal approximation of ranks)
    half = 1.96 * math.sqrt(n) / 2
    lo = xs[max(0, math.floor(n / 2 - half) - 1)]
    hi = xs[min(n - 1, math.ceil(n / 2 + half))]
    return {
        "median": med, "mean": sum(xs) / n, "min": xs[0], "max": xs[-1],
        "q1": _quantile(xs, 0.25), "q3": _quantile(xs, 0.75), "iqr": _quantile(xs, 0.75) - _quantile(xs, 0.25),
        "ci95": [lo, hi], "rounds": n, "iterations_per_round": iterations_per_round,
        "stop_reason": "ci-target", "samples": list(samples), "timer_overhead_s": 4e-8, "drift": 0.004,
    }


def measurement(suite: str, case: str, backend: str, samples: list[float] | None = None, *,
                mode: str = "forward", status: str = "ok", reason: str | None = None, unit: str = "samples",
                units_per_step: float = 32, device_peak_bytes: int | None = None,
                host_peak_bytes: int | None = 300 * 2**20, energy_method: str | None = None,
                joules_per_step: float | None = None, error_vs_fp32: float | None = None,
                **extra: Any) -> dict[str, Any]:
    fw, dev, prec = backend.split(":")
    m: dict[str, Any] = {
        "suite": suite, "case": case, "params": {}, "mode": mode, "backend": backend,
        "framework": fw, "device": dev, "precision": prec, "status": status, "reason": reason,
        "unit": unit, "units_per_step": units_per_step,
    }
    if status != "ok" or samples is None:
        return m
    t = time_block(samples)
    m.update(time_s=t, warmup_s=0.2, compile_s=0.05, first_call_s=0.3, threads=2,
             throughput_per_s=units_per_step / t["median"], flops_per_step=1e9, bytes_per_step=4e6)
    m["memory"] = {"device_peak_bytes": device_peak_bytes,
                   "device_method": "torch.cuda.max_memory_allocated" if device_peak_bytes else "unavailable",
                   "host_peak_bytes": host_peak_bytes, "host_method": "psutil-rss-sampler",
                   "method": "torch.cuda.max_memory_allocated" if device_peak_bytes else None}
    if energy_method:
        jps = joules_per_step if joules_per_step is not None else 40.0 * t["median"]
        m["energy"] = {"joules_per_step": jps, "joules_per_unit": jps / units_per_step,
                       "avg_power_w": jps / t["median"], "method": energy_method,
                       "is_estimate": energy_method == "estimate"}
    else:
        m["energy"] = {"joules_per_step": None, "avg_power_w": None, "method": "unavailable"}
    if error_vs_fp32 is not None:
        m["error_vs_fp32"] = error_vs_fp32
    m.update(extra)
    return m


def run(machine_id: str, started: datetime, measurements: list[dict], *, run_id: str, commit: str = "0" * 40,
        hostname: str | None = None, cpu_model: str = "AMD EPYC 7B13", accelerators: list[dict] | None = None,
        software: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "run": {"id": run_id, "started_at": started.isoformat(timespec="seconds"),
                "finished_at": (started + timedelta(minutes=9)).isoformat(timespec="seconds"),
                "command": "xpubench run", "xpubench_version": "0.1.0",
                "git": {"commit": commit, "branch": "main", "dirty": False}},
        "machine": {"machine_id": machine_id, "hostname": hostname or machine_id,
                    "os": {"system": "Linux", "release": "6.1.0", "machine": "x86_64"},
                    "cpu": {"model": cpu_model, "physical_cores": 8, "logical_cores": 16},
                    "accelerators": accelerators or [], "memory_bytes": 64 * 2**30,
                    "software": software or {"python": "3.11.7", "torch": "2.13.0", "jax": "0.10.2"}},
        "measurements": measurements,
    }


def write_run(root: Path, doc: dict) -> Path:
    """``root/<machine_id>/<timestamp>-<run id>.json`` (machine id made path-safe)."""
    mid = re.sub(r"[^A-Za-z0-9_.-]+", "_", doc["machine"]["machine_id"]).strip("._") or "machine"
    stamp = doc["run"]["started_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = Path(root) / mid / f"{stamp}-{doc['run']['id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return path


def pytest_benchmark_doc(samples_by_name: dict[str, list[float]], *, node: str = "ci-runner",
                         extra_info: dict[str, dict] | None = None, when: str = "2026-11-03T02:00:00+00:00",
                         commit: str = "abcdef1234567890") -> dict[str, Any]:
    """A pytest-benchmark 5.x ``--benchmark-json`` document (shape as written by the plugin)."""
    benches = []
    for name, data in samples_by_name.items():
        xs = sorted(data)
        med = _quantile(xs, 0.5)
        benches.append({
            "group": None, "name": name, "fullname": f"tests/test_b.py::{name}", "params": None, "param": None,
            "extra_info": (extra_info or {}).get(name, {}),
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 5, "max_time": 1.0,
                        "min_time": 5e-06, "warmup": False},
            "stats": {"min": xs[0], "max": xs[-1], "mean": sum(xs) / len(xs), "stddev": 0.0, "rounds": len(xs),
                      "median": med, "iqr": _quantile(xs, 0.75) - _quantile(xs, 0.25),
                      "q1": _quantile(xs, 0.25), "q3": _quantile(xs, 0.75), "iqr_outliers": 0,
                      "stddev_outliers": 0, "outliers": "0;0", "ld15iqr": xs[0], "hd15iqr": xs[-1],
                      "ops": 1.0 / (sum(xs) / len(xs)), "total": sum(xs), "data": list(data), "iterations": 1},
        })
    return {
        "machine_info": {"node": node, "processor": "x86_64", "machine": "x86_64", "python_compiler": "GCC 12.2.0",
                         "python_implementation": "CPython", "python_implementation_version": "3.11.7",
                         "python_version": "3.11.7", "python_build": ["main", "May 1 2026"],
                         "release": "6.1.0", "system": "Linux",
                         "cpu": {"brand_raw": "AMD EPYC 7B13", "count": 2, "arch": "X86_64"}},
        "commit_info": {"id": commit, "time": when, "author_time": when, "dirty": False, "project": "xpubench",
                        "branch": "main"},
        "benchmarks": benches, "datetime": when, "version": "5.3.1",
    }


# --------------------------------------------------------------------------- ceilings and work
def ceilings_doc(machine_id: str, entries: dict[str, dict], measured_at: str) -> dict[str, Any]:
    """A ``xpubench.hardware.ceilings`` document as ``xpubench probe`` writes it (machine block trimmed)."""
    return {"schema_version": 1, "machine": {"machine_id": machine_id}, "measured_at": measured_at,
            "xpubench_version": "0.1.0",
            "ceilings": {k: {**v, "measured_at": measured_at} for k, v in entries.items()}}


PROBED = "2026-10-31T01:00:00+00:00"
# Laptop: only torch was probed, so jax:cpu records have no ceilings (their efficiency is unknown).
LAPTOP_CEILINGS = ceilings_doc("laptop", {
    "torch:cpu": {"matmul_flops_per_s": {"fp32": 4.0e11, "bf16": 2.2e11}, "copy_bytes_per_s": 2.4e10,
                  "triad_bytes_per_s": 2.1e10, "threads": 8}}, PROBED)
GPU_CEILINGS = ceilings_doc("gpu-node", {
    "torch:cpu": {"matmul_flops_per_s": {"fp32": 1.1e12, "bf16": 6.0e11}, "copy_bytes_per_s": 9.0e10,
                  "triad_bytes_per_s": 8.5e10, "threads": 16},
    "torch:cuda": {"matmul_flops_per_s": {"fp32": 5.1e13, "tf32": 3.6e14, "bf16": 6.9e14, "fp16": 6.9e14},
                   "copy_bytes_per_s": 2.9e12, "triad_bytes_per_s": 2.8e12, "h2d_bytes_per_s": 5.0e10,
                   "d2h_bytes_per_s": 5.0e10, "device_name": "NVIDIA H100 80GB HBM3"}}, PROBED)

# FLOPs and fp32 bytes per step of each case (what the suites' work= declares, rounded);
# half-width precisions move half the bytes.
WORK = {"layernorm[b=8,t=512,d=768]": (2.5e7, 2.5e7), "batchnorm2d[n=32,c=64,hw=56]": (6.4e7, 5.1e7),
        "transformer_step[d=256,l=2]": (3.0e10, 1.5e9), "cnn_step[n=32]": (1.2e10, 4.0e8)}


def work(case: str, backend: str) -> dict[str, float]:
    flops, nbytes = WORK[case]
    half = backend.rsplit(":", 1)[-1] in ("bf16", "fp16")
    return {"flops_per_step": flops, "bytes_per_step": nbytes / 2 if half else nbytes}


# --------------------------------------------------------------------------- a small mixed site
HOSTILE_MACHINE = "<script>alert(1)</script>"
HOSTILE_CASE = '<img src=x onerror=alert(2)>[n="1"]'
HOSTILE_REASON = "</script><script>alert(3)</script> & <b>bold</b>"


def site_runs(seed: int = 7, nights: int = 3) -> list[dict]:
    """Runs for the browser test: laptop and GPU node over ``nights`` nights, plus a hostile machine.

    The GPU node's last night slows ``layernorm`` on torch:cuda:fp32 by 15% (a flagged regression).
    Runs carry measured ceilings and ``roofline`` blocks (``xpubench.hardware.roofline.attach_roofline``),
    except the laptop's first night and the hostile machine: files from before ``xpubench probe``.
    """
    from xpubench.hardware.roofline import attach_roofline

    rng = random.Random(seed)
    gpu = [{"kind": "cuda", "index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_bytes": 80 * 2**30}]
    docs = []
    norm_cases = {"layernorm[b=8,t=512,d=768]": 2e-3, "batchnorm2d[n=32,c=64,hw=56]": 5e-3}
    train_cases = {("transformer_step[d=256,l=2]", "tokens", 4096): 0.12, ("cnn_step[n=32]", "samples", 32): 0.08}
    for night in range(nights):
        when = T0 + timedelta(days=night)
        commit = f"{night + 1:x}" * 40
        # laptop: CPU only, energy estimated
        ms = []
        for case, med in norm_cases.items():
            ms.append(measurement("normalization", case, "torch:cpu:fp32", lognormal_samples(rng, med),
                                  energy_method="estimate", **work(case, "torch:cpu:fp32")))
            ms.append(measurement("normalization", case, "jax:cpu:fp32", lognormal_samples(rng, med * 0.8),
                                  energy_method="estimate", **work(case, "jax:cpu:fp32")))
            ms.append(measurement("normalization", case, "torch:cpu:bf16", lognormal_samples(rng, med * 0.7),
                                  energy_method="estimate", error_vs_fp32=3e-3, **work(case, "torch:cpu:bf16")))
        for (case, unit, units), med in train_cases.items():
            ms.append(measurement("training", case, "torch:cpu:fp32", lognormal_samples(rng, med), mode="step",
                                  unit=unit, units_per_step=units, energy_method="estimate",
                                  **work(case, "torch:cpu:fp32")))
        ms.append(measurement("training", "transformer_step[d=256,l=2]", "jax:cpu:fp32", mode="step",
                              unit="tokens", units_per_step=4096, status="skipped",
                              reason="jax[cpu] missing on this machine"))
        lap = run("laptop", when, ms, run_id=f"lap{night}", commit=commit, cpu_model="Intel Core i7-1260P")
        docs.append(attach_roofline(lap, LAPTOP_CEILINGS) if night > 0 else lap)
        # GPU node
        ms = []
        for case, med in norm_cases.items():
            slow = 1.15 if (night == nights - 1 and case.startswith("layernorm")) else 1.0
            ms.append(measurement("normalization", case, "torch:cpu:fp32", lognormal_samples(rng, med * 0.5),
                                  energy_method="rapl", **work(case, "torch:cpu:fp32")))
            # mfu: a field the report has no special view of, shown as it comes
            ms.append(measurement("normalization", case, "torch:cuda:fp32",
                                  lognormal_samples(rng, med / 150 * slow), device_peak_bytes=900 * 2**20,
                                  energy_method="nvml-counter", mfu=0.21, **work(case, "torch:cuda:fp32")))
            ms.append(measurement("normalization", case, "torch:cuda:bf16", lognormal_samples(rng, med / 300),
                                  device_peak_bytes=500 * 2**20, energy_method="nvml-counter", error_vs_fp32=4e-3,
                                  **work(case, "torch:cuda:bf16")))
            ms.append(measurement("normalization", case, "torch:cuda:tf32", lognormal_samples(rng, med / 200),
                                  device_peak_bytes=900 * 2**20, energy_method="nvml-counter", error_vs_fp32=2e-4,
                                  **work(case, "torch:cuda:tf32")))
        ms.append(measurement("normalization", "layernorm[b=8,t=512,d=768]", "torch:cuda:fp16", status="oom",
                              reason="CUDA out of memory. Tried to allocate 2.00 GiB"))
        for (case, unit, units), med in train_cases.items():
            ms.append(measurement("training", case, "torch:cuda:bf16", lognormal_samples(rng, med / 40), mode="step",
                                  unit=unit, units_per_step=units, device_peak_bytes=12 * 2**30,
                                  energy_method="nvml-counter", error_vs_fp32=8e-3, **work(case, "torch:cuda:bf16")))
            ms.append(measurement("training", case, "torch:cuda:fp32", lognormal_samples(rng, med / 20), mode="step",
                                  unit=unit, units_per_step=units, device_peak_bytes=20 * 2**30,
                                  energy_method="nvml-counter", **work(case, "torch:cuda:fp32")))
        ms.append(measurement("training", "cnn_step[n=32]", "torch:cpu:fp32", lognormal_samples(rng, 0.05),
                              mode="step", unit="samples", units_per_step=32, energy_method="rapl",
                              **work("cnn_step[n=32]", "torch:cpu:fp32")))
        ms.append(measurement("training", "transformer_step[d=256,l=2]", "torch:cuda:fp16", mode="step",
                              unit="tokens", units_per_step=4096, status="diverged", reason="loss became NaN or Inf"))
        docs.append(attach_roofline(run("gpu-node", when + timedelta(minutes=30), ms, run_id=f"gpu{night}",
                                        commit=commit, accelerators=gpu), GPU_CEILINGS))
    # a machine whose id, case name and error text try to inject markup
    hostile = [measurement("dropout", HOSTILE_CASE, "torch:cpu:fp32", lognormal_samples(rng, 1e-3)),
               measurement("dropout", HOSTILE_CASE, "jax:cpu:fp32", status="error", reason=HOSTILE_REASON)]
    docs.append(run(HOSTILE_MACHINE, T0 + timedelta(days=1), hostile, run_id="evil1",
                    hostname='"><svg onload=alert(4)>'))
    return docs

"""Timing the probe's kernels: the matmul sweep, the vector roof, the bandwidth kernels.

Each rate comes from ``xpubench.measure.timing.measure`` over the backend's
``time_block`` (the suites' warm-up, calibrated rounds and stopping rule); a kernel a
backend lacks (ProbeUnsupported) or that fails is recorded with its reason, and the
other kernels still run. ``xpubench.hardware.probe`` puts them together per device.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from xpubench.hardware.probe_plan import MiB, ProbePlan
from xpubench.measure.timing import TimingConfig

Log = Callable[[str], None]
SLOW_FRACTION = 0.10  # a reduced precision below 10% of fp32's peak is flagged as a slow path
RUN_FIELDS = ("median_s", "rel_ci", "rounds", "stop_reason")


def measure_rate(backend: Any, step: Any, amount_per_call: float, cfg: TimingConfig) -> dict[str, Any]:
    """Time ``step`` through the suites' measuring path; ``amount_per_call`` FLOPs or bytes -> per second."""
    from xpubench.measure import step as measuring
    from xpubench.options import RunOptions

    res = measuring.measure_step(backend, step, RunOptions(telemetry=False, accuracy=False), timing=cfg).timing
    med = res.stats.median
    return {
        "per_s": amount_per_call / med if med > 0 else None,
        "median_s": med,
        "rel_ci": res.stats.rel_ci,
        "iqr_rel": res.stats.iqr / med if med > 0 else None,
        "rounds": res.stats.rounds,
        "iterations_per_round": res.iterations_per_round,
        "stop_reason": res.stop_reason,
        "drift": res.drift,
        "first_call_s": res.warmup.first_call_s,
    }


def one_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


def _is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "resource_exhausted" in text


def sweep_matmul(backend: Any, precision: str, plan: ProbePlan, log: Log,
                 fp32_best: float | None = None) -> dict[str, Any]:
    """Matmul sweep for one precision: {"best": FLOP/s, "best_shape", "by_shape", "note", ...}.

    A shape the backend cannot run (ProbeUnsupported: e.g. no batched int8 product)
    or one that would take too long at the best rate so far is skipped with a note;
    the precision is unsupported only when no shape runs.
    """
    from xpubench.backends.base import ProbeUnsupported

    cfg = plan.timing_config()
    by_shape: dict[str, float] = {}
    detail: dict[str, Any] = {"runs": {}}
    notes: list[str] = []
    unsupported: list[str] = []
    for shape in plan.matmul_shapes:
        if by_shape:
            # at the best rate seen so far: one noisy shape must not end the sweep
            est = shape.flops / max(by_shape.values())
            if est > plan.max_call_s:
                notes.append(f"{shape.label} skipped: one call would take ~{est:.2g} s")
                continue
        try:
            step = backend.probe_matmul(precision, shape.m, shape.k, shape.n, shape.batch)
            r = measure_rate(backend, step, shape.flops, cfg)
        except ProbeUnsupported as e:
            unsupported.append(f"{shape.label}: {e}")
            continue
        except Exception as exc:
            if _is_oom(exc) and by_shape:  # the shapes measured stand
                notes.append(f"{shape.label} skipped: out of memory")
                backend.release()
                continue
            raise
        if r["per_s"] is None:
            raise RuntimeError(f"matmul {shape.label} timed at zero seconds")
        detail.setdefault("op", step.notes.get("op"))
        detail.setdefault("dtype", step.notes.get("dtype"))
        del step
        backend.release()
        by_shape[shape.label] = r["per_s"]
        detail["runs"][shape.label] = {k: r[k] for k in RUN_FIELDS}
        log(f"  matmul {precision:5s} {shape.label:<20s} {r['per_s'] / 1e9:10.1f} GFLOP/s")
    if not by_shape:
        raise ProbeUnsupported("; ".join(unsupported) or "no shape ran")
    if unsupported:
        notes.append("not run: " + "; ".join(unsupported))
    best_shape = max(by_shape, key=lambda k: by_shape[k])
    if precision != "fp32" and fp32_best and by_shape[best_shape] < SLOW_FRACTION * fp32_best:
        # e.g. fp16 on a CPU without native fp16 arithmetic: recorded, and said so
        notes.append(f"slow path: {by_shape[best_shape] / fp32_best:.1%} of fp32")
    squares = {str(s.square_n): by_shape[s.label] for s in plan.matmul_shapes if s.square_n and s.label in by_shape}
    return {"best": by_shape[best_shape], "best_shape": best_shape, "by_shape": by_shape, "by_n": squares,
            "note": "; ".join(notes) or None, **detail}


def probe_vector(make: Callable[[str], Any], precisions: Iterable[str], plan: ProbePlan,
                 log: Log) -> dict[str, Any]:
    """The element-wise roof per precision: {"vector_flops_per_s": {...}, "vector": {details}}.

    ``make(precision)``: a backend set up and activated for it.
    """
    from xpubench.backends.base import ProbeUnsupported

    cfg = plan.timing_config()
    rates: dict[str, float] = {}
    details: dict[str, Any] = {}
    for p in precisions:
        backend = None
        try:
            backend = make(p)
            step = backend.probe_vector(p, plan.vector_bytes)
            r = measure_rate(backend, step, float(step.notes["flops_per_call"]), cfg)
        except ProbeUnsupported as e:
            details[p] = {"reason": str(e)}
            continue
        except Exception as exc:  # the matmul roofs still stand
            details[p] = {"reason": one_line(exc)}
            log(f"  vector {p:5s} failed: {one_line(exc)}")
            continue
        finally:
            if backend is not None:
                backend.release()
        if r["per_s"] is not None:
            rates[p] = r["per_s"]
        details[p] = {**step.notes, **{k: r[k] for k in RUN_FIELDS}}
        log(f"  vector {p:5s} {plan.vector_bytes / 1024:7.0f} KiB arrays {(r['per_s'] or 0) / 1e9:10.1f} GFLOP/s")
    return {"vector_flops_per_s": rates, "vector": details}


# Bytes each bandwidth kernel moves per call, as a multiple of its array's size.
BYTES_FACTOR = {"copy": 2, "triad": 3, "read": 1, "inplace": 2, "h2d": 1, "d2h": 1}
DEVICE_KERNELS = ("copy", "triad", "read", "inplace")


def array_bytes(nbytes: int) -> int:
    """The array size the kernels really allocate for a request of ``nbytes`` (fp32 elements)."""
    from xpubench.backends.base import probe_elements

    return probe_elements(nbytes) * 4


def _bandwidth_step(backend: Any, kind: str, nbytes: int) -> Any:
    if kind in ("h2d", "d2h"):
        return backend.probe_transfer(nbytes, kind)
    return getattr(backend, f"probe_{kind}")(nbytes)


def probe_bandwidths(backend: Any, plan: ProbePlan, log: Log) -> dict[str, Any]:
    """copy / triad / read / inplace (device) and h2d / d2h (accelerators): bytes per second."""
    from xpubench.backends.base import ProbeUnsupported

    cfg = plan.timing_config()
    out: dict[str, Any] = {}
    details: dict[str, Any] = {}
    kinds = [(k, plan.array_bytes) for k in DEVICE_KERNELS] + [(k, plan.transfer_bytes) for k in ("h2d", "d2h")]
    for kind, nbytes in kinds:
        try:
            step = _bandwidth_step(backend, kind, nbytes)
            arr = array_bytes(nbytes)
            counted = BYTES_FACTOR[kind] * arr
            r = measure_rate(backend, step, counted, cfg)
        except ProbeUnsupported as e:
            out[f"{kind}_bytes_per_s"] = None
            details[kind] = {"reason": str(e)}
            continue
        except Exception as exc:  # e.g. out of memory: unknown, and the other kernels still run
            out[f"{kind}_bytes_per_s"] = None
            details[kind] = {"reason": one_line(exc)}
            log(f"  {kind}: failed ({one_line(exc)})")
            backend.release()
            continue
        out[f"{kind}_bytes_per_s"] = r["per_s"]
        details[kind] = {"array_bytes": arr, "bytes_per_call": counted, **step.notes,
                         **{k: r[k] for k in RUN_FIELDS}}
        del step
        backend.release()
        log(f"  {kind:7s} {arr / MiB:7.0f} MiB arrays {r['per_s'] / 1e9:10.2f} GB/s")
    out["bandwidth"] = details
    return out

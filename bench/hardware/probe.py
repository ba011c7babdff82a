"""Measuring one framework:device's ceilings, for ``xpubench probe`` (``xpubench.cli.probe``).

For each framework:device (``torch:cpu``, ``jax:cpu``, ``torch:cuda``, ``jax:tpu``...):

- matmul FLOP/s per precision: a sweep of square, non-square and batched products
  (``probe_plan``), the best median over the sweep ("best sustained");
- the vector roof: element-wise FLOP/s on cache-resident arrays, per precision;
- memory bandwidth four ways, each counting only the bytes the kernel must move: a
  copy (read + write), a STREAM triad ``a = b + s*c`` (2 reads + 1 write), a read-only
  reduction, and an in-place update (read + write of the same lines). A copy's
  write-allocate read goes uncounted, so the read-only and in-place kernels usually
  show more of the memory system; the roof is the best of them;
- on accelerators, host->device and device->host bandwidth;
- the last-level cache size (whether a case's working set stays in cache), and how
  busy the rest of the machine was while probing.

Every number comes from ``xpubench.measure.timing.measure`` over the backend's
``time_block``: the same warm-up, calibrated rounds, stopping rule and device-correct
timing as the suites. Each framework:device is probed in its own fresh process
(frameworks never share one). The per-device roofs (best of every framework) are
derived from these entries by ``xpubench.hardware.device_roofs``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

from xpubench.errors import UserError
from xpubench.hardware.probe_plan import MiB, ProbePlan, plan_for
from xpubench.measure.timing import TimingConfig, measure

Log = Callable[[str], None]
SLOW_FRACTION = 0.10  # a reduced precision below 10% of fp32's peak is flagged as a slow path
# The probe's kernels use every core, so a competitor taking a tenth of the CPUs already
# stalls them (a parallel kernel waits for its slowest thread): stricter than a run's 25%.
PROBE_BUSY_SHARE = 0.10
# Bytes each bandwidth kernel moves per call, as a multiple of its array's size.
BYTES_FACTOR = {"copy": 2, "triad": 3, "read": 1, "inplace": 2, "h2d": 1, "d2h": 1}
DEVICE_KERNELS = ("copy", "triad", "read", "inplace")


# --------------------------------------------------------------------------- targets
def parse_target(text: str) -> str:
    """'torch:cpu', 'torch:cuda1' (or a full spec 'torch:cpu:bf16') -> the ceilings key."""
    from xpubench.backends.base import BackendSpec
    from xpubench.hardware.roofline import ceilings_key

    t = text.strip().lower()
    parts = t.split(":")
    if len(parts) == 2:
        t += ":fp32"
    elif len(parts) != 3:
        raise UserError(f"bad probe backend {text!r}: accepted FRAMEWORK:DEVICE[INDEX] "
                        "(e.g. torch:cpu, torch:cuda1, jax:tpu)")
    return ceilings_key(str(BackendSpec.parse(t))) or ""


def default_targets() -> list[str]:
    """One key per framework:device that ``xpubench run`` would use here."""
    from xpubench.backends.base import default_specs
    from xpubench.hardware.roofline import ceilings_key

    keys: list[str] = []
    for spec in default_specs():
        key = ceilings_key(str(spec))
        if key and key not in keys:
            keys.append(key)
    return keys


# --------------------------------------------------------------------------- measuring
def measure_rate(backend: Any, step: Any, amount_per_call: float, cfg: TimingConfig) -> dict[str, Any]:
    """Time ``step`` with the suites' loop; ``amount_per_call`` FLOPs or bytes -> per second."""
    res = measure(lambda n: backend.time_block(step, n), cfg)
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


RUN_FIELDS = ("median_s", "rel_ci", "rounds", "stop_reason")


def _one_line(exc: BaseException) -> str:
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
            details[p] = {"reason": _one_line(exc)}
            log(f"  vector {p:5s} failed: {_one_line(exc)}")
            continue
        finally:
            if backend is not None:
                backend.release()
        if r["per_s"] is not None:
            rates[p] = r["per_s"]
        details[p] = {**step.notes, **{k: r[k] for k in RUN_FIELDS}}
        log(f"  vector {p:5s} {plan.vector_bytes / 1024:7.0f} KiB arrays {(r['per_s'] or 0) / 1e9:10.1f} GFLOP/s")
    return {"vector_flops_per_s": rates, "vector": details}


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
            details[kind] = {"reason": _one_line(exc)}
            log(f"  {kind}: failed ({_one_line(exc)})")
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


# --------------------------------------------------------------------------- device facts
def cpu_last_level_cache_bytes(cache_dir: str | Path = "/sys/devices/system/cpu/cpu0/cache") -> int | None:
    """The largest data/unified cache level of CPU 0 as Linux reports it, or None."""
    best: tuple[int, int] | None = None
    for index in Path(cache_dir).glob("index*"):
        try:
            kind = (index / "type").read_text().strip()
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip().upper()
        except (OSError, ValueError):
            continue
        if kind == "Instruction":
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        try:
            size = int(text.rstrip("KMG")) * scale
        except ValueError:
            continue
        if best is None or level > best[0]:
            best = (level, size)
    return best[1] if best else None


def busy_reason(other_util: float | None) -> str | None:
    """Why the probe's figures may be low (other processes' share of the CPUs), or None."""
    if other_util is None or other_util <= PROBE_BUSY_SHARE:
        return None
    return f"machine busy: other processes used ~{other_util:.0%} of all CPUs while probing"


def _load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _device_memory(backend: Any) -> int | None:
    """Memory the probe's arrays must fit in: free host RAM, or the accelerator's memory."""
    if backend.device_kind != "cpu":
        return backend.device_memory_bytes()
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def probe_device(target: str, size: str = "default", threads: int | None = None,
                 precisions: Iterable[str] | None = None, log: Log | None = None) -> dict[str, Any]:
    """Measure one framework:device's ceilings in this process; returns its ceilings entry."""
    from xpubench.backends.base import PRECISIONS, BackendSpec, ProbeUnsupported, make_backend
    from xpubench.hardware.telemetry.cpu_load import CpuLoadProbe
    from xpubench.results.files import utc_now

    log = log or (lambda s: None)
    key = parse_target(target)
    spec = BackendSpec.parse(f"{key}:fp32")
    base = make_backend(spec)
    avail = base.availability()
    if not avail.ok:
        raise UserError(f"cannot probe {key}: {avail.reason}")
    load_before = _load_avg()
    cpu_load = CpuLoadProbe()
    cpu_load.start()
    started = time.perf_counter()
    info = base.setup(threads)
    device_name = info.get("device_name")
    if base.device_kind == "cpu":
        from xpubench.hardware.fingerprint import cpu_info

        device_name = cpu_info().get("model") or device_name
        cache = cpu_last_level_cache_bytes()
    else:
        cache = base.probe_cache_bytes()
    plan = plan_for(size, base.device_kind, _device_memory(base))
    log(f"{key}: {device_name or spec.device}, {info.get('threads')} threads, size {size}")

    def backend_for(p: str) -> Any:
        b = make_backend(spec.with_precision(p))
        b.setup(threads)
        b.activate()  # e.g. TF32 on for tf32, off (true fp32) for fp32
        return b

    here = base.probe_precisions()
    peaks: dict[str, float] = {}
    detail: dict[str, Any] = {}
    unsupported: dict[str, str] = {}
    for p in PRECISIONS:
        if p not in here:
            unsupported[p] = base.probe_not_probed_reason(p)
            continue
        if precisions is not None and p not in precisions:
            continue  # the caller asked for fewer
        a = make_backend(spec.with_precision(p)).availability()
        if not a.ok:
            unsupported[p] = a.reason
            continue
        b = None
        try:
            b = backend_for(p)
            res = sweep_matmul(b, p, plan, log, peaks.get("fp32"))
        except ProbeUnsupported as e:
            unsupported[p] = str(e)
            log(f"  matmul {p:5s} unsupported: {e}")
            continue
        except Exception as exc:
            unsupported[p] = f"failed: {_one_line(exc)}"
            log(f"  matmul {p:5s} failed: {_one_line(exc)}")
            continue
        finally:
            if b is not None:
                try:
                    b.release()
                except Exception:
                    pass
        peaks[p] = res["best"]
        detail[p] = {k: v for k, v in res.items() if k != "best"}
    vector_precisions = [p for p in base.probe_vector_precisions() if precisions is None or p in precisions]
    vec = probe_vector(backend_for, vector_precisions, plan, log)
    base.activate()  # fp32 switches for the bandwidth kernels
    bw = probe_bandwidths(base, plan, log)
    load = cpu_load.stop()
    return {
        "framework": spec.framework,
        "device": spec.device,
        "device_index": spec.device_index,
        "device_key": info.get("device_key") or base.device_key,
        "device_name": device_name,
        "size": size,
        "threads": info.get("threads"),
        "measured_at": utc_now(),
        "matmul_flops_per_s": peaks,
        "matmul": detail,
        "unsupported": unsupported,
        **vec,
        **bw,
        "cache_bytes": cache,
        "plan": plan.to_dict(),
        "setup": {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool)) or v is None},
        "load_avg_before": load_before,
        "load_avg_after": _load_avg(),
        "cpu_load": {**load.as_dict(), "other_util": None if load.other_util is None else round(load.other_util, 4)},
        # ceilings measured while other processes competed are low: marked, and not
        # reused as the cache by the next `xpubench probe`
        "busy": busy_reason(load.other_util),
        "probe_s": round(time.perf_counter() - started, 2),
    }


# --------------------------------------------------------------------------- isolation
def _child(conn, target: str, size: str, threads: int | None) -> None:
    def log(line: str) -> None:
        print(line, flush=True)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. XLA:CPU ignoring buffer donation
            entry = probe_device(target, size, threads, log=log)
        conn.send(("ok", entry))
    except UserError as e:
        conn.send(("error", str(e)))
    except BaseException as e:  # reported by the parent, which goes on with the next device
        conn.send(("error", _one_line(e)))
    finally:
        conn.close()


def probe_in_subprocess(target: str, size: str, threads: int | None = None) -> dict[str, Any]:
    """``probe_device`` in a fresh interpreter; raises UserError with the child's reason."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, target, size, threads), daemon=True)
    proc.start()
    child.close()
    try:
        msg = parent.recv()
    except EOFError:
        proc.join(5)
        msg = ("error", f"the probe process died (exit code {proc.exitcode})")
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    if msg[0] != "ok":
        raise UserError(f"probe of {target} failed: {msg[1]}")
    return msg[1]

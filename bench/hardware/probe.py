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
``time_block`` (``xpubench.hardware.probe_sweeps``): the same warm-up, calibrated rounds, stopping rule and device-correct
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
from typing import Any, Iterable

from xpubench.errors import UserError
from xpubench.hardware.probe_plan import plan_for
from xpubench.hardware.probe_sweeps import Log, one_line, probe_bandwidths, probe_vector, sweep_matmul

# The probe's kernels use every core, so a competitor taking a tenth of the CPUs already
# stalls them (a parallel kernel waits for its slowest thread): stricter than a run's 25%.
PROBE_BUSY_SHARE = 0.10


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
    from xpubench.results.writer import utc_now

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
            unsupported[p] = f"failed: {one_line(exc)}"
            log(f"  matmul {p:5s} failed: {one_line(exc)}")
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
        conn.send(("error", one_line(e)))
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

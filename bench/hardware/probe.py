"""``xpubench probe``: measure this machine's ceilings, per device and precision.

For each framework:device (``torch:cpu``, ``jax:cpu``, ``torch:cuda``, ``jax:tpu``...):

- peak matmul FLOP/s per precision: a sweep of square products, the best median
  over the sweep ("best sustained");
- device memory bandwidth: a large copy (read + write counted) and a STREAM triad
  ``a = b + s*c`` (2 reads + 1 write);
- on accelerators, host->device and device->host bandwidth.

Every number comes from ``xpubench.measure.step.measure_step``, the suites' one
measuring path: the same warm-up, calibrated rounds, stopping rule and
device-correct timing as the suites. Each framework:device is probed in its own
fresh process (frameworks never share one). Results are cached in ``<out>/<machine_id>/ceilings.json``
(``xpubench.hardware.ceilings``) and reused until ``--refresh``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from xpubench.errors import UserError
from xpubench.spec.registry import SIZES
from xpubench.measure import step as measuring
from xpubench.measure.timing import TimingConfig

MiB = 1 << 20
GiB = 1 << 30
Log = Callable[[str], None]


@dataclass(frozen=True)
class ProbePlan:
    matmul_n: tuple[int, ...]  # square sizes of the matmul sweep, smallest first
    array_bytes: int  # each copy/triad array (counted bytes are a multiple of it)
    transfer_bytes: int  # host<->device copies
    max_call_s: float  # skip a sweep size whose one call would take longer than this
    timing: dict[str, float]  # TimingConfig overrides

    def timing_config(self) -> TimingConfig:
        return TimingConfig(**self.timing)


# smoke: seconds in total (tests). default: about a minute per framework on a laptop
# CPU, and meaningful on a GPU (products large enough to fill it, copies far beyond
# its L2). large: longer sweeps, bigger arrays.
_TIMING = {
    "smoke": dict(time_budget_s=0.1, min_rounds=3, warmup_min_s=0.005, warmup_max_s=0.05,
                  min_round_s=0.002, target_rel_ci=0.05),
    "default": dict(time_budget_s=1.0, min_rounds=5, warmup_min_s=0.1, warmup_max_s=1.0,
                    target_rel_ci=0.02),
    "large": dict(time_budget_s=2.0, min_rounds=10, warmup_min_s=0.2, warmup_max_s=2.0,
                  target_rel_ci=0.01),
}
_PLANS_CPU = {
    "smoke": ((64, 128), 16 * MiB, 16 * MiB, 0.05),
    "default": ((512, 1024, 2048), 256 * MiB, 256 * MiB, 1.0),
    "large": ((1024, 2048, 4096), 1 * GiB, 1 * GiB, 4.0),
}
_PLANS_ACCEL = {
    # smoke arrays still exceed a GPU's L2 (50 MiB on an H100): a copy must not run from cache
    "smoke": ((256, 512), 256 * MiB, 64 * MiB, 0.05),
    "default": ((2048, 4096, 8192), 1 * GiB, 1 * GiB, 1.0),
    "large": ((4096, 8192, 16384), 4 * GiB, 2 * GiB, 4.0),
}
SLOW_FRACTION = 0.10  # a reduced precision below 10% of fp32's peak is flagged as a slow path


def plan_for(size: str, device: str, memory_bytes: int | None = None) -> ProbePlan:
    """The sweep for a size on a device kind; arrays shrink to fit 1/8 of ``memory_bytes``."""
    if size not in SIZES:
        raise UserError(f"unknown probe size {size!r}: accepted {', '.join(SIZES)}")
    n, arr, xfer, max_call = (_PLANS_CPU if device == "cpu" else _PLANS_ACCEL)[size]
    if memory_bytes:
        cap = max(MiB, (int(memory_bytes) // 8) // MiB * MiB)  # triad holds 3 arrays
        arr, xfer = min(arr, cap), min(xfer, cap)
    return ProbePlan(n, arr, xfer, max_call, dict(_TIMING[size]))


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
    """Time ``step`` through the suites' measuring path; ``amount_per_call`` FLOPs or bytes -> per second."""
    from xpubench.options import RunOptions

    m = measuring.measure_step(backend, step, RunOptions(telemetry=False, accuracy=False), timing=cfg)
    res = m.timing
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


def _one_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


def _is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "resource_exhausted" in text


def sweep_matmul(backend: Any, precision: str, plan: ProbePlan, log: Log,
                 fp32_by_n: dict[int, float] | None = None) -> dict[str, Any]:
    """Matmul sweep for one precision: {"best": FLOP/s, "best_n", "by_n", "note", ...}."""
    from xpubench.backends.base import ProbeUnsupported

    cfg = plan.timing_config()
    by_n: dict[int, float] = {}
    detail: dict[str, Any] = {}
    notes: list[str] = []
    for n in plan.matmul_n:
        if by_n:
            # at the best rate seen so far: one noisy size must not end the sweep
            est = 2.0 * n ** 3 / max(by_n.values())
            if est > plan.max_call_s:
                notes.append(f"N={n} skipped: one call would take ~{est:.2g} s")
                break
        try:
            step = backend.probe_matmul(precision, n)
            r = measure_rate(backend, step, 2.0 * n ** 3, cfg)
        except ProbeUnsupported:
            raise
        except Exception as exc:
            if _is_oom(exc) and by_n:  # the smaller sizes stand
                notes.append(f"N={n} skipped: out of memory")
                break
            raise
        if r["per_s"] is None:
            raise RuntimeError(f"matmul N={n} timed at zero seconds")
        detail.setdefault("op", step.notes.get("op"))
        detail.setdefault("dtype", step.notes.get("dtype"))
        del step
        backend.release()
        by_n[n] = r["per_s"]
        detail.setdefault("runs", {})[str(n)] = {k: r[k] for k in ("median_s", "rel_ci", "rounds", "stop_reason")}
        log(f"  matmul {precision:5s} N={n:<6d} {r['per_s'] / 1e9:10.1f} GFLOP/s")
    best_n = max(by_n, key=lambda k: by_n[k])
    fp32_best = max((fp32_by_n or {}).values(), default=None)
    if precision != "fp32" and fp32_best and by_n[best_n] < SLOW_FRACTION * fp32_best:
        # e.g. fp16 on a CPU without native fp16 arithmetic: recorded, and said so
        notes.append(f"slow path: {by_n[best_n] / fp32_best:.1%} of fp32")
    return {"best": by_n[best_n], "best_n": best_n, "by_n": {str(k): v for k, v in by_n.items()},
            "note": "; ".join(notes) or None, **detail}


# Bytes each bandwidth kernel moves per call, as a multiple of its array's size.
BYTES_FACTOR = {"copy": 2, "triad": 3, "h2d": 1, "d2h": 1}


def array_bytes(nbytes: int) -> int:
    """The array size the kernels really allocate for a request of ``nbytes`` (fp32 elements)."""
    from xpubench.backends.base import probe_elements

    return probe_elements(nbytes) * 4


def probe_bandwidths(backend: Any, plan: ProbePlan, log: Log) -> dict[str, Any]:
    """copy / triad (device) and h2d / d2h (accelerators): bytes per second, with details."""
    from xpubench.backends.base import ProbeUnsupported

    cfg = plan.timing_config()
    out: dict[str, Any] = {}
    details: dict[str, Any] = {}
    kinds = [("copy", plan.array_bytes), ("triad", plan.array_bytes),
             ("h2d", plan.transfer_bytes), ("d2h", plan.transfer_bytes)]
    for kind, nbytes in kinds:
        try:
            if kind == "copy":
                step = backend.probe_copy(nbytes)
            elif kind == "triad":
                step = backend.probe_triad(nbytes)
            else:
                step = backend.probe_transfer(nbytes, kind)
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
                         **{k: r[k] for k in ("median_s", "rel_ci", "rounds", "stop_reason")}}
        del step
        backend.release()
        log(f"  {kind:5s} {arr / MiB:7.0f} MiB arrays {r['per_s'] / 1e9:10.2f} GB/s")
    out["bandwidth"] = details
    return out


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
    from xpubench.results.writer import utc_now

    log = log or (lambda s: None)
    key = parse_target(target)
    spec = BackendSpec.parse(f"{key}:fp32")
    base = make_backend(spec)
    avail = base.availability()
    if not avail.ok:
        raise UserError(f"cannot probe {key}: {avail.reason}")
    load_before = _load_avg()
    started = time.perf_counter()
    info = base.setup(threads)
    device_name = info.get("device_name")
    if base.device_kind == "cpu":
        from xpubench.hardware.fingerprint import cpu_info

        device_name = cpu_info().get("model") or device_name
    plan = plan_for(size, base.device_kind, _device_memory(base))
    log(f"{key}: {device_name or spec.device}, {info.get('threads')} threads, size {size}")

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
        b = make_backend(spec.with_precision(p))
        a = b.availability()
        if not a.ok:
            unsupported[p] = a.reason
            continue
        try:
            b.setup(threads)
            b.activate()  # e.g. TF32 on for tf32, off (true fp32) for fp32
            fp32_ref = {int(k): v for k, v in detail.get("fp32", {}).get("by_n", {}).items()}
            res = sweep_matmul(b, p, plan, log, fp32_ref)
        except ProbeUnsupported as e:
            unsupported[p] = str(e)
            log(f"  matmul {p:5s} unsupported: {e}")
            continue
        except Exception as exc:
            unsupported[p] = f"failed: {_one_line(exc)}"
            log(f"  matmul {p:5s} failed: {_one_line(exc)}")
            continue
        finally:
            try:
                b.release()
            except Exception:
                pass
        peaks[p] = res["best"]
        detail[p] = {k: v for k, v in res.items() if k != "best"}
    base.activate()  # fp32 switches for the bandwidth kernels
    bw = probe_bandwidths(base, plan, log)
    return {
        "framework": spec.framework,
        "device": spec.device,
        "device_index": spec.device_index,
        "device_name": device_name,
        "size": size,
        "threads": info.get("threads"),
        "measured_at": utc_now(),
        "matmul_flops_per_s": peaks,
        "matmul": detail,
        "unsupported": unsupported,
        **bw,
        "plan": {"matmul_n": list(plan.matmul_n), "array_bytes": plan.array_bytes,
                 "transfer_bytes": plan.transfer_bytes, "timing": plan.timing},
        "setup": {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool)) or v is None},
        "load_avg_before": load_before,
        "load_avg_after": _load_avg(),
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


# --------------------------------------------------------------------------- output
def _rate(x: float | None, unit: str) -> str:
    from xpubench.fmt import fmt_rate

    return fmt_rate(x, unit) if x is not None else "-"


def ceilings_rows(doc: dict) -> list[tuple[str, str, str, str, str]]:
    """(device, ceiling, precision, value, detail) rows for the table (plain text)."""
    rows = []
    for key, e in (doc.get("ceilings") or {}).items():
        threads = e.get("threads")
        for p, v in (e.get("matmul_flops_per_s") or {}).items():
            d = (e.get("matmul") or {}).get(p) or {}
            extra = f"best N={d.get('best_n')}" + (f", {threads} threads" if threads else "")
            if d.get("note"):
                extra += f"; {d['note']}"
            rows.append((key, "matmul", p, _rate(v, "FLOP"), extra))
        for p, why in (e.get("unsupported") or {}).items():
            rows.append((key, "matmul", p, "n/a", why))
        for kind, label in (("copy", "copy (r+w)"), ("triad", "triad (2r+1w)"),
                            ("h2d", "host->device"), ("d2h", "device->host")):
            v = e.get(f"{kind}_bytes_per_s")
            d = (e.get("bandwidth") or {}).get(kind) or {}
            if v is None and kind in ("h2d", "d2h") and e.get("device") == "cpu":
                continue
            extra = (f"{d['array_bytes'] / MiB:.0f} MiB arrays" if d.get("array_bytes") else d.get("reason", ""))
            if v is not None and threads and e.get("device") == "cpu":
                extra += f", {threads} threads"
            rows.append((key, label, "", _rate(v, "B") if v is not None else "n/a", extra))
    return rows


def ceilings_table(doc: dict, title: str):
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col, just in (("device", "left"), ("ceiling", "left"), ("precision", "left"),
                      ("measured", "right"), ("detail", "left")):
        t.add_column(col, justify=just)
    for row in ceilings_rows(doc):
        t.add_row(*(escape(c) for c in row))
    return t


# --------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", "-b", action="append", metavar="FRAMEWORK:DEVICE",
                        help="device to probe, e.g. torch:cpu, torch:cuda1, jax:tpu (repeatable; "
                             "default: every device available here). Precisions are swept inside.")
    parser.add_argument("--size", default="default", choices=SIZES,
                        help="smoke (seconds) | default (about a minute per framework on a CPU) | large")
    parser.add_argument("--refresh", action="store_true",
                        help="measure again even when ceilings for this machine are cached")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for the frameworks")
    parser.add_argument("--out", default="results", metavar="DIR",
                        help="results root; ceilings go to DIR/<machine_id>/ceilings.json (default: results)")
    parser.add_argument("--machine-id", metavar="ID", help="name of this machine (default: from hardware)")
    from xpubench.hardware.collectives import add_arguments as add_collective_arguments

    add_collective_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from xpubench import __version__
    from xpubench.hardware import ceilings as cl
    from xpubench.cli.console import stdout_console
    from xpubench.hardware.fingerprint import fingerprint
    from rich.markup import escape

    out = stdout_console()
    try:
        machine = fingerprint(args.machine_id)
    except ValueError as e:
        raise UserError(str(e)) from None
    if getattr(args, "collectives", False):  # bus bandwidth across ranks, not the ceilings
        from xpubench.hardware.collectives import run_collectives

        return run_collectives(args, machine["machine_id"])
    targets = [parse_target(t) for t in args.backend] if args.backend else default_targets()
    targets = list(dict.fromkeys(targets))
    if not targets:
        raise UserError("nothing to probe: install torch or jax (see README)")
    mid = machine["machine_id"]
    path = cl.ceilings_path(args.out, mid)
    try:
        cached = cl.load_ceilings(args.out, mid)
    except cl.CeilingsFileError:
        if not args.refresh:
            raise
        cached = None
    have = (cached or {}).get("ceilings") or {}
    todo = targets if args.refresh else [t for t in targets if t not in have]
    if not todo:
        out.print(f"cached ceilings for {mid} ({path}); `xpubench probe --refresh` measures again")
        shown = {**cached, "ceilings": {k: v for k, v in have.items() if k in targets}}
        out.print(ceilings_table(shown, f"ceilings of {mid}, measured {cached.get('measured_at')}"))
        sizes = {e.get("size") for e in shown["ceilings"].values()}
        if sizes - {args.size}:
            out.print(f"note: cached at size {', '.join(sorted(map(str, sizes)))}; "
                      f"--refresh --size {args.size} to re-measure")
        return 0
    entries: dict[str, dict] = {}
    failed: list[str] = []
    for t in todo:
        out.print(f"probing {t} (size {args.size}) ...")
        try:
            entries[t] = probe_in_subprocess(t, args.size, args.threads)
        except UserError as e:
            failed.append(t)
            out.print(f"[red]{escape(str(e))}[/]")
    if entries:
        doc = cl.merge(cached, machine, entries, __version__)
        cl.save_ceilings(args.out, doc)
        shown = {**doc, "ceilings": {k: v for k, v in doc["ceilings"].items() if k in targets}}
        out.print(ceilings_table(shown, f"ceilings of {mid}"))
        busy = [k for k, e in entries.items()
                if e.get("load_avg_before") and e["load_avg_before"][0] > (os.cpu_count() or 1)]
        if busy:
            out.print(f"warning: the machine was busy while probing {', '.join(busy)} "
                      f"(load average above the core count): ceilings may be low")
        out.print(f"ceilings: {path}")
    return 1 if failed else 0


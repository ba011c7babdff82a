"""Distributed suite: data-parallel training steps of the training suite's models over W ranks or devices.

Opt-in (``-s distributed``): each case runs at every ``--world-size`` in processes the
launcher (``xpubench.run.distributed``) starts through torch's elastic launcher. The
models, optimizers and seeded batches are the training suite's (``torch_recipe`` /
``jax_recipe``): the MNIST CNN (small case), ResNet-18 and the GPT decoder.

Parameters every case carries (``xpubench.run.distributed.expand_world_sizes`` adds
the first two from the run's options):

- ``world_size``: ranks (torch: one process per device; JAX ``launch=processes``: one
  process per device through ``jax.distributed.initialize``; JAX ``launch=devices``:
  one process over this host's W devices, simulated on a CPU with
  ``--xla_force_host_platform_device_count`` and labelled so).
- ``scaling``: ``weak`` (``batch`` per device, the global batch grows with W) or
  ``strong`` (``batch`` is the global batch, split over the W devices).
- ``launch``: ``processes`` or ``devices`` (JAX only; torch DDP is one process per device).

The global batch is drawn once from the case's seed and each rank takes its rows, so
W ranks see exactly the batch one rank sees at W=1 in strong scaling (the parity test
compares the gradients). Units are the global batch's (samples or tokens): the
record's throughput is global; ``per_device_throughput_per_s`` is it over W.

torch: ``DistributedDataParallel`` (``broadcast_buffers=False``: BatchNorm statistics
stay per rank, so the step without the gradient all-reduce exchanges nothing);
process group ``gloo`` on CPU, ``nccl`` on CUDA, with a collective timeout. The step
without communication is the same step under ``no_sync()``. JAX: ``jax.jit`` over a
``Mesh`` with the batch sharded (``NamedSharding(mesh, P("data"))``) and everything else
replicated; XLA inserts the all-reduce. The step without communication is the same
function compiled for one device on that device's rows.
"""

from __future__ import annotations

import contextlib
import copy
import os
from datetime import timedelta
from typing import Any, Mapping

from xpubench.spec.registry import Work, workload
from xpubench.suites import training as tr

MODE = "dp_train_step"
SCALINGS = ("weak", "strong")
LAUNCHES = ("processes", "devices")
# The launcher names the JAX coordinator (host:port) here; jax.distributed.initialize reads it.
JAX_COORDINATOR_ENV = "XPUBENCH_JAX_COORDINATOR"
SIMULATED_DEVICES_ENV = "XPUBENCH_SIMULATED_DEVICES"  # set by the launcher with the XLA flag


def global_batch(p: Mapping[str, Any]) -> int:
    """The batch all ranks together train on in one step."""
    return p["batch"] * p.get("world_size", 1) if p.get("scaling", "weak") == "weak" else p["batch"]


def per_device_batch(p: Mapping[str, Any]) -> int:
    w = p.get("world_size", 1)
    gb = global_batch(p)
    if gb % w:
        tr.skip_case(f"strong scaling: global batch {gb} does not split over {w} devices")
    return gb // w


def _work(model: str):
    """Work of one global step: the training suite's work at the global batch."""
    train_work = getattr(tr, model).work

    def work(p: Mapping[str, Any], mode: str) -> Work:
        return train_work({**p, "batch": global_batch(p)}, "train_step")
    return work


_VARIANTS = ({"launch": "processes"}, {"launch": "devices"})


def _declare(model: str, unit: str, sizes: Mapping[str, Mapping[str, Any]], description: str):
    return workload(
        suite="distributed", name=model, modes=(MODE,), unit=unit, sizes=sizes, work=_work(model),
        description=description, precisions=("fp32", "tf32", "bf16"), variants=_VARIANTS, opt_in=True)


mnist_cnn = _declare("mnist_cnn", "samples", tr.mnist_cnn.sizes,
                     "data-parallel MNIST CNN step (the small case); batch is per device in weak scaling")
resnet18 = _declare("resnet18", "samples", tr.resnet18.sizes,
                    "data-parallel ResNet-18 step (BatchNorm statistics per rank)")
gpt = _declare("gpt", "tokens", tr.gpt.sizes, "data-parallel GPT decoder step")


def launch_skip_reason(framework: str, params: Mapping[str, Any]) -> str | None:
    """Why a framework does not run this launch (asked by the launcher before any process starts)."""
    if framework == "torch" and params.get("launch") != "processes":
        return TORCH_ONE_PROCESS_PER_DEVICE
    return None


TORCH_ONE_PROCESS_PER_DEVICE = "torch DDP runs one process per device (launch=processes)"


# ------------------------------------------------------------------ per-process set-up
def collective_timeout_s(case_timeout_s: float) -> float:
    """A dead or hung peer fails the collectives well before the case's own deadline."""
    return max(10.0, min(300.0, case_timeout_s / 3))


def prepare_process(framework: str, device: str, params: Mapping[str, Any], case_timeout_s: float) -> int | None:
    """Join the ranks before the framework's device is set up (JAX must initialize first).

    Returns the index of this process's device among the framework's devices of that
    kind, where it is not the spec's (None: keep the spec's)."""
    timeout = collective_timeout_s(case_timeout_s)
    if params.get("launch") != "processes":
        return None
    if framework == "torch":
        import torch.distributed as dist

        if not dist.is_initialized():  # env:// from the launcher (RANK, WORLD_SIZE, MASTER_ADDR/PORT)
            dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=timedelta(seconds=timeout))
        return int(os.environ.get("LOCAL_RANK", "0")) if device == "cuda" else None
    if framework == "jax":
        import jax

        if device == "cpu":
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(os.environ[JAX_COORDINATOR_ENV], num_processes=int(os.environ["WORLD_SIZE"]),
                                   process_id=int(os.environ["RANK"]), initialization_timeout=int(timeout))
        platform = {"gpu": "gpu", "tpu": "tpu"}.get(device, "cpu")
        return jax.devices(platform).index(jax.local_devices(backend=platform)[0])
    return None


def finish_process(framework: str) -> None:
    if framework == "torch":
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


# ------------------------------------------------------------------ torch
class TorchRanks:
    """The measuring loop's collectives on a gloo group beside the step's own (nccl on CUDA)."""

    def __init__(self, timeout_s: float) -> None:
        import torch
        import torch.distributed as dist

        self._torch, self._dist = torch, dist
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        # its own timeout: a new group would otherwise wait torch's default 30 minutes on a hung peer
        self._group = dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout_s))

    def barrier(self) -> None:
        self._dist.barrier(group=self._group)

    def max(self, value: float) -> float:
        t = self._torch.tensor([value], dtype=self._torch.float64)
        self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX, group=self._group)
        return float(t.item())

    def gather(self, obj: Any) -> list[Any] | None:
        out = [None] * self.world_size if self.rank == 0 else None
        self._dist.gather_object(obj, out, dst=0, group=self._group)
        return out


def torch_dp_step(ctx, p: Mapping[str, Any], model_name: str):
    """A DDP training step on this rank's rows of the global batch."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    from xpubench.seeding import seed_for
    from xpubench.measure.ranks import DistributedStep

    if p.get("launch") != "processes":
        tr.skip_case(TORCH_ONE_PROCESS_PER_DEVICE)
    reason = tr.torch_cpu_fp16_skip(ctx)
    if reason:
        tr.skip_case(reason)
    ranks = TorchRanks(collective_timeout_s(ctx.options.case_timeout_s if ctx.options else 600.0))
    w, r = ranks.world_size, ranks.rank
    if w != p["world_size"]:
        raise RuntimeError(f"launched {w} ranks for world size {p['world_size']}")
    per = per_device_batch(p)
    recipe = tr.torch_recipe(model_name, ctx, {**p, "batch": global_batch(p)})
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed_for("init", ctx.seed))  # the same weights on every rank
        model = ctx.module(recipe.model())
    model.train()
    initial = copy.deepcopy(model.state_dict())
    ddp = DDP(model, device_ids=[ctx.device.index] if devices else None, broadcast_buffers=False)
    x, y = recipe.batch()
    x, y = x[r * per:(r + 1) * per], y[r * per:(r + 1) * per]
    opt = recipe.optimizer(model)
    named = dict(model.named_parameters())
    state: dict[str, Any] = {"loss": None}

    def one(sync: contextlib.AbstractContextManager, step: bool = True):
        opt.zero_grad(set_to_none=True)
        with sync:  # no_sync() must hold over forward and backward
            with ctx.autocast():
                logits = recipe.forward(ddp, x)
            loss = F.cross_entropy(logits.float().flatten(0, -2), y.flatten())
            loss.backward()
        if step:
            opt.step()
        state["loss"] = loss
        return loss

    def check() -> dict:
        """Gradients of one step from the initial weights, dropout off (parity with W=1)."""
        model.load_state_dict(initial)
        model.eval()
        try:
            loss = one(contextlib.nullcontext(), step=False).detach().clone()
        finally:
            model.train()
        dist.all_reduce(loss)  # the global batch's mean loss (equal rows per rank)
        return {"loss": ctx.numpy(loss / w), "grad_first": ctx.numpy(named[recipe.probes[0]].grad),
                "grad_last": ctx.numpy(named[recipe.probes[1]].grad)}

    def finite() -> bool:
        return state["loss"] is None or bool(torch.isfinite(state["loss"]))

    notes = {**recipe.notes, "implementation": "torch.nn.parallel.DistributedDataParallel",
             "process_group": dist.get_backend(), "per_device_batch": per, "global_batch": global_batch(p),
             "broadcast_buffers": False}
    return DistributedStep(run=lambda: one(contextlib.nullcontext()), check=check, finite=finite, notes=notes,
                           ranks=ranks, run_local=lambda: one(ddp.no_sync()),
                           local_method="the same step under DDP no_sync(): no gradient all-reduce")


for _w in (mnist_cnn, resnet18, gpt):
    _w.builder("torch")(lambda ctx, p, mode, _n=_w.name: torch_dp_step(ctx, p, _n))
    _w.builder("jax")(lambda ctx, p, mode, _n=_w.name: _jax_dp_step(ctx, p, _n))


def _jax_dp_step(ctx, p: Mapping[str, Any], model_name: str):
    from xpubench.suites.distributed_jax import jax_dp_step

    return jax_dp_step(ctx, p, model_name)


# ------------------------------------------------------------------ probe: collectives
COLLECTIVE_WARMUP, COLLECTIVE_CALLS = 3, 10


def collective_seconds(device: str, sizes: list[int], ops: list[str]) -> dict[str, Any] | None:
    """Seconds per call of each op at each message size (bytes, fp32), the slowest rank's;
    rank 0 gets them (``xpubench probe --collectives``; launched by torch.distributed.run)."""
    import time

    import torch
    import torch.distributed as dist

    dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=timedelta(seconds=120))
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if device == "cuda" else torch.device("cpu")
        sync = (lambda: torch.cuda.synchronize(dev)) if device == "cuda" else (lambda: None)
        seconds: dict[str, list[float]] = {}
        for op in ops:
            seconds[op] = []
            for nbytes in sizes:
                # all_gather: nbytes is the gathered (output) size, as nccl-tests count it
                n = max(1, nbytes // 4 // (world if op == "all_gather" else 1))
                x = torch.ones(n, device=dev)
                outs = [torch.empty_like(x) for _ in range(world)]
                call = (lambda: dist.all_reduce(x)) if op == "all_reduce" else (lambda: dist.all_gather(outs, x))
                for _ in range(COLLECTIVE_WARMUP):
                    call()
                sync()
                dist.barrier()
                t0 = time.perf_counter()
                for _ in range(COLLECTIVE_CALLS):
                    call()
                sync()
                t = torch.tensor([(time.perf_counter() - t0) / COLLECTIVE_CALLS], dtype=torch.float64, device=dev)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                seconds[op].append(float(t.item()))
        return {"seconds": seconds, "process_group": dist.get_backend()} if rank == 0 else None
    finally:
        dist.destroy_process_group()

"""The distributed suite's torch step (DDP or FSDP2's fully_shard over gloo/nccl) and the probe's collective timings."""

from __future__ import annotations

import contextlib
import copy
import os
import time
from datetime import timedelta
from typing import Any, Mapping

from xpubench.suites import training as tr
from xpubench.suites.distributed import (TORCH_ONE_PROCESS_PER_DEVICE, collective_timeout_s, global_batch,
                                         per_device_batch)

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


class DataParallel:
    """How the model is spread over the ranks: the module to call, the comm-free context,
    the initial weights back, a gradient as a whole tensor."""

    implementation = "torch.nn.parallel.DistributedDataParallel"
    local_method = "the same step under DDP no_sync(): no gradient all-reduce"

    def __init__(self, model, ctx) -> None:
        from torch.nn.parallel import DistributedDataParallel as DDP

        self.model = model
        self.initial = copy.deepcopy(model.state_dict())
        # broadcast_buffers=False: BatchNorm statistics stay per rank, so no_sync() exchanges nothing
        self.module = DDP(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                          broadcast_buffers=False)

    def no_exchange(self) -> contextlib.AbstractContextManager | None:
        return self.module.no_sync()

    def restore(self) -> None:
        self.model.load_state_dict(self.initial)

    @staticmethod
    def whole(grad):
        return grad


class FullyShard(DataParallel):
    """FSDP2: every parameter-holding child and the root sharded over the ranks."""

    implementation = "torch.distributed.fsdp.fully_shard (FSDP2): each block of a ModuleList, then the root"
    # No comm-free twin: a sharded step must all-gather its parameters, and a backward with
    # gradient sync off keeps unsharded gradients that the next synced step would add in.
    local_method = ""

    def __init__(self, model, ctx) -> None:
        import torch
        from torch.distributed.fsdp import fully_shard

        self.model = model
        self.initial = copy.deepcopy(model.state_dict())
        # Blocks (transformer layers) get their own groups, as FSDP2 users wrap them; the root
        # keeps the rest, tied weights included (GPT's head shares the embedding).
        for blocks in (m for m in model.modules() if isinstance(m, torch.nn.ModuleList)):
            for block in blocks:
                fully_shard(block)
        self.module = fully_shard(model)

    def restore(self) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(self.module, self.initial, options=StateDictOptions(full_state_dict=True))

    @staticmethod
    def whole(grad):
        return grad.full_tensor() if hasattr(grad, "full_tensor") else grad


IMPLEMENTATIONS = {"ddp": DataParallel, "fully_shard": FullyShard}


def torch_dp_step(ctx, p: Mapping[str, Any], model_name: str):
    """A DDP (or FSDP2) training step on this rank's rows of the global batch."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from xpubench.measure.ranks import DistributedStep
    from xpubench.seeding import seed_for

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
    dp = IMPLEMENTATIONS[p.get("impl", "ddp")](model, ctx)
    x, y = recipe.batch()
    x, y = x[r * per:(r + 1) * per], y[r * per:(r + 1) * per]
    opt = recipe.optimizer(model)  # after sharding: FSDP2 replaces the parameters
    named = dict(model.named_parameters())
    state: dict[str, Any] = {"loss": None}

    def one(sync: contextlib.AbstractContextManager, step: bool = True):
        opt.zero_grad(set_to_none=True)
        with sync:  # no_sync() must hold over forward and backward
            with ctx.autocast():
                logits = recipe.forward(dp.module, x)
            loss = F.cross_entropy(logits.float().flatten(0, -2), y.flatten())
            loss.backward()
        if step:
            opt.step()
        state["loss"] = loss
        return loss

    def check() -> dict:
        """Gradients of one step from the initial weights, dropout off (parity with W=1)."""
        dp.restore()
        model.eval()
        try:
            loss = one(contextlib.nullcontext(), step=False).detach().clone()
        finally:
            model.train()
        dist.all_reduce(loss)  # the global batch's mean loss (equal rows per rank)
        grads = {k: dp.whole(named[name].grad) for k, name in zip(("grad_first", "grad_last"), recipe.probes)}
        return {"loss": ctx.numpy(loss / w), **{k: ctx.numpy(g) for k, g in grads.items()}}

    def finite() -> bool:
        return state["loss"] is None or bool(torch.isfinite(state["loss"]))

    notes = {**recipe.notes, "implementation": dp.implementation, "process_group": dist.get_backend(),
             "per_device_batch": per, "global_batch": global_batch(p), "broadcast_buffers": False}
    twin = (lambda: one(dp.no_exchange())) if dp.local_method else None
    return DistributedStep(run=lambda: one(contextlib.nullcontext()), check=check, finite=finite, notes=notes,
                           ranks=ranks, run_local=twin, local_method=dp.local_method)


# ------------------------------------------------------------------ probe: collectives
COLLECTIVE_WARMUP, COLLECTIVE_CALLS = 3, 10


def collective_seconds(device: str, sizes: list[int], ops: list[str]) -> dict[str, Any] | None:
    """Seconds per call of each op at each message size (bytes, fp32), the slowest rank's;
    rank 0 gets them (``xpubench probe --collectives``; launched by torch.distributed.run)."""
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

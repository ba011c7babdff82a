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
- ``impl``: ``ddp`` (replicated parameters, gradients all-reduced: torch DDP, the JAX mesh
  step) or ``fully_shard`` (torch FSDP2, parameters sharded; torch only).

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

import os
from datetime import timedelta
from typing import Any, Mapping

# the launcher names JAX's coordinator and says when XLA's CPU devices are simulated
from xpubench.run.distributed import JAX_COORDINATOR_ENV, SIMULATED_DEVICES_ENV  # noqa: F401
from xpubench.spec.registry import DATA_PARALLEL_MODE, Work, workload
from xpubench.suites import training as tr

SCALINGS = ("weak", "strong")
LAUNCHES = ("processes", "devices")


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


# torch: DDP and FSDP2 (one process per device); JAX: processes or one process over the devices
_VARIANTS = ({"launch": "processes", "impl": "ddp"}, {"launch": "processes", "impl": "fully_shard"},
             {"launch": "devices", "impl": "ddp"})


def _declare(model: str, unit: str, sizes: Mapping[str, Mapping[str, Any]], description: str):
    return workload(
        suite="distributed", name=model, modes=(DATA_PARALLEL_MODE,), unit=unit, sizes=sizes,
        work=_work(model), description=description, precisions=("fp32", "tf32", "bf16"), variants=_VARIANTS,
        opt_in=True)


mnist_cnn = _declare("mnist_cnn", "samples", tr.mnist_cnn.sizes,
                     "data-parallel MNIST CNN step (the small case); batch is per device in weak scaling")
resnet18 = _declare("resnet18", "samples", tr.resnet18.sizes,
                    "data-parallel ResNet-18 step (BatchNorm statistics per rank)")
gpt = _declare("gpt", "tokens", tr.gpt.sizes, "data-parallel GPT decoder step")


def launch_skip_reason(framework: str, params: Mapping[str, Any]) -> str | None:
    """Why a framework does not run this launch (asked by the launcher before any process starts)."""
    if framework == "torch" and params.get("launch") != "processes":
        return TORCH_ONE_PROCESS_PER_DEVICE
    if framework != "torch" and params.get("impl", "ddp") != "ddp":
        return f"{params['impl']} is torch's FSDP2; the {framework} step replicates the parameters (impl=ddp)"
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
        # one accelerator per process, as torch's ranks (a CPU process has its one CPU device)
        local = None if device == "cpu" else [int(os.environ.get("LOCAL_RANK", "0"))]
        jax.distributed.initialize(os.environ[JAX_COORDINATOR_ENV], num_processes=int(os.environ["WORLD_SIZE"]),
                                   process_id=int(os.environ["RANK"]), local_device_ids=local,
                                   initialization_timeout=int(timeout))
        platform = {"gpu": "gpu", "tpu": "tpu"}.get(device, "cpu")
        return jax.devices(platform).index(jax.local_devices(backend=platform)[0])
    return None


def finish_process(framework: str) -> None:
    if framework == "torch":
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


for _w in (mnist_cnn, resnet18, gpt):
    _w.builder("torch")(lambda ctx, p, mode, _n=_w.name: _torch_dp_step(ctx, p, _n))
    _w.builder("jax")(lambda ctx, p, mode, _n=_w.name: _jax_dp_step(ctx, p, _n))


def _torch_dp_step(ctx, p: Mapping[str, Any], model_name: str):
    from xpubench.suites.distributed_torch import torch_dp_step

    return torch_dp_step(ctx, p, model_name)


def _jax_dp_step(ctx, p: Mapping[str, Any], model_name: str):
    from xpubench.suites.distributed_jax import jax_dp_step

    return jax_dp_step(ctx, p, model_name)


def collective_seconds(device: str, sizes: list[int], ops: list[str]) -> dict[str, Any] | None:
    """``xpubench probe --collectives``' kernel (torch.distributed): see distributed_torch."""
    from xpubench.suites.distributed_torch import collective_seconds as measure

    return measure(device, sizes, ops)

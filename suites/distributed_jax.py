"""The distributed suite's JAX step: one jitted training step over a data-parallel Mesh.

Parameters and optimizer state are replicated (``NamedSharding(mesh, P())``), the batch
is split along the mesh's ``data`` axis; XLA inserts the gradient all-reduce. The mesh
spans every device of every process: this host's devices (``launch=devices``), or one
device per process joined by ``jax.distributed.initialize`` (``launch=processes``).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from xpubench.suites import training as tr
from xpubench.suites.distributed import SIMULATED_DEVICES_ENV, global_batch, per_device_batch


class JaxProcesses:
    """The measuring loop's collectives across JAX processes (multihost_utils)."""

    def __init__(self) -> None:
        import jax
        from jax.experimental import multihost_utils

        self._mh = multihost_utils
        self.rank, self.world_size = jax.process_index(), jax.process_count()
        self._rounds = 0

    def barrier(self) -> None:
        self._rounds += 1
        self._mh.sync_global_devices(f"xpubench-round-{self._rounds}")

    def max(self, value: float) -> float:
        return float(np.max(self._mh.process_allgather(np.array([value], dtype=np.float64))))

    def gather(self, obj: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Numbers only (every rank's figures): gathered as one float vector per rank."""
        keys = sorted(k for k, v in obj.items() if isinstance(v, (int, float)) or v is None)
        vec = np.array([np.nan if obj[k] is None else float(obj[k]) for k in keys], dtype=np.float64)
        rows = np.asarray(self._mh.process_allgather(vec)).reshape(self.world_size, len(keys))
        if self.rank != 0:
            return None
        out = [{k: (None if np.isnan(x) else float(x)) for k, x in zip(keys, row)} for row in rows]
        for d in out:
            d["rank"], d["pid"] = int(d["rank"]), int(d["pid"])
        out[0]["host"] = obj.get("host")
        return out


def jax_dp_step(ctx, p: Mapping[str, Any], model_name: str):
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from xpubench.measure.ranks import DistributedStep, SingleProcess
    from xpubench.suites.models import jax_init

    world = int(p["world_size"])
    devices = jax.devices()
    if len(devices) < world:
        tr.skip_case(f"{len(devices)} {devices[0].platform} device(s) here, world size {world}")
    devices = devices[:world] if jax.process_count() == 1 else devices
    if len(devices) != world:
        raise RuntimeError(f"{len(devices)} devices over {jax.process_count()} processes, world size {world}")
    mesh = Mesh(np.array(devices), ("data",))
    replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    local_device = jax.local_devices()[0]
    per = per_device_batch(p)
    recipe = tr.jax_recipe(model_name, ctx, {**p, "batch": global_batch(p)})
    graphdef, params, stats = jax_init(recipe.model, nnx.Param, nnx.BatchStat, device=local_device)
    tx = recipe.optimizer()
    host = jax.device_get((params, tx.init(params), stats))
    x, y = (np.asarray(a) for a in jax.device_get(recipe.batch()))
    n_local = len(jax.local_devices()) if jax.process_count() == 1 else 1
    rows = slice(jax.process_index() * per * n_local, (jax.process_index() + 1) * per * n_local)

    def place(tree, sharding, local_rows=None):
        """Global arrays from what this process holds (its rows of a split array, all of a replicated one)."""
        return jax.tree.map(lambda a: jax.make_array_from_process_local_data(
            sharding, np.asarray(a)[local_rows] if local_rows is not None else np.asarray(a)), tree)

    def loss_fn(params, stats, inputs, targets, key):
        m = nnx.merge(graphdef, params, stats)
        logits = recipe.forward(m, inputs, key)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets).mean()
        return loss, nnx.state(m, nnx.BatchStat)

    def train_step(params, opt, stats, key, inputs, targets):
        key, sub = jax.random.split(key)
        # the statistics are differentiated too (a dead gradient) so they share the parameters'
        # trace level, as in the training suite
        (loss, new_stats), (grads, _) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
            params, stats, inputs, targets, sub)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, new_stats, key, loss

    key0 = np.asarray(jax.device_get(ctx.key("dropout")))
    state = {"args": place((*host, key0), replicated) + (place(x, split, rows), place(y, split, rows)),
             "loss": None}
    compiled = jax.jit(train_step).lower(*state["args"]).compile()
    # the comm-free twin: the same step on one device and that device's rows
    local_args = jax.device_put((*host, key0, x[rows][:per], y[rows][:per]), local_device)
    local_state = {"args": local_args}
    compiled_local = jax.jit(train_step).lower(*local_args).compile()

    def run():
        a = state["args"]
        params, opt, stats, key, loss = compiled(*a)
        state["args"], state["loss"] = (params, opt, stats, key, a[4], a[5]), loss
        return loss, params

    def run_local():
        a = local_state["args"]
        params, opt, stats, key, loss = compiled_local(*a)
        local_state["args"] = (params, opt, stats, key, a[4], a[5])
        return loss, params

    grad_probe = jax.jit(lambda params, stats, inputs, targets: jax.value_and_grad(
        lambda q: loss_fn(q, stats, inputs, targets, None)[0])(params))

    def check() -> dict:
        """Loss and probe gradients of one step from the initial weights, dropout off."""
        a = place(host, replicated)
        loss, grads = grad_probe(a[0], a[2], place(x, split, rows), place(y, split, rows))
        pure = nnx.to_pure_dict(grads)
        fetch = lambda v: ctx.numpy(v.addressable_data(0))  # noqa: E731 - replicated: any copy
        return {"loss": fetch(loss), "grad_first": fetch(tr._pick(pure, recipe.probes[0])),
                "grad_last": fetch(tr._pick(pure, recipe.probes[1]))}

    def finite() -> bool:
        return state["loss"] is None or bool(jnp.isfinite(state["loss"].addressable_data(0)))

    ranks = JaxProcesses() if jax.process_count() > 1 else SingleProcess()
    simulated = os.environ.get(SIMULATED_DEVICES_ENV) == "1"
    notes = {**recipe.notes, "implementation": "jax.jit over Mesh(('data',)), batch NamedSharding P('data')",
             "processes": jax.process_count(), "per_device_batch": per, "global_batch": global_batch(p)}
    facts = {"devices": [str(d) for d in devices], "simulated_devices": simulated}
    return DistributedStep(run=run, check=check, finite=finite, notes=notes, ranks=ranks, run_local=run_local,
                           local_method="the same step compiled for one device on its own rows: no all-reduce",
                           facts=facts)

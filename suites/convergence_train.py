"""The convergence suite's trainers, torch and JAX side by side: a Task in, a TrainToTarget out.

Both train the same task the same way: the whole data set placed on the device
once, each step gathering its batch by index (sample indices or text-window
starts, from ``Task.train_batches``), softmax cross-entropy in fp32, the optimizer
of the case (Adadelta or Adam, identical hyper-parameters), fp16 with dynamic loss
scaling. An epoch returns after the device finished it (a host read of the mean
loss, and on JAX a wait on the weights). Evaluation runs the model in eval mode
(no dropout) at the backend's precision over fixed-size, masked chunks of the
held-out set. JAX compiles the step and the evaluation ahead of time in the
builder; that time is ``compile_s``.
"""

from __future__ import annotations

from typing import Any, Callable

from xpubench.measure.convergence import EpochResult, TrainToTarget
from xpubench.seeding import seed_for
from xpubench.suites import training
from xpubench.suites.convergence import ADADELTA, LM_ADAM, Task

LOSS_SCALE_INIT = training.LOSS_SCALE_INIT
LOSS_SCALE_GROWTH_INTERVAL = training.LOSS_SCALE_GROWTH_INTERVAL


def _job(ctx, task: Task, *, train_epoch, evaluate, get_state, set_state, check, compile_s, notes) -> TrainToTarget:
    return TrainToTarget(train_epoch=train_epoch, evaluate=evaluate, get_state=get_state, set_state=set_state,
                         metric=task.metric, higher_is_better=task.higher_is_better, target=task.target,
                         steps_per_epoch=task.steps_per_epoch, budget=task.budget,
                         early_stopping=task.early_stopping, compile_s=compile_s,
                         notes={**task.notes, **notes}, check=check)


# ------------------------------------------------------------------------------ torch
def torch_job(ctx, task: Task, make_model: Callable[[], Any], optimizer: str) -> TrainToTarget:
    import torch
    import torch.nn.functional as F

    from xpubench.suites.models import torch_param_count

    reason = training.torch_cpu_fp16_skip(ctx)
    if reason:
        training.skip_case(reason)
    dev = ctx.device
    torch.manual_seed(seed_for("dropout", task.seed))  # torch's dropout draws from the global generator
    model = ctx.module(make_model())
    model.load_state_dict({k: torch.from_numpy(v) for k, v in task.init.items()})
    if optimizer == "adadelta":
        opt = torch.optim.Adadelta(model.parameters(), **ADADELTA)
    else:
        opt = torch.optim.Adam(model.parameters(), **LM_ADAM)
    fp16 = ctx.precision == "fp16"
    scaler = torch.amp.GradScaler(dev.type, enabled=fp16)
    train = [torch.from_numpy(a).to(dev) for a in task.train]
    val = [torch.from_numpy(a).to(dev) for a in task.val]
    span = torch.arange(task.seq + 1, device=dev)
    eval_sets = [(torch.from_numpy(i).to(dev), torch.from_numpy(m).to(dev)) for i, m in task.eval_batches()]

    def examples(data, idx):
        if task.kind == "classify":
            return data[0][idx], data[1][idx]
        windows = data[0][idx[:, None] + span].long()
        return windows[:, :-1], windows[:, 1:]

    def loss_of(logits, y, reduction: str = "mean"):
        return F.cross_entropy(logits.float().flatten(0, -2), y.flatten(), reduction=reduction)

    def train_epoch(epoch: int) -> EpochResult:
        model.train()
        order = torch.from_numpy(task.train_batches(epoch)).to(dev)
        total = torch.zeros((), device=dev)
        for idx in order:
            x, y = examples(train, idx)
            opt.zero_grad(set_to_none=True)
            with ctx.autocast():
                logits = model(x)
            loss = loss_of(logits, y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += loss.detach()
        return EpochResult(len(order), float(total) / len(order))  # float() waits for the device

    @torch.no_grad()
    def evaluate() -> float:
        model.eval()
        total = torch.zeros((), dtype=torch.float64, device=dev)
        for idx, mask in eval_sets:
            x, y = examples(val, idx)
            with ctx.autocast():
                logits = model(x).float()
            if task.kind == "classify":
                score = (logits.argmax(-1) == y).float()
            else:
                score = loss_of(logits, y, "none").view(y.shape).sum(1)
            total += (score * mask).sum()
        return task.metric_from(float(total))

    @torch.no_grad()
    def check() -> dict[str, float]:
        model.eval()
        x, y = examples(train, torch.from_numpy(task.train_batches(1)[0]).to(dev))
        with ctx.autocast():
            return {"loss": float(loss_of(model(x), y))}

    def get_state():
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    notes = {"parameters": torch_param_count(model), "framework_loop": "eager, one step per call",
             "optimizer": f"torch.optim.{'Adadelta' if optimizer == 'adadelta' else 'Adam'}"}
    if fp16:
        notes["grad_scaler"] = "torch.amp.GradScaler (default: init 2^16, growth interval 2000)"
    return _job(ctx, task, train_epoch=train_epoch, evaluate=evaluate, get_state=get_state,
                set_state=model.load_state_dict, check=check, compile_s=None, notes=notes)


# -------------------------------------------------------------------------------- jax
def jax_apply_scaled(grads, new, old, scale_state):
    """GradScaler's rule in JAX: keep ``new`` only if every gradient is finite; back off or grow."""
    import jax
    import jax.numpy as jnp

    ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    kept = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
    scale = scale_state["scale"]
    good = jnp.where(ok, scale_state["good"] + 1, 0)
    grow = good >= LOSS_SCALE_GROWTH_INTERVAL
    return kept, {"scale": jnp.where(ok, jnp.where(grow, scale * 2.0, scale), scale * 0.5),
                  "good": jnp.where(grow, 0, good)}


def jax_job(ctx, task: Task, make_model: Callable[[Any], Any], to_flax: Callable[[dict], dict],
            optimizer: str) -> TrainToTarget:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx

    from xpubench.suites.models import jax_init

    dev = ctx.device
    graphdef, params = jax_init(lambda: make_model(nnx.Rngs(0)), nnx.Param, device=dev)
    nnx.replace_by_pure_dict(params, jax.tree.map(jnp.asarray, to_flax(task.init)))
    params = jax.device_put(params, dev)
    if optimizer == "adadelta":
        tx = optax.adadelta(ADADELTA["lr"], rho=ADADELTA["rho"], eps=ADADELTA["eps"])
    else:
        tx = optax.adam(LM_ADAM["lr"], b1=LM_ADAM["betas"][0], b2=LM_ADAM["betas"][1], eps=LM_ADAM["eps"])
    fp16 = ctx.precision == "fp16"
    scale0 = {"scale": jnp.float32(LOSS_SCALE_INIT), "good": jnp.int32(0)} if fp16 else {}
    if task.kind == "classify":  # flax convolutions take NHWC
        host_train = (task.train[0].transpose(0, 2, 3, 1), task.train[1].astype(np.int32))
        host_val = (task.val[0].transpose(0, 2, 3, 1), task.val[1].astype(np.int32))
    else:
        host_train, host_val = (task.train[0].astype(np.int32),), (task.val[0].astype(np.int32),)
    train, val = jax.device_put(host_train, dev), jax.device_put(host_val, dev)
    span = jnp.arange(task.seq + 1)

    def examples(data, idx):
        if task.kind == "classify":
            return data[0][idx], data[1][idx]
        windows = data[0][idx[:, None] + span]
        return windows[:, :-1], windows[:, 1:]

    def mean_loss(params, x, y, key):
        logits = nnx.merge(graphdef, params)(x, key)
        return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y).mean()

    def train_step(params, opt, key, data, order, i):
        key, sub = jax.random.split(key)
        x, y = examples(data, order[i])
        scale = opt["scale"]["scale"] if fp16 else 1.0
        loss, grads = jax.value_and_grad(lambda p: mean_loss(p, x, y, sub) * scale)(params)
        loss = loss / scale
        if fp16:
            grads = jax.tree.map(lambda g: g / scale, grads)
        updates, tx_state = tx.update(grads, opt["tx"], params)
        new_params = optax.apply_updates(params, updates)
        new_scale = opt["scale"]
        if fp16:
            (new_params, tx_state), new_scale = jax_apply_scaled(grads, (new_params, tx_state),
                                                                 (params, opt["tx"]), opt["scale"])
        return new_params, {"tx": tx_state, "scale": new_scale}, key, loss

    def eval_step(params, data, idx, mask):
        x, y = examples(data, idx)
        logits = nnx.merge(graphdef, params)(x, None).astype(jnp.float32)
        if task.kind == "classify":
            score = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
        else:
            score = optax.softmax_cross_entropy_with_integer_labels(logits, y).sum(1)
        return jnp.sum(score * mask)

    state: dict[str, Any] = {"params": params, "opt": {"tx": tx.init(params), "scale": scale0},
                             "key": jax.device_put(jax.random.PRNGKey(seed_for("dropout", task.seed)), dev)}
    order0 = jax.device_put(task.train_batches(1).astype(np.int32), dev)
    step_c = ctx.compile(train_step, state["params"], state["opt"], state["key"], train, order0, np.int32(0),
                         donate_argnums=(0, 1, 2))
    eval_sets = [jax.device_put((i.astype(np.int32), m), dev) for i, m in task.eval_batches()]
    eval_c = ctx.compile(eval_step, state["params"], val, *eval_sets[0])

    def train_epoch(epoch: int) -> EpochResult:
        s = state
        order = jax.device_put(task.train_batches(epoch).astype(np.int32), dev)
        losses = []
        for i in range(task.steps_per_epoch):
            s["params"], s["opt"], s["key"], loss = step_c(s["params"], s["opt"], s["key"], train, order, np.int32(i))
            losses.append(loss)
        jax.block_until_ready(s["params"])  # the last update, not only the last loss
        return EpochResult(len(losses), float(jnp.mean(jnp.stack(losses))))

    def evaluate() -> float:
        return task.metric_from(sum(float(eval_c(state["params"], val, idx, mask)) for idx, mask in eval_sets))

    def check() -> dict[str, float]:
        x, y = examples(train, jnp.asarray(task.train_batches(1)[0].astype(np.int32)))
        return {"loss": float(jax.jit(mean_loss)(state["params"], x, y, None))}

    def set_state(host_params) -> None:
        state["params"] = jax.device_put(host_params, dev)

    n_params = sum(int(a.size) for a in jax.tree.leaves(params))
    notes = {"parameters": n_params, "framework_loop": "jitted step (AOT), one step per call",
             "optimizer": f"optax.{optimizer}"}
    if fp16:
        notes["loss_scaling"] = ("dynamic, as torch GradScaler: start 2^16, x0.5 and skip on overflow, "
                                 f"x2 after {LOSS_SCALE_GROWTH_INTERVAL} good steps")
    return _job(ctx, task, train_epoch=train_epoch, evaluate=evaluate,
                get_state=lambda: jax.device_get(state["params"]), set_state=set_state, check=check,
                compile_s=ctx.compile_s, notes=notes)

"""Optimizer steps: torch.optim (for-loop, foreach, fused) and optax under jax.jit.

Mode ``step``: one optimizer update of a parameter list shaped like a real model
(xpubench.suites.param_sets) with fixed random gradients. The step updates parameters and
optimizer state in place (torch) or through donated buffers (JAX), as a training
step does; gradients stay fixed, so a step measures the optimizer alone.
Unit of work: parameters (throughput = parameters updated per second).

Optimizers and their hyper-parameters (``OPTIMIZERS``): SGD; SGD with momentum
0.9 and Nesterov momentum, both with L2 weight decay 5e-4 (the ResNet recipe);
Adam; AdamW (decoupled weight decay 1e-2); Adam with L2 weight decay 1e-4;
Adadelta; RMSprop; Adagrad.

Workloads and why the default run stays short
---------------------------------------------
- ``resnet`` (torch and JAX): every optimizer on ResNet parameters (smoke: the
  ResNet-18 layout at width 2, 11,660 parameters; default: ResNet-18, 11,689,512;
  large: ResNet-50, 25,557,032). torch runs its multi-tensor ``foreach=True``
  implementation, offered for every optimizer on every device (and torch's own
  default on GPUs); JAX runs optax under ``jax.jit``. Same case id on both
  frameworks: this is the torch-vs-JAX row. ``notes.impl`` says which ran.
- ``gpt`` (torch and JAX): AdamW, what transformers train with, on a GPT-2 style
  list (smoke: 7,872 parameters; default: d=384, 6 layers, vocab 16384, 17.1M;
  large: GPT-2 small, 124.4M).
- ``flat`` (torch and JAX): AdamW (28 B/parameter) and SGD momentum (20 B) on one
  flat tensor (4096 / 16M / 256M): the bandwidth ceiling, no per-tensor overhead.
- ``resnet_torch_impls`` (torch only): torch's other implementations on the ResNet
  set, recorded as ``impl``: ``loop`` (``foreach=False``, torch's default on CPU)
  and ``fused`` (``fused=True``) where torch offers it (SGD, Adam, AdamW, Adagrad:
  ``FUSED``; Adadelta and RMSprop have no ``fused`` argument, so no such case
  exists rather than one that fails). JAX has one implementation, the jitted optax
  update (in ``resnet``), so these cases are skipped on JAX backends with the
  reason "has no jax implementation", never recorded as errors. Smoke and large
  run every optimizer x implementation; the default size runs loop and fused for
  SGD momentum, Adam and AdamW only (``DEFAULT_TORCH_IMPL_OPTS``).
The default size is 18 cases (30 measurements on torch:cpu + jax:cpu); with two
seconds of timed rounds per case that is about two minutes on two cores. The
smoke size holds every optimizer with every torch implementation and optax.
(``variants`` maps each size to its list, so the default size takes a subset.)

Inputs: parameters ~ N(0, 0.05^2), gradients ~ N(0, 0.01^2), seeded by name.
torch draws each tensor (``param:<name>``, ``grad:<name>``); JAX draws each set
as one flat vector cut into tensors (see ``jax_draws``). Per-tensor overrides with
those names give both frameworks the same values (the parity tests).

Precision
---------
Only ``fp32``: mixed-precision training keeps fp32 master weights and fp32
optimizer state, so under bf16/fp16 (and tf32, which touches only matmuls) the
optimizer step is the same fp32 computation; those backends skip these cases with
the reason. (Pure-bf16 parameters are a different training recipe, left out.)

Work per parameter (fp32; ideal traffic = each tensor read or written once)
---------------------------------------------------------------------------
| optimizer     | reads              | writes        | bytes | flops |
|---------------|--------------------|---------------|-------|-------|
| sgd           | p, g               | p             | 12    | 2     |
| sgd_momentum  | p, g, buf          | p, buf        | 20    | 6     |
| sgd_nesterov  | p, g, buf          | p, buf        | 20    | 8     |
| adam          | p, g, m, v         | p, m, v       | 28    | 13    |
| adamw         | p, g, m, v         | p, m, v       | 28    | 14    |
| adam_l2       | p, g, m, v         | p, m, v       | 28    | 15    |
| adadelta      | p, g, E[g2], E[dx2]| p, both E     | 28    | 16    |
| rmsprop       | p, g, E[g2]        | p, E[g2]      | 20    | 9     |
| adagrad       | p, g, sum g2       | p, sum g2     | 20    | 7     |
FLOPs count each add, multiply, divide and square root as one. Unfused
implementations (``loop``, and ``foreach`` on CPU) move more than these bytes:
intermediates go through memory; the table is the floor a fused kernel can reach.

torch <-> optax: configured to compute the same update (tests/test_optimizers_suite.py)
---------------------------------------------------------------------------------------
- SGD momentum / Nesterov: torch ``SGD(momentum, nesterov, weight_decay, dampening=0)``
  adds ``wd * p`` to the gradient before the momentum buffer (coupled L2) ->
  ``chain(add_decayed_weights(wd), sgd(lr, momentum, nesterov))``. torch's first
  buffer is the gradient itself; optax's trace starts at zero, so its first value
  is also the gradient. Nesterov: both step along ``g + momentum * buf_new``.
- Adam: optax ``adam(eps_root=0)``: ``m_hat / (sqrt(v_hat) + eps)`` as torch.
- AdamW: torch multiplies ``p`` by ``1 - lr * wd`` before the Adam update; optax
  ``adamw`` adds ``wd * p`` to the update before scaling by ``-lr``: both subtract
  ``lr * wd * p_old``. optax's default wd (1e-4) differs from torch's (1e-2): set.
- Adam with L2: torch ``Adam(weight_decay=wd)`` adds ``wd * p`` to the gradient ->
  ``chain(add_decayed_weights(wd), adam(...))``.
- Adadelta: same formula in both (eps inside both square roots; ``lr`` scales the
  step; torch's default lr is 1.0, optax needs it given).
- RMSprop: torch divides by ``sqrt(v) + eps``; optax by default by ``sqrt(v + eps)``
  -> ``eps_in_sqrt=False``; torch ``alpha`` is optax ``decay`` (defaults 0.99 vs
  0.9: set); ``initial_scale=0`` as torch starts ``v`` at zero.
- Adagrad: the accumulators start at 0.1 in both (torch default 0, optax 0.1: set).
  eps sits outside the square root in torch, inside in optax; with the accumulator
  >= 0.1, eps = 1e-10 changes the step by under 1e-9 relative in either place,
  below fp32 resolution. torch ``lr_decay`` = 0 (optax has none).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from xpubench.spec.registry import VECTOR, Work, workload
from xpubench.suites import param_sets
from xpubench.suites.common import numel

PARAM_SCALE = 0.05  # about a Kaiming-initialised conv weight
GRAD_SCALE = 0.01


@dataclass(frozen=True)
class OptimizerSpec:
    torch_class: str
    hyper: Mapping[str, Any]  # torch keyword arguments; optax is configured from them
    tensors_read: int  # per parameter, fp32 (see the table above)
    tensors_written: int
    flops: int
    fused: bool  # torch.optim offers fused=True

    @property
    def bytes_per_param(self) -> int:
        return 4 * (self.tensors_read + self.tensors_written)


# torch class, hyper-parameters, tensors read and written per parameter, flops per
# parameter, whether torch offers fused=True.
OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec("SGD", dict(lr=1e-2), 2, 1, 2, True),
    "sgd_momentum": OptimizerSpec("SGD", dict(lr=1e-2, momentum=0.9, weight_decay=5e-4), 3, 2, 6, True),
    "sgd_nesterov": OptimizerSpec("SGD", dict(lr=1e-2, momentum=0.9, nesterov=True, weight_decay=5e-4),
                                  3, 2, 8, True),
    "adam": OptimizerSpec("Adam", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8), 4, 3, 13, True),
    "adamw": OptimizerSpec("AdamW", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2),
                           4, 3, 14, True),
    "adam_l2": OptimizerSpec("Adam", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4),
                             4, 3, 15, True),
    "adadelta": OptimizerSpec("Adadelta", dict(lr=1.0, rho=0.9, eps=1e-6), 4, 3, 16, False),
    "rmsprop": OptimizerSpec("RMSprop", dict(lr=1e-2, alpha=0.99, eps=1e-8), 3, 2, 9, False),
    "adagrad": OptimizerSpec("Adagrad", dict(lr=1e-2, initial_accumulator_value=0.1, eps=1e-10),
                             3, 2, 7, True),
}
FUSED = tuple(name for name, o in OPTIMIZERS.items() if o.fused)
TORCH_IMPLS = ("loop", "foreach", "fused")
# The optimizers whose for-loop and fused steps run at the default size (all run at
# smoke and large): the ResNet recipe (SGD momentum) and the transformer one (Adam/AdamW).
DEFAULT_TORCH_IMPL_OPTS = ("sgd_momentum", "adam", "adamw")


# ------------------------------------------------------------------ configuration
def torch_optimizer(torch, opt: str, params: list, impl: str, hyper: Mapping[str, Any] | None = None):
    """``torch.optim.<class>`` for one optimizer and implementation (loop/foreach/fused)."""
    import inspect

    spec = OPTIMIZERS[opt]
    cls = getattr(torch.optim, spec.torch_class)
    kwargs = dict(spec.hyper if hyper is None else hyper)
    if impl == "loop":
        kwargs["foreach"] = False
    elif impl == "foreach":
        kwargs["foreach"] = True
    elif impl == "fused":
        if "fused" not in inspect.signature(cls).parameters:
            raise RuntimeError(f"torch {torch.__version__} offers no fused {spec.torch_class}")
        kwargs["fused"] = True
    else:
        raise ValueError(f"unknown torch implementation {impl!r}; known: {', '.join(TORCH_IMPLS)}")
    return cls(params, **kwargs)


def optax_transform(opt: str, hyper: Mapping[str, Any] | None = None):
    """The optax transformation that computes torch's update (mapping in the docstring)."""
    import optax

    h = dict(OPTIMIZERS[opt].hyper if hyper is None else hyper)
    lr = h["lr"]
    if opt == "sgd":
        return optax.sgd(lr)
    if opt in ("sgd_momentum", "sgd_nesterov"):
        return optax.chain(optax.add_decayed_weights(h.get("weight_decay", 0.0)),
                           optax.sgd(lr, momentum=h["momentum"], nesterov=h.get("nesterov", False)))
    if opt in ("adam", "adamw", "adam_l2"):
        b1, b2 = h["betas"]
        if opt == "adamw":
            return optax.adamw(lr, b1=b1, b2=b2, eps=h["eps"], eps_root=0.0, weight_decay=h["weight_decay"])
        adam = optax.adam(lr, b1=b1, b2=b2, eps=h["eps"], eps_root=0.0)
        if opt == "adam_l2":
            return optax.chain(optax.add_decayed_weights(h["weight_decay"]), adam)
        return adam
    if opt == "adadelta":
        return optax.adadelta(lr, rho=h["rho"], eps=h["eps"], weight_decay=h.get("weight_decay", 0.0))
    if opt == "rmsprop":
        return optax.rmsprop(lr, decay=h["alpha"], eps=h["eps"], initial_scale=0.0, eps_in_sqrt=False)
    if opt == "adagrad":
        return optax.adagrad(lr, initial_accumulator_value=h["initial_accumulator_value"], eps=h["eps"])
    raise ValueError(f"unknown optimizer {opt!r}; known: {', '.join(OPTIMIZERS)}")


# ---------------------------------------------------------------------- workloads
def _work(p: Mapping[str, Any], mode: str) -> Work:
    n = param_sets.count(param_sets.shapes(p))
    o = OPTIMIZERS[p["opt"]]
    # element-wise updates (the vector roof); fp32 whatever the precision (master weights
    # and state), so plain bytes; every tensor written is also read: the working set
    return Work(n, float(o.flops * n), float(o.bytes_per_param * n), flops_kind=VECTOR,
                working_set_bytes=4.0 * o.tensors_read * n)


_COMMON = dict(suite="optimizers", modes=("step",), unit="parameters", work=_work, precisions=("fp32",))
RESNET_SIZES = {"smoke": dict(arch="resnet18", width=2, classes=10),
                "default": dict(arch="resnet18", width=64, classes=1000),
                "large": dict(arch="resnet50", width=64, classes=1000)}

resnet = workload(
    name="resnet", **_COMMON, sizes=RESNET_SIZES,
    description="One optimizer step on ResNet parameters (torch foreach vs optax under jit)",
    variants=tuple({"opt": o} for o in OPTIMIZERS),
)
gpt = workload(
    name="gpt", **_COMMON,
    description="One optimizer step on GPT-2 style parameters (torch foreach vs optax under jit)",
    sizes={"smoke": dict(vocab=64, ctx=16, d=16, layers=2),
           "default": dict(vocab=16384, ctx=512, d=384, layers=6),
           "large": dict(vocab=50257, ctx=1024, d=768, layers=12)},
    variants=({"opt": "adamw"},),
)
flat = workload(
    name="flat", **_COMMON,
    description="One optimizer step on one large flat tensor (torch foreach vs optax under jit)",
    sizes={"smoke": dict(n=4096), "default": dict(n=1 << 24), "large": dict(n=1 << 28)},
    variants=({"opt": "adamw"}, {"opt": "sgd_momentum"}),
)
ALL_TORCH_IMPLS = tuple({"opt": o, "impl": i} for o in OPTIMIZERS for i in ("loop", "fused")
                        if i != "fused" or o in FUSED)
resnet_torch_impls = workload(
    name="resnet_torch_impls", **_COMMON, sizes=RESNET_SIZES,
    description="torch.optim's for-loop and fused implementations on ResNet parameters "
                "(foreach, and optax, are in optimizers/resnet)",
    variants={"default": tuple(v for v in ALL_TORCH_IMPLS if v["opt"] in DEFAULT_TORCH_IMPL_OPTS),
              "*": ALL_TORCH_IMPLS},
)


# -------------------------------------------------------------------------- torch
def _torch_draw(ctx, name: str, shape, scale: float):
    t = ctx.randn(name, shape, scale=scale)
    # An override comes back as a tensor sharing the caller's numpy memory; the step
    # updates parameters in place, so copy rather than write into the caller's array.
    return t.clone() if name in ctx.overrides else t


def torch_optimizer_step(ctx, p: Mapping[str, Any], impl: str):
    from xpubench.backends.base import Step

    torch = ctx.torch
    shapes = param_sets.shapes(p)
    params = [_torch_draw(ctx, f"param:{n}", s, PARAM_SCALE).requires_grad_(True) for n, s in shapes]
    for t, (n, s) in zip(params, shapes):
        t.grad = _torch_draw(ctx, f"grad:{n}", s, GRAD_SCALE)
    holder = {"opt": torch_optimizer(torch, p["opt"], params, impl)}

    def run():
        holder["opt"].step()

    def check() -> dict:
        """One step from the initial parameters and a fresh optimizer state."""
        with torch.no_grad():
            for t, (n, s) in zip(params, shapes):
                t.copy_(_torch_draw(ctx, f"param:{n}", s, PARAM_SCALE))
        holder["opt"] = torch_optimizer(torch, p["opt"], params, impl)
        run()
        return {"params": ctx.numpy(torch.cat([t.detach().reshape(-1) for t in params]))}

    return Step(run=run, check=check, notes={
        "impl": impl, "optimizer": f"torch.optim.{OPTIMIZERS[p['opt']].torch_class}",
        "hyper": _hyper_note(p["opt"]), "tensors": len(shapes)})


def _hyper_note(opt: str) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in OPTIMIZERS[opt].hyper.items()}


@resnet.builder("torch")
@gpt.builder("torch")
@flat.builder("torch")
def torch_foreach(ctx, p: Mapping[str, Any], mode: str):
    return torch_optimizer_step(ctx, p, "foreach")


@resnet_torch_impls.builder("torch")
def torch_impl(ctx, p: Mapping[str, Any], mode: str):
    return torch_optimizer_step(ctx, p, p["impl"])


# ---------------------------------------------------------------------------- JAX
def jax_update_fn(tx) -> Callable:
    """``(params, state, grads) -> (new params, new state)``: one optax step."""
    import optax

    def update(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return update


def jax_draws(ctx, prefix: str, shapes: param_sets.Shapes, scale: float) -> Callable[[], list]:
    """A function returning one normal draw per tensor (fresh arrays each call).

    One seeded draw of all the parameters as a flat vector, cut into tensors by one
    jitted function: eager ``jax.random.normal`` compiles once per distinct shape
    (24 s for the ResNet list on two cores); a flat draw compiles once per set size.
    A per-tensor override ``{prefix}:{name}`` (parity tests) replaces that tensor."""
    total = param_sets.count(shapes)
    split = _splitter(tuple(tuple(s) for _, s in shapes))

    def draw() -> list:
        out = split(ctx.randn(prefix, (total,), scale=scale))
        return [ctx.randn(f"{prefix}:{n}", ()) if f"{prefix}:{n}" in ctx.overrides else a
                for a, (n, _) in zip(out, shapes)]

    return draw


@functools.lru_cache(maxsize=16)
def _splitter(shapes: tuple[tuple[int, ...], ...]) -> Callable:
    """jit(flat vector -> tensors of these shapes), cached so equal sets compile once."""
    import jax

    def split(v):
        out, at = [], 0
        for s in shapes:
            n = numel(*s)
            out.append(v[at:at + n].reshape(s))
            at += n
        return out

    return jax.jit(split)


@resnet.builder("jax")
@gpt.builder("jax")
@flat.builder("jax")
def jax_optax(ctx, p: Mapping[str, Any], mode: str):
    from xpubench.backends.base import Step

    jax = ctx.jax
    shapes = param_sets.shapes(p)
    tx = optax_transform(p["opt"])
    draw_params = jax_draws(ctx, "param", shapes, PARAM_SCALE)
    init = jax.jit(tx.init)  # one program, not one small compile per parameter shape

    def fresh() -> tuple[list, Any]:
        params = draw_params()
        return params, jax.device_put(init(params), ctx.device)

    grads = jax_draws(ctx, "grad", shapes, GRAD_SCALE)()
    params, state = fresh()
    # Parameters and state are donated: updated in place, as a training step does.
    step = ctx.compile(jax_update_fn(tx), params, state, grads, donate_argnums=(0, 1))
    holder = {"params": params, "state": state}

    def run():
        holder["params"], holder["state"] = step(holder["params"], holder["state"], grads)
        return holder["params"]

    def check() -> dict:
        """One step from the initial parameters and a fresh optimizer state."""
        holder["params"], holder["state"] = fresh()
        new = run()
        return {"params": ctx.numpy(ctx.jnp.concatenate([a.reshape(-1) for a in new]))}

    return Step(run=run, check=check, notes={
        "impl": "optax+jit", "optimizer": f"optax, configured as torch.optim.{OPTIMIZERS[p['opt']].torch_class}",
        "hyper": _hyper_note(p["opt"]), "tensors": len(shapes)})

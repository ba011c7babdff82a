"""Training steps: forward + loss + backward + optimizer step on one batch.

Models (suites/models): the classic MNIST CNN with Adadelta; ResNet-18 with
BatchNorm and SGD + momentum + weight decay; 2-layer LSTM and GRU language models
with Adam; a GPT-style decoder with AdamW. Each case trains on one fixed
synthetic batch (seeded, never zeros); loss is softmax cross-entropy in fp32.

Units: images -> samples; language models (RNN and GPT) -> tokens (batch x seq).
Default sizes keep the spec's architectures (MNIST batch 128; ResNet-18 at 32 px;
LSTM/GRU 2 x 512, seq 128; GPT 4 layers, d 256, seq 256) but use small batches
(ResNet 4, LSTM/GRU 4, GPT 2) so that a step stays around or below 0.3 s on a
2-core CPU in every precision (XLA:CPU bf16 runs 2-5x slower than fp32) and the
default run fits its ~10 minute budget. ``large`` sizes are for accelerators.

Precision: torch autocast for bf16/fp16, fp16 with ``torch.amp.GradScaler``; JAX
keeps fp32 parameters and computes in bf16/fp16 (flax ``dtype=``), fp16 with a
dynamic loss scale that mirrors GradScaler (start 2^16, halve and skip the update
on inf/NaN gradients, double after 2000 good steps). A step whose loss is NaN or
Inf is recorded ``diverged`` (``Step.finite``). torch fp16 on a CPU without
AVX512-FP16/AMX-FP16 is emulated (~20x slower than fp32; oneDNN's LSTM refuses
it): those cases are skipped with the reason unless ``XPUBENCH_CPU_FP16=1``.

FLOPs: ``Work.flops`` is analytic (3 x forward matmul/conv FLOPs, suites/flops.py);
the builder also counts them for real at build time and records
``notes["flops_counted"]`` and ``notes["flop_counter"]`` (torch FlopCounterMode; JAX
jaxpr matmul/conv count), plus ``notes["flops_xla_cost_analysis"]`` for JAX.

torch.compile (off by default: compiling takes minutes on a small CPU): the run
option ``torch_compile`` (``xpubench run --torch-compile [MODE]``, pytest
``--xpu-torch-compile [MODE]``), read from the options the builder's context
carries: ``default`` (inductor's default mode) or a mode name (``max-autotune``,
``reduce-overhead``, ...). The model is compiled; the optimizer step stays eager. The
first two compiled steps run in the builder and their time is ``compile_s``;
``notes["torch_compile"]`` says which mode ran.

Check: ``check()`` restores the initial weights and optimizer state, replays one
step with a fixed dropout seed and returns the loss and the gradients of the first
and last layers (``grad_first``, ``grad_last``); torch and JAX draw different
dropout masks, so compare within one framework.
"""

from __future__ import annotations

import copy
import functools
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from xpubench.spec.registry import MATMUL, Work, workload
from xpubench.suites import flops as fl
from xpubench.suites.models import cnn, jax_init_rngs, rnn, transformer

MODES = ("train_step",)
DROPOUT_SEED = 1234
FORCE_CPU_FP16_ENV = "XPUBENCH_CPU_FP16"
LOSS_SCALE_INIT = 2.0 ** 16  # JAX fp16: torch GradScaler's defaults
LOSS_SCALE_GROWTH_INTERVAL = 2000
MAX_SKIPPED_STEPS = 32  # check(): fp16 steps replayed while the loss scale backs off

# Optimizer hyper-parameters, identical in both frameworks.
ADADELTA = dict(lr=1.0, rho=0.95, eps=1e-7)  # Keras 2 mnist_cnn (tf.keras' lr=0.001 default trains badly)
SGD = dict(lr=0.1, momentum=0.9, weight_decay=5e-4)  # CIFAR ResNet recipe
ADAM = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
ADAMW = dict(lr=6e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)  # GPT-2 small (nanoGPT); decay on >=2-D weights


# ------------------------------------------------------------------------ workloads
def _image_work(forward: Callable[[Mapping[str, Any]], float]):
    return lambda p, mode: Work(p["batch"], fl.train_flops(forward(p)), flops_kind=MATMUL)


mnist_cnn = workload(
    suite="training", name="mnist_cnn", modes=MODES, unit="samples",
    description="Keras mnist_cnn exactly (1,199,882 params), Adadelta lr 1.0 rho 0.95, 28x28x1 inputs in [0,1]",
    sizes={"smoke": dict(batch=8), "default": dict(batch=128), "large": dict(batch=128)},
    work=_image_work(lambda p: fl.mnist_cnn_forward_flops(p["batch"])),
)
resnet18 = workload(
    suite="training", name="resnet18", modes=MODES, unit="samples",
    description="ResNet-18 layout with BatchNorm, SGD momentum 0.9 + weight decay 5e-4 "
                "(CIFAR stem below 64 px; default batch 4 to fit the CPU budget)",
    sizes={"smoke": dict(batch=2, hw=32, width=8, classes=10),
           "default": dict(batch=4, hw=32, width=64, classes=10),
           "large": dict(batch=64, hw=224, width=64, classes=1000)},
    work=_image_work(lambda p: fl.resnet_forward_flops(p["batch"], p["hw"], p["width"], p["classes"])),
)


def _rnn_work(cell: str):
    def work(p: Mapping[str, Any], mode: str) -> Work:
        tokens = p["batch"] * p["seq"]
        forward = fl.rnn_lm_forward_flops(tokens, cell, p["layers"], p["hidden"], p["vocab"])
        return Work(tokens, fl.train_flops(forward), flops_kind=MATMUL)
    return work


_RNN_SIZES = {"smoke": dict(batch=2, seq=16, hidden=32, layers=2, vocab=64),
              "default": dict(batch=4, seq=128, hidden=512, layers=2, vocab=256),
              "large": dict(batch=64, seq=256, hidden=1024, layers=2, vocab=256)}
lstm_lm = workload(
    suite="training", name="lstm_lm", modes=MODES, unit="tokens",
    description="2-layer LSTM byte-level language model (vocab 256), Adam; default batch 4 x seq 128",
    sizes=_RNN_SIZES, work=_rnn_work("lstm"),
)
gru_lm = workload(
    suite="training", name="gru_lm", modes=MODES, unit="tokens",
    description="2-layer GRU byte-level language model (vocab 256), Adam; default batch 4 x seq 128",
    sizes=_RNN_SIZES, work=_rnn_work("gru"),
)


def _gpt_work(p: Mapping[str, Any], mode: str) -> Work:
    return Work(p["batch"] * p["seq"],
                fl.train_flops(fl.gpt_forward_flops(p["batch"], p["seq"], p["layers"], p["d_model"], p["vocab"])),
                flops_kind=MATMUL)


gpt = workload(
    suite="training", name="gpt", modes=MODES, unit="tokens",
    description="GPT decoder (pre-LN, causal MHA, GELU MLP, dropout 0.1, tied head), AdamW wd 0.1; "
                "default batch 2 x seq 256 (CPU budget); large = GPT-2 small (124M, seq 1024)",
    sizes={"smoke": dict(batch=2, seq=16, layers=2, d_model=32, heads=2, vocab=64),
           "default": dict(batch=2, seq=256, layers=4, d_model=256, heads=4, vocab=8192),
           "large": dict(batch=8, seq=1024, layers=12, d_model=768, heads=12, vocab=50257)},
    work=_gpt_work,
)
GPT_DROPOUT = 0.1


# ------------------------------------------------------------------------ recipes
@dataclass
class Recipe:
    """What differs between models; the step around it is shared (one per framework)."""

    model: Callable[[], Any]  # torch: () -> nn.Module; jax: () -> nnx.Module
    optimizer: Callable[..., Any]  # torch: (module) -> Optimizer; jax: () -> optax transform
    batch: Callable[[], tuple[Any, Any]]  # (inputs, integer targets)
    forward: Callable[..., Any]  # torch: (module, inputs); jax: (module, inputs, dropout key)
    probes: tuple[Any, Any]  # first and last layer: torch parameter names / jax param paths
    notes: dict[str, Any] = field(default_factory=dict)


def _images(ctx, p: Mapping[str, Any], shape: tuple[int, ...], classes: int, uniform: bool):
    """NCHW images (overrides use this layout in both frameworks) and labels.

    ``input_scale`` (not in any size; tests set it) scales the images, e.g. to
    overflow fp16 and force a divergence.
    """
    x = ctx.rand("x", shape) if uniform else ctx.randn("x", shape)
    return x * float(p.get("input_scale", 1.0)), ctx.randint("y", (shape[0],), classes)


def _tokens(ctx, p: Mapping[str, Any]):
    t = ctx.randint("tokens", (p["batch"], p["seq"] + 1), p["vocab"])
    return t[:, :-1], t[:, 1:]


def torch_recipe(name: str, ctx, p: Mapping[str, Any]) -> Recipe:
    import torch

    if name == "mnist_cnn":
        return Recipe(
            model=cnn.torch_mnist_cnn,
            optimizer=lambda m: torch.optim.Adadelta(m.parameters(), **ADADELTA),
            batch=lambda: _images(ctx, p, (p["batch"], 1, 28, 28), cnn.MNIST_CLASSES, True),
            forward=lambda m, x: m(x), probes=("conv1.weight", "fc2.weight"),
            notes={"optimizer": f"torch.optim.Adadelta{_kw(ADADELTA)}"})
    if name == "resnet18":
        return Recipe(
            model=lambda: cnn.torch_resnet(p["hw"], p["width"], p["classes"]),
            optimizer=lambda m: torch.optim.SGD(m.parameters(), **SGD),
            batch=lambda: _images(ctx, p, (p["batch"], 3, p["hw"], p["hw"]), p["classes"], False),
            forward=lambda m, x: m(x), probes=("stem.weight", "fc.weight"),
            notes={"optimizer": f"torch.optim.SGD{_kw(SGD)}"})
    if name in ("lstm_lm", "gru_lm"):
        cell = name.split("_")[0]
        reason = torch_cpu_bf16_rnn_skip(ctx, cell)
        if reason:
            skip_case(reason)
        return Recipe(
            model=lambda: rnn.torch_rnn_lm(cell, p["vocab"], p["hidden"], p["layers"]),
            optimizer=lambda m: torch.optim.Adam(m.parameters(), **ADAM),
            batch=lambda: _tokens(ctx, p), forward=lambda m, x: m(x),
            probes=("rnn.weight_ih_l0", "head.weight"),
            notes={"optimizer": f"torch.optim.Adam{_kw(ADAM)}"})
    if name == "gpt":
        def adamw(m):
            decay = [q for q in m.parameters() if q.dim() >= 2]
            no_decay = [q for q in m.parameters() if q.dim() < 2]
            kw = {k: v for k, v in ADAMW.items() if k != "weight_decay"}
            return torch.optim.AdamW([{"params": decay, "weight_decay": ADAMW["weight_decay"]},
                                      {"params": no_decay, "weight_decay": 0.0}], **kw)

        return Recipe(
            model=lambda: transformer.torch_gpt(p["vocab"], p["seq"], p["layers"], p["d_model"], p["heads"],
                                                GPT_DROPOUT),
            optimizer=adamw, batch=lambda: _tokens(ctx, p), forward=lambda m, x: m(x),
            probes=("blocks.0.attn.qkv.weight", f"blocks.{p['layers'] - 1}.proj.weight"),
            notes={"optimizer": f"torch.optim.AdamW{_kw(ADAMW)} (no decay on biases/LayerNorm)"})
    raise KeyError(name)


def jax_recipe(name: str, ctx, p: Mapping[str, Any]) -> Recipe:
    import jax.numpy as jnp
    import optax

    kw = dict(dtype=ctx.compute_dtype, param_dtype=ctx.param_dtype)

    def nhwc(batch):
        x, y = batch
        return jnp.transpose(x, (0, 2, 3, 1)), y

    if name == "mnist_cnn":
        return Recipe(
            model=lambda: cnn.flax_mnist_cnn(**kw, rngs=jax_init_rngs(ctx)),
            optimizer=lambda: optax.adadelta(ADADELTA["lr"], rho=ADADELTA["rho"], eps=ADADELTA["eps"]),
            batch=lambda: nhwc(_images(ctx, p, (p["batch"], 1, 28, 28), cnn.MNIST_CLASSES, True)),
            forward=lambda m, x, key: m(x, key), probes=(("conv1", "kernel"), ("fc2", "kernel")),
            notes={"optimizer": f"optax.adadelta{_kw(ADADELTA)}"})
    if name == "resnet18":
        return Recipe(
            model=lambda: cnn.flax_resnet(p["hw"], p["width"], p["classes"], **kw, rngs=jax_init_rngs(ctx)),
            # torch SGD adds weight_decay * w to the gradient before momentum: same order here.
            optimizer=lambda: optax.chain(optax.add_decayed_weights(SGD["weight_decay"]),
                                          optax.sgd(SGD["lr"], momentum=SGD["momentum"])),
            batch=lambda: nhwc(_images(ctx, p, (p["batch"], 3, p["hw"], p["hw"]), p["classes"], False)),
            forward=lambda m, x, key: m(x, train=True), probes=(("stem", "kernel"), ("fc", "kernel")),
            notes={"optimizer": f"optax.chain(add_decayed_weights, sgd){_kw(SGD)}"})
    if name in ("lstm_lm", "gru_lm"):
        cell = name.split("_")[0]
        return Recipe(
            model=lambda: rnn.flax_rnn_lm(cell, p["vocab"], p["hidden"], p["layers"], **kw,
                                          rngs=jax_init_rngs(ctx)),
            optimizer=lambda: optax.adam(ADAM["lr"], b1=ADAM["betas"][0], b2=ADAM["betas"][1], eps=ADAM["eps"]),
            batch=lambda: _tokens(ctx, p), forward=lambda m, x, key: m(x),
            probes=(("layers", 0, "w_ih"), ("head", "kernel")),
            notes={"optimizer": f"optax.adam{_kw(ADAM)}"})
    if name == "gpt":
        return Recipe(
            # XLA:CPU has no fp16 x fp16 -> fp32 dot, which jax.nn.dot_product_attention asks for.
            model=lambda: transformer.flax_gpt(p["vocab"], p["seq"], p["layers"], p["d_model"], p["heads"],
                                               GPT_DROPOUT, **kw, rngs=jax_init_rngs(ctx),
                                               fused_attention=not (ctx.precision == "fp16"
                                                                    and ctx.device.platform == "cpu")),
            optimizer=lambda: optax.adamw(ADAMW["lr"], b1=ADAMW["betas"][0], b2=ADAMW["betas"][1],
                                          eps=ADAMW["eps"], weight_decay=ADAMW["weight_decay"],
                                          mask=lambda params: _tree_map(lambda a: a.ndim >= 2, params)),
            batch=lambda: _tokens(ctx, p), forward=lambda m, x, key: m(x, key),
            probes=(("blocks", 0, "attn", "qkv", "kernel"), ("blocks", p["layers"] - 1, "proj", "kernel")),
            notes={"optimizer": f"optax.adamw{_kw(ADAMW)} (no decay on biases/LayerNorm)"})
    raise KeyError(name)


def _kw(d: Mapping[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in d.items()) + ")"


def _tree_map(fn, tree):
    import jax

    return jax.tree.map(fn, tree)


# ------------------------------------------------------------------------ torch step
def skip_case(reason: str):
    """Raise the harness's "not applicable here" exception (recorded as skipped)."""
    from xpubench import errors

    raise errors.SkipCase(reason)


def torch_cpu_fp16_skip(ctx) -> str | None:
    """Why fp16 matmuls/convolutions are not run on this CPU (None = they run).

    Without AVX512-FP16 or AMX-FP16, torch emulates fp16 GEMMs and convolutions on
    the CPU (~20x slower than fp32 on a 2-core AVX-512 machine: minutes per case),
    and oneDNN's LSTM rejects fp16 outright. ``XPUBENCH_CPU_FP16=1`` runs them anyway.
    """
    import torch

    if ctx.precision != "fp16" or ctx.device.type != "cpu" or os.environ.get(FORCE_CPU_FP16_ENV) == "1":
        return None
    caps = getattr(torch.cpu, "get_capabilities", dict)()
    if caps.get("avx512_fp16") or caps.get("amx_fp16"):
        return None
    return (f"fp16 matmuls/convolutions are emulated on this CPU (no AVX512-FP16/AMX-FP16; ~20x slower "
            f"than fp32); set {FORCE_CPU_FP16_ENV}=1 to run anyway")


def torch_cpu_bf16_rnn_skip(ctx, cell: str) -> str | None:
    """Why a bf16 LSTM/GRU is not run on this CPU (None = it runs).

    Under CPU autocast torch hands a bf16 RNN to oneDNN, which does not offer it on
    every CPU: on a 2-core AMD EPYC (Zen 3, AVX2, no AVX-512) it raised "could not
    create a primitive descriptor for the LSTM forward propagation primitive", where an
    earlier test VM ran it. Which CPUs offer it is oneDNN's business, so a tiny RNN of
    the same cell is tried once per process rather than guessed from CPU flags.
    """
    if getattr(ctx, "precision", None) != "bf16" or ctx.device.type != "cpu":  # ctx None: a recipe built bare
        return None
    err = _cpu_bf16_rnn_error(cell)
    return None if err is None else f"oneDNN offers no bf16 {cell.upper()} on this CPU ({err})"


@functools.lru_cache(maxsize=None)
def _cpu_bf16_rnn_error(cell: str) -> str | None:
    import torch

    layer = getattr(torch.nn, cell.upper())(8, 8, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            layer(torch.zeros(1, 2, 8))
    except RuntimeError as e:
        return str(e).split(". ")[0]
    return None


def torch_compile_mode(ctx) -> str | None:
    """The run's ``torch_compile`` option from the builder's context: None = eager,
    ``default`` = inductor's default mode, else the mode's name."""
    options = ctx.options  # None: built outside a run (e.g. a test building a step directly)
    return options.torch_compile if options is not None else None


def torch_train_step(ctx, recipe: Recipe):
    """Build a torch training step around a recipe."""
    import torch
    import torch.nn.functional as F

    from xpubench.backends.base import Step
    from xpubench.seeding import seed_for
    from xpubench.suites.models import torch_param_count

    reason = torch_cpu_fp16_skip(ctx)
    if reason:
        skip_case(reason)
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed_for("init", ctx.seed))
        model = ctx.module(recipe.model())
    model.train()
    initial = copy.deepcopy(model.state_dict())
    inputs, targets = recipe.batch()
    fp16 = ctx.precision == "fp16"
    state: dict[str, Any] = {}
    named = dict(model.named_parameters())
    probes = {"grad_first": named[recipe.probes[0]], "grad_last": named[recipe.probes[1]]}

    def reset() -> None:
        """Initial weights, fresh optimizer and scaler: every check starts identical."""
        model.load_state_dict(initial)
        state["opt"] = recipe.optimizer(model)
        state["scaler"] = torch.amp.GradScaler(ctx.device.type, enabled=fp16)
        state.pop("loss", None)

    def one_step(module):
        opt, scaler = state["opt"], state["scaler"]
        opt.zero_grad(set_to_none=True)
        with ctx.autocast():
            logits = recipe.forward(module, inputs)
        loss = F.cross_entropy(logits.float().flatten(0, -2), targets.flatten())
        scaler.scale(loss).backward()
        scaler.unscale_(opt)  # what step() does anyway; lets check() read true gradients
        scaler.step(opt)
        scaler.update()
        state["loss"] = loss.detach()
        return state["loss"]

    with torch.device("meta"):  # a twin without storage: FLOPs are counted, nothing computed
        meta_model = recipe.model()
    meta_model.train()

    def meta_step():
        logits = recipe.forward(meta_model, inputs.to("meta"))
        F.cross_entropy(logits.float().flatten(0, -2), targets.to("meta").flatten()).backward()

    counted = fl.torch_count_flops(meta_step)
    reset()
    notes = fl.notes_for(counted, f"{fl.TORCH_COUNTER} (forward + backward on the meta device)",
                         {"parameters": torch_param_count(model), **recipe.notes})
    if fp16:
        notes["grad_scaler"] = "torch.amp.GradScaler (default: init 2^16, growth interval 2000)"

    module, compile_s = model, None
    mode = torch_compile_mode(ctx)
    if mode:
        module = torch.compile(model, mode=None if mode == "default" else mode)
        t0 = time.perf_counter()
        for _ in range(2):  # the first call compiles forward and backward; the second re-checks guards
            one_step(module)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        compile_s = time.perf_counter() - t0
        reset()
    notes["torch_compile"] = f"inductor (mode={mode}; optimizer eager)" if mode else "off"

    def run():
        return one_step(module)

    def finite() -> bool:
        loss = state.get("loss")
        return loss is None or bool(torch.isfinite(loss).item())

    def check() -> dict:
        reset()
        for _ in range(MAX_SKIPPED_STEPS):
            scale = state["scaler"].get_scale() if fp16 else None
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(DROPOUT_SEED)  # the same dropout masks for every precision
                loss = one_step(module)
            # fp16: a step whose gradients overflowed was skipped (weights unchanged, scale
            # halved); replay it, so the gradients compared are those of a step that counts.
            if not fp16 or state["scaler"].get_scale() >= scale:
                break
        out = {"loss": ctx.numpy(loss)}
        for key, param in probes.items():
            out[key] = ctx.numpy(param.grad)
        return out

    return Step(run=run, check=check, finite=finite, compile_s=compile_s, notes=notes)


# -------------------------------------------------------------------------- jax step
def _pick(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def jax_train_step(ctx, recipe: Recipe):
    """Build one jitted JAX training step around a recipe; state is threaded in run()."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from xpubench.backends.base import Step
    from xpubench.suites.models import jax_init

    graphdef, params, stats = jax_init(recipe.model, nnx.Param, nnx.BatchStat, device=ctx.device)
    n_params = sum(int(a.size) for a in jax.tree.leaves(params))
    tx = recipe.optimizer()
    fp16 = ctx.precision == "fp16"
    scale0 = {"scale": jnp.float32(LOSS_SCALE_INIT), "good": jnp.int32(0)} if fp16 else {}
    # one compiled program, not one small compile per parameter shape of the eager init
    initial = jax.device_get((params, {"tx": jax.jit(tx.init)(params), "scale": scale0}, stats))
    inputs, targets = recipe.batch()

    def train_step(params, opt, stats, key, inputs, targets):
        key, sub = jax.random.split(key)
        scale = opt["scale"]["scale"] if fp16 else 1.0

        def loss_fn(params, stats):
            m = nnx.merge(graphdef, params, stats)
            logits = recipe.forward(m, inputs, sub)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets).mean()
            # BatchNorm's running statistics leave as an output (no mutation across trace levels).
            return loss * scale, (loss, nnx.state(m, nnx.BatchStat))

        # The statistics are differentiated too (a zero, dead-code-eliminated gradient)
        # only so they live at the same trace level as the parameters BatchNorm updates.
        grad_fn = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)
        (_, (loss, new_stats)), (grads, _) = grad_fn(params, stats)
        if fp16:
            grads = jax.tree.map(lambda g: g / scale, grads)
        updates, tx_state = tx.update(grads, opt["tx"], params)
        new_params = optax.apply_updates(params, updates)
        new_scale = opt["scale"]
        if fp16:  # GradScaler's rule: skip the update on overflow and back off the scale
            ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
            new_params, tx_state = keep(new_params, params), keep(tx_state, opt["tx"])
            good = jnp.where(ok, opt["scale"]["good"] + 1, 0)
            grow = good >= LOSS_SCALE_GROWTH_INTERVAL
            new_scale = {"scale": jnp.where(ok, jnp.where(grow, scale * 2.0, scale), scale * 0.5),
                         "good": jnp.where(grow, 0, good)}
        pure = nnx.to_pure_dict(grads)
        probes = {"grad_first": _pick(pure, recipe.probes[0]), "grad_last": _pick(pure, recipe.probes[1])}
        return new_params, {"tx": tx_state, "scale": new_scale}, new_stats, key, loss, probes

    def fresh():
        return jax.device_put(initial, ctx.device)

    p0, o0, s0 = fresh()
    args = (p0, o0, s0, ctx.key("dropout"), inputs, targets)
    t0 = time.perf_counter()
    traced = jax.jit(train_step, donate_argnums=(0, 1, 2, 3)).trace(*args)
    counted, saw_while = fl.jaxpr_flops(traced.jaxpr)
    compiled = traced.lower().compile()
    ctx.compile_s += time.perf_counter() - t0
    notes = fl.notes_for(counted, fl.JAX_COUNTER,
                         {"flops_xla_cost_analysis": fl.xla_cost_flops(compiled),
                          "parameters": n_params, **recipe.notes})
    if saw_while:
        notes["flop_counter_warning"] = "a while loop was counted once"
    if fp16:
        notes["loss_scaling"] = ("dynamic, as torch GradScaler: start 2^16, x0.5 and skip on overflow, "
                                 f"x2 after {LOSS_SCALE_GROWTH_INTERVAL} good steps")
    state: dict[str, Any] = {"params": p0, "opt": o0, "stats": s0, "key": ctx.key("dropout"), "loss": None}

    def run():
        s = state
        s["params"], s["opt"], s["stats"], s["key"], s["loss"], _ = compiled(
            s["params"], s["opt"], s["stats"], s["key"], inputs, targets)
        return s["loss"], s["params"]  # waiting on the updated weights waits on the whole step

    def finite() -> bool:
        return state["loss"] is None or bool(jnp.isfinite(state["loss"]))

    def check() -> dict:
        p, o, st = fresh()
        for _ in range(MAX_SKIPPED_STEPS):
            scale = float(o["scale"]["scale"]) if fp16 else None
            p, o, st, _, loss, probes = compiled(p, o, st, ctx.key("dropout"), inputs, targets)
            if not fp16 or float(o["scale"]["scale"]) >= scale:  # replay steps skipped on overflow
                break
        return {"loss": ctx.numpy(loss), **{k: ctx.numpy(v) for k, v in probes.items()}}

    return Step(run=run, check=check, finite=finite, notes=notes)


# ------------------------------------------------------------------------ builders
for _w in (mnist_cnn, resnet18, lstm_lm, gru_lm, gpt):
    _w.builder("torch")(lambda ctx, p, mode, _n=_w.name: torch_train_step(ctx, torch_recipe(_n, ctx, p)))
    _w.builder("jax")(lambda ctx, p, mode, _n=_w.name: jax_train_step(ctx, jax_recipe(_n, ctx, p)))

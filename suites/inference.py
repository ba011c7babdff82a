"""Inference: the classic MNIST CNN deployed, batch 128 of 28x28 images in [0, 1].

One workload, two variants: ``variant=dense`` (the trained network) and
``variant=pruned50`` (50% of its weights zeroed by global unstructured L1-magnitude
pruning over the conv and dense kernels, biases kept; torch
``torch.nn.utils.prune.global_unstructured``, the same rule in numpy for JAX).
Precisions fp32, bf16, fp16 (torch autocast / flax dtype policy) and int8:

- torch int8: ``torch.ao.quantization.quantize_dynamic`` (Linear layers -> int8
  weights, activations quantized per batch at run time; the convolutions stay
  fp32; CPU only; the API is deprecated in favour of torchao but still works).
- JAX int8: the two dense layers run int8 x int8 -> int32 ``dot_general``
  (per-output-channel symmetric int8 weights, per-row symmetric int8 activations
  quantized inside the step, then rescaled in fp32); the convolutions stay fp32,
  as in torch.

Unit: samples (images); time per step is the latency of one batch.

Weights: no dataset ships with xpubench, and an untrained network predicts one
class for every input (agreement is then trivially 1), so the builder first
trains the network: 20 Adadelta steps (lr 1.0, rho 0.95; batch 32, dropout on)
on synthetic 10-class "digits" (0.8 x a fixed random prototype + 0.2 x uniform
noise). That reaches ~100% on a fixed evaluation batch of the same kind, which
is what the step classifies. Training runs once per framework and device in a
process (cached) and is never timed.

Each record's notes: ``top1_agreement_vs_fp32`` (same variant in fp32, on the
evaluation batch), for the pruned variant ``top1_agreement_vs_dense_fp32`` and
``error_vs_dense_fp32`` (relative L2 of the logits), ``weight_sparsity``, and
``quantization`` / ``pruning`` saying what was done. ``check()`` returns the
logits, so the harness's ``error_vs_fp32`` is the logits' relative L2 error.
Unstructured zeros in dense kernels are still multiplied: pruning does not speed
this up (the record says so).
"""

from __future__ import annotations

from typing import Any, Mapping

from xpubench.spec.registry import MATMUL, Work, workload
from xpubench.suites import flops as fl
from xpubench.suites.models import cnn, jax_init_rngs

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
VARIANTS = ({"variant": "dense"}, {"variant": "pruned50"})
PRUNE_AMOUNT = 0.5
TRAIN_STEPS, TRAIN_BATCH = 20, 32
SIGNAL = 0.8  # image = SIGNAL * class prototype + (1 - SIGNAL) * noise

mnist_cnn = workload(
    suite="inference", name="mnist_cnn", modes=("inference",), unit="samples",
    description="Keras mnist_cnn in eval mode, trained at build on synthetic digits; dense and 50%-pruned; "
                "fp32/bf16/fp16/int8",
    sizes={"smoke": dict(batch=8), "default": dict(batch=128), "large": dict(batch=1024)},
    variants=VARIANTS, precisions=PRECISIONS,
    work=lambda p, mode: Work(p["batch"], fl.mnist_cnn_forward_flops(p["batch"]), flops_kind=MATMUL),
)

PRUNING_NOTE = (f"global unstructured L1-magnitude pruning of {PRUNE_AMOUNT:.0%} of conv+dense weights "
                "(biases kept); dense kernels still multiply the zeros, so no speed-up is expected")


def synthetic_digits(ctx, n: int, name: str):
    """``n`` images (NCHW, [0, 1]) and labels of the 10-class synthetic task."""
    protos = ctx.rand("digit_prototypes", (cnn.MNIST_CLASSES, 1, 28, 28))
    y = ctx.randint(f"{name}_labels", (n,), cnn.MNIST_CLASSES)
    noise = ctx.rand(f"{name}_noise", (n, 1, 28, 28))
    return SIGNAL * protos[y] + (1.0 - SIGNAL) * noise, y


def prune_mask_threshold(weights: list) -> float:
    """The global magnitude below which weights are zeroed (numpy arrays)."""
    import numpy as np

    flat = np.concatenate([np.abs(np.asarray(w, dtype=np.float64)).ravel() for w in weights])
    k = int(round(PRUNE_AMOUNT * flat.size))
    return float(np.partition(flat, k)[k]) if k < flat.size else float("inf")


def top1_agreement(a, b) -> float:
    import numpy as np

    return float(np.mean(np.argmax(a, axis=-1) == np.argmax(b, axis=-1)))


def accuracy(logits, labels) -> float:
    """Top-1 accuracy of fp32 logits on the synthetic labels (numpy)."""
    import numpy as np

    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(labels).astype(np.int64)))


def agreement_notes(logits, ref_same_variant, ref_dense, pruned: bool) -> dict[str, Any]:
    from xpubench.suites.common import rel_l2

    notes = {"top1_agreement_vs_fp32": top1_agreement(logits, ref_same_variant)}
    if pruned:
        notes["top1_agreement_vs_dense_fp32"] = top1_agreement(logits, ref_dense)
        notes["error_vs_dense_fp32"] = rel_l2(logits, ref_dense)
    return notes


# ------------------------------------------------------------------------------ torch
_TORCH_TRAINED: dict[tuple, Any] = {}

TORCH_INT8_NOTE = ("torch.ao.quantization.quantize_dynamic int8 (Linear layers: int8 weights, activations "
                   "quantized per batch at run time; convolutions stay fp32)")


def torch_trained_state(ctx) -> dict:
    """fp32 weights after the short training run (cached per device and seed)."""
    import torch
    import torch.nn.functional as F

    from xpubench.seeding import seed_for

    key = (str(ctx.device), ctx.seed)
    if key not in _TORCH_TRAINED:
        devices = [ctx.device] if ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed_for("init", ctx.seed))
            model = ctx.module(cnn.torch_mnist_cnn())
            x, y = synthetic_digits(ctx, TRAIN_STEPS * TRAIN_BATCH, "train")
            opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-7)
            model.train()
            for i in range(TRAIN_STEPS):
                s = slice(i * TRAIN_BATCH, (i + 1) * TRAIN_BATCH)
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[s]), y[s]).backward()
                opt.step()
        _TORCH_TRAINED[key] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return _TORCH_TRAINED[key]


def torch_model(ctx, pruned: bool):
    """The trained fp32 model in eval mode, pruned when asked."""
    import torch.nn.utils.prune as prune

    model = ctx.module(cnn.torch_mnist_cnn())
    model.load_state_dict(torch_trained_state(ctx))
    model.eval()
    if pruned:
        targets = [(m, "weight") for m in (model.conv1, model.conv2, model.fc1, model.fc2)]
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=PRUNE_AMOUNT)
        for m, name in targets:
            prune.remove(m, name)  # bake the mask in: a plain dense model with zeros
    return model


def _torch_sparsity(model) -> float:
    ws = [m.weight for m in (model.conv1, model.conv2, model.fc1, model.fc2)]
    return float(sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws))


@mnist_cnn.builder("torch")
def torch_inference(ctx, p: Mapping[str, Any], mode: str):
    import torch

    from xpubench.backends.base import Step
    from xpubench.suites.training import skip_case, torch_cpu_fp16_skip

    reason = torch_cpu_fp16_skip(ctx)
    if ctx.precision == "int8" and ctx.device.type != "cpu":
        reason = "torch.ao dynamic int8 quantization runs on the CPU only"
    if reason:
        skip_case(reason)
    pruned = p["variant"] == "pruned50"
    x, y = synthetic_digits(ctx, p["batch"], "eval")
    model = torch_model(ctx, pruned)
    notes: dict[str, Any] = {"weights": f"trained at build: {TRAIN_STEPS} Adadelta steps on synthetic digits"}
    if pruned:
        notes.update(pruning=PRUNING_NOTE + " (torch.nn.utils.prune.global_unstructured)",
                     weight_sparsity=_torch_sparsity(model))

    with torch.inference_mode():
        ref = ctx.numpy(model(x))  # fp32, this variant
        ref_dense = ctx.numpy(torch_model(ctx, False)(x)) if pruned else ref
    if ctx.precision == "int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        notes["quantization"] = f"{TORCH_INT8_NOTE}; deprecated for torchao, still in torch {torch.__version__}"

    def run():
        with torch.inference_mode(), ctx.autocast():
            return model(x)

    def check():
        return {"logits": ctx.numpy(run())}

    logits = check()["logits"]
    notes.update(agreement_notes(logits, ref, ref_dense, pruned))
    notes["synthetic_accuracy_fp32"] = accuracy(ref, ctx.numpy(y))
    return Step(run=run, check=check, notes=notes)


# -------------------------------------------------------------------------------- jax
_JAX_TRAINED: dict[tuple, Any] = {}

JAX_INT8_NOTE = ("int8 x int8 -> int32 lax.dot_general for the dense layers (per-output-channel symmetric "
                 "int8 weights, per-row symmetric int8 activations quantized in the step); convolutions stay fp32")


def _nhwc(x):
    import jax.numpy as jnp

    return jnp.transpose(x, (0, 2, 3, 1))


def jax_trained_params(ctx):
    """fp32 parameters (host numpy pytree) after the short training run (cached)."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from xpubench.suites.models import jax_init

    key = (str(ctx.device), ctx.seed)
    if key not in _JAX_TRAINED:
        def make():
            return cnn.flax_mnist_cnn(dtype=jnp.float32, param_dtype=jnp.float32, rngs=jax_init_rngs(ctx))

        graphdef, params = jax_init(make, nnx.Param, device=ctx.device)
        tx = optax.adadelta(1.0, rho=0.95, eps=1e-7)
        x, y = synthetic_digits(ctx, TRAIN_STEPS * TRAIN_BATCH, "train")
        x = _nhwc(x).reshape(TRAIN_STEPS, TRAIN_BATCH, 28, 28, 1)
        y = y.reshape(TRAIN_STEPS, TRAIN_BATCH)

        def train(params, x, y, key):
            def step(carry, batch):
                params, opt, key = carry
                key, sub = jax.random.split(key)

                def loss_fn(params):
                    logits = nnx.merge(graphdef, params)(batch[0], sub)
                    return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

                grads = jax.grad(loss_fn)(params)
                updates, opt = tx.update(grads, opt, params)
                return (optax.apply_updates(params, updates), opt, key), None

            (params, _, _), _ = jax.lax.scan(step, (params, tx.init(params), key), (x, y))
            return params

        params = jax.device_put(params, ctx.device)
        trained = jax.jit(train)(params, x, y, ctx.key("train_dropout"))
        _JAX_TRAINED[key] = jax.device_get(trained)
    return _JAX_TRAINED[key]


def _kernels(pure: dict) -> list:
    return [pure[name]["kernel"] for name in ("conv1", "conv2", "fc1", "fc2")]


def jax_pruned(pure: dict) -> dict:
    """The same global magnitude rule as torch's, on a pure-dict copy of the parameters."""
    import numpy as np

    threshold = prune_mask_threshold(_kernels(pure))
    out = {k: dict(v) for k, v in pure.items()}
    for name in ("conv1", "conv2", "fc1", "fc2"):
        w = np.asarray(out[name]["kernel"])
        out[name]["kernel"] = np.where(np.abs(w) < threshold, 0.0, w).astype(w.dtype)
    return out


def quantize_per_channel(w):
    """Symmetric int8 per output channel (last axis): (int8 weights, fp32 scales)."""
    import jax.numpy as jnp

    scale = jnp.max(jnp.abs(w), axis=0) / 127.0
    scale = jnp.where(scale == 0, 1.0, scale)
    return jnp.clip(jnp.round(w / scale), -127, 127).astype(jnp.int8), scale.astype(jnp.float32)


def int8_dense(x, q, w_scale, bias):
    """x (fp32) quantized per row to int8, int8 x int8 -> int32 dot, rescaled to fp32."""
    import jax
    import jax.numpy as jnp

    x_scale = jnp.max(jnp.abs(x), axis=-1, keepdims=True) / 127.0
    x_scale = jnp.where(x_scale == 0, 1.0, x_scale)
    xq = jnp.clip(jnp.round(x / x_scale), -127, 127).astype(jnp.int8)
    acc = jax.lax.dot_general(xq, q, (((1,), (0,)), ((), ())), preferred_element_type=jnp.int32)
    return acc.astype(jnp.float32) * x_scale * w_scale + bias


@mnist_cnn.builder("jax")
def jax_inference(ctx, p: Mapping[str, Any], mode: str):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from xpubench.backends.base import Step

    pruned = p["variant"] == "pruned50"
    x, y = synthetic_digits(ctx, p["batch"], "eval")
    x = _nhwc(x)
    dense_pure = jax_trained_params(ctx)
    pure = jax_pruned(nnx.to_pure_dict(dense_pure)) if pruned else nnx.to_pure_dict(dense_pure)

    def forward_fn(dtype):
        """Structure only (abstract arrays): the trained values are loaded into it."""
        model = nnx.eval_shape(lambda: cnn.flax_mnist_cnn(dtype=dtype, param_dtype=ctx.param_dtype,
                                                          rngs=jax_init_rngs(ctx)))
        return nnx.split(model, nnx.Param)

    def load(params, values: dict):
        nnx.replace_by_pure_dict(params, values)
        return jax.device_put(params, ctx.device)

    graphdef32, _ = forward_fn(jnp.float32)
    forward32 = jax.jit(lambda prm, x: nnx.merge(graphdef32, prm)(x))  # one compile for both references

    def logits_fp32(values: dict):
        return np.asarray(forward32(load(forward_fn(jnp.float32)[1], values), x), dtype=np.float64)

    notes: dict[str, Any] = {"weights": f"trained at build: {TRAIN_STEPS} Adadelta steps on synthetic digits"}
    ref = logits_fp32(pure)
    ref_dense = logits_fp32(nnx.to_pure_dict(dense_pure)) if pruned else ref
    if pruned:
        ws = _kernels(pure)
        notes.update(pruning=PRUNING_NOTE + " (numpy, same rule)",
                     weight_sparsity=float(sum(int((np.asarray(w) == 0).sum()) for w in ws)
                                           / sum(np.asarray(w).size for w in ws)))

    graphdef, params = forward_fn(ctx.compute_dtype)
    params = load(params, pure)
    if ctx.precision == "int8":
        quant = {name: (*quantize_per_channel(jnp.asarray(pure[name]["kernel"])),
                        jnp.asarray(pure[name]["bias"])) for name in ("fc1", "fc2")}
        quant = jax.device_put(quant, ctx.device)
        notes["quantization"] = JAX_INT8_NOTE

        def forward(params, quant, x):
            feats = nnx.merge(graphdef, params).features(x)
            h = jax.nn.relu(int8_dense(feats, *quant["fc1"]))
            return int8_dense(h, *quant["fc2"])

        args = (params, quant, x)
    else:
        def forward(params, x):
            return nnx.merge(graphdef, params)(x)

        args = (params, x)
    f = ctx.compile(forward, *args)

    def run():
        return f(*args)

    def check():
        return {"logits": ctx.numpy(run())}

    logits = check()["logits"]
    notes.update(agreement_notes(logits, ref, ref_dense, pruned))
    notes["synthetic_accuracy_fp32"] = accuracy(ref, np.asarray(y))
    return Step(run=run, check=check, notes=notes)

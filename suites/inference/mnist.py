"""The classic MNIST CNN deployed: batch 128 of 28x28 images in [0, 1], and batch 1 for latency.

Variants: ``dense`` (the trained network) and ``pruned50`` (50% of its weights zeroed
by global unstructured L1-magnitude pruning over the conv and dense kernels, biases
kept; ``torch.nn.utils.prune.global_unstructured``; JAX and ONNX Runtime get the
pruned weights). Unstructured zeros in dense kernels are still multiplied: pruning
does not speed this up (the record says so).

Weights: no dataset ships with xpubench, and an untrained network predicts one
class for every input (agreement is then trivially 1), so torch first trains the
network on the CPU: 20 Adadelta steps (lr 1.0, rho 0.95; batch 32, dropout on) on
synthetic 10-class "digits" (0.8 x a fixed random prototype + 0.2 x uniform noise),
~100% on a fixed evaluation batch of the same kind, which is what the step
classifies. Training is deterministic and never timed; its weights are cached per
process and on disk (``$XDG_CACHE_HOME/xpubench``, by torch version and seed), so the
other workers of a run (and later runs) load them instead of training again. JAX
loads a copy of those weights; ONNX Runtime runs the model exported from them.

int8: torch through torchao (xpubench.suites.inference.common.torch_int8; the
convolutions stay fp32); JAX runs the two dense layers as int8 x int8 -> int32
``dot_general`` (per-output-channel symmetric int8 weights, per-row symmetric int8
activations quantized inside the step; convolutions stay fp32); ONNX Runtime uses
static quantization (QDQ, calibrated on 128 synthetic digits that are not the
evaluation batch, fed in batches of the case's size; convolutions quantized too),
which ORT recommends for CNNs.
"""

from __future__ import annotations

from typing import Any, Mapping

from xpubench.spec.registry import MATMUL, Work, workload
from xpubench.suites import flops as fl
from xpubench.suites.inference import common as cm
from xpubench.suites.models import cnn, jax_init_rngs

VARIANTS = ({"variant": "dense"}, {"variant": "pruned50"})
PRUNE_AMOUNT = 0.5
TRAIN_STEPS, TRAIN_BATCH = 20, 32
CALIBRATION_SAMPLES = 128  # static int8: ranges seen on this many images, in batches of the case's size
SIGNAL = 0.8  # image = SIGNAL * class prototype + (1 - SIGNAL) * noise

mnist_cnn = workload(
    suite="inference", name="mnist_cnn", modes=("inference",), unit="samples",
    description="Keras mnist_cnn in eval mode, trained at build on synthetic digits; dense and 50%-pruned; "
                "fp32/bf16/fp16/int8; batch-1 latency cases beside",
    sizes={"smoke": dict(batch=8), "default": dict(batch=128), "large": dict(batch=1024)},
    variants=VARIANTS, precisions=cm.PRECISIONS, latency_batch=cm.LATENCY_BATCH,
    work=lambda p, mode: Work(p["batch"], fl.mnist_cnn_forward_flops(p["batch"]), flops_kind=MATMUL),
)

PRUNING_NOTE = (f"global unstructured L1-magnitude pruning of {PRUNE_AMOUNT:.0%} of conv+dense weights "
                "(biases kept; torch.nn.utils.prune.global_unstructured); dense kernels still multiply "
                "the zeros, so no speed-up is expected")
WEIGHTS_NOTE = f"trained at build in torch on the CPU: {TRAIN_STEPS} Adadelta steps on synthetic digits"


def synthetic_digits(n: int, name: str, seed: int = 0):
    """``n`` images (NCHW float32 in [0, 1]) and int64 labels of the 10-class task (numpy)."""
    import numpy as np

    protos = cm.rng("digit_prototypes", seed).random((cnn.MNIST_CLASSES, 1, 28, 28), dtype=np.float32)
    y = cm.rng(f"{name}_labels", seed).integers(0, cnn.MNIST_CLASSES, n)
    noise = cm.rng(f"{name}_noise", seed).random((n, 1, 28, 28), dtype=np.float32)
    return (SIGNAL * protos[y] + (1.0 - SIGNAL) * noise).astype(np.float32), y


# ------------------------------------------------------------------------ torch weights
_TRAINED: dict[int, dict] = {}
_REFERENCE: dict[tuple, Any] = {}


def trained_state(seed: int = 0) -> dict:
    """fp32 weights (torch tensors on the CPU) after the short training run, cached."""
    import torch
    import torch.nn.functional as F

    from xpubench.seeding import seed_for

    if seed not in _TRAINED:
        cached = _weights_file(seed)
        try:
            _TRAINED[seed] = torch.load(cached, weights_only=True)
            return _TRAINED[seed]
        except (OSError, RuntimeError, EOFError):  # not there yet (or unreadable): train
            pass
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_for("init", seed))
            model = cnn.torch_mnist_cnn()
            x, y = (torch.from_numpy(a) for a in synthetic_digits(TRAIN_STEPS * TRAIN_BATCH, "train", seed))
            opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-7)
            model.train()
            for i in range(TRAIN_STEPS):
                s = slice(i * TRAIN_BATCH, (i + 1) * TRAIN_BATCH)
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[s]), y[s]).backward()
                opt.step()
        _TRAINED[seed] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        _save_weights(_TRAINED[seed], cached)
    return _TRAINED[seed]


def _weights_file(seed: int):
    import os
    from pathlib import Path

    import torch

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xpubench"
    return root / f"mnist_cnn-{TRAIN_STEPS}x{TRAIN_BATCH}-torch{torch.__version__}-seed{seed}.pt"


def _save_weights(state: dict, path) -> None:
    """Write the trained weights for the next worker; a read-only home just means training again."""
    import os
    import tempfile

    import torch

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        os.close(fd)
        torch.save(state, tmp)
        os.replace(tmp, path)  # a reader never sees half a file
    except OSError:
        pass


def torch_model(pruned: bool, seed: int = 0):
    """The trained fp32 model on the CPU in eval mode, pruned when asked."""
    import torch.nn.utils.prune as prune

    model = cnn.torch_mnist_cnn()
    model.load_state_dict(trained_state(seed))
    model.eval()
    if pruned:
        targets = [(m, "weight") for m in (model.conv1, model.conv2, model.fc1, model.fc2)]
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=PRUNE_AMOUNT)
        for m, name in targets:
            prune.remove(m, name)  # bake the mask in: a plain dense model with zeros
    return model


def numpy_state(model) -> dict:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def weight_sparsity(state: Mapping[str, Any]) -> float:
    import numpy as np

    ws = [np.asarray(state[f"{m}.weight"]) for m in ("conv1", "conv2", "fc1", "fc2")]
    return float(sum(int((w == 0).sum()) for w in ws) / sum(w.size for w in ws))


def torch_reference(batch: int, pruned: bool, seed: int = 0):
    """torch fp32 logits on the CPU for the evaluation batch (float64 numpy, cached)."""
    import numpy as np
    import torch

    key = (batch, pruned, seed)
    if key not in _REFERENCE:
        x, _ = synthetic_digits(batch, "eval", seed)
        with torch.inference_mode():
            _REFERENCE[key] = torch_model(pruned, seed)(torch.from_numpy(x)).double().numpy()
    return np.array(_REFERENCE[key])


def _common_notes(p: Mapping[str, Any], seed: int, logits, ref_same) -> dict[str, Any]:
    pruned = p["variant"] == "pruned50"
    notes: dict[str, Any] = {"weights": WEIGHTS_NOTE}
    ref_torch = torch_reference(p["batch"], pruned, seed)
    dense = torch_reference(p["batch"], False, seed) if pruned else None
    notes.update(cm.agreement_notes(logits, ref_same, ref_torch, ref_dense=dense))
    notes["synthetic_accuracy_fp32"] = cm.accuracy(ref_torch, synthetic_digits(p["batch"], "eval", seed)[1])
    if pruned:
        notes.update(pruning=PRUNING_NOTE, weight_sparsity=weight_sparsity(numpy_state(torch_model(True, seed))))
    return notes


# ------------------------------------------------------------------------------ torch
@mnist_cnn.builder("torch")
def torch_inference(ctx, p: Mapping[str, Any], mode: str):
    return cm.torch_step(ctx, torch_model(p["variant"] == "pruned50", ctx.seed),
                         synthetic_digits(p["batch"], "eval", ctx.seed)[0],
                         lambda logits, ref: _common_notes(p, ctx.seed, logits, ref), "convolutions stay fp32")


# -------------------------------------------------------------------------------- jax
JAX_INT8_NOTE = ("int8 x int8 -> int32 lax.dot_general for the dense layers (per-output-channel symmetric "
                 "int8 weights, per-row symmetric int8 activations quantized in the step); convolutions stay fp32")


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
    from flax import nnx

    from xpubench.backends.base import Step
    from xpubench.suites.models import port

    x = jax.device_put(jnp.transpose(synthetic_digits(p["batch"], "eval", ctx.seed)[0], (0, 2, 3, 1)), ctx.device)
    pure = port.flax_mnist_cnn_params(numpy_state(torch_model(p["variant"] == "pruned50", ctx.seed)))

    def make(dtype):
        return cnn.flax_mnist_cnn(dtype=dtype, param_dtype=ctx.param_dtype, rngs=jax_init_rngs(ctx))

    ref = cm.jax_fp32_logits(ctx, make, pure, x)
    graphdef, params = cm.jax_params(ctx, make, pure, ctx.compute_dtype)
    if ctx.precision == "int8":
        quant = jax.device_put({name: (*quantize_per_channel(jnp.asarray(pure[name]["kernel"])),
                                       jnp.asarray(pure[name]["bias"])) for name in ("fc1", "fc2")}, ctx.device)

        def forward(params, quant, x):
            feats = nnx.merge(graphdef, params).features(x)
            return int8_dense(jax.nn.relu(int8_dense(feats, *quant["fc1"])), *quant["fc2"])

        args: tuple = (params, quant, x)
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
    notes = _common_notes(p, ctx.seed, logits, logits if ref is None else ref)
    notes["weights"] = WEIGHTS_NOTE + "; copied into flax"
    if ctx.precision == "int8":
        notes["quantization"] = JAX_INT8_NOTE
    return Step(run=run, check=check, notes=notes)


# ------------------------------------------------------------------------ onnxruntime
@mnist_cnn.builder("onnxruntime")
def ort_inference(ctx, p: Mapping[str, Any], mode: str):
    pruned = p["variant"] == "pruned50"
    feeds = {"images": synthetic_digits(p["batch"], "eval", ctx.seed)[0]}
    calibration = None
    if ctx.precision == "int8":  # the export's shapes are static: batches of the case's size
        images = synthetic_digits(max(CALIBRATION_SAMPLES, p["batch"]), "calibration", ctx.seed)[0]
        calibration = [{"images": images[i:i + p["batch"]]} for i in range(0, len(images) - p["batch"] + 1,
                                                                             p["batch"])]
    step, ref = cm.ort_step(ctx, torch_model(pruned, ctx.seed), feeds, ("mnist_cnn", p["batch"], pruned, ctx.seed),
                            int8_method="static", calibration=calibration)
    step.notes = _common_notes(p, ctx.seed, step.check()["logits"], ref)
    step.notes["weights"] = WEIGHTS_NOTE + "; exported to ONNX"
    return step

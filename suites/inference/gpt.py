"""The training suite's GPT in eval mode on a fixed-length prompt (prefill).

One step runs the decoder over a prompt of ``seq`` tokens and returns the logits of
every position (batch x seq x vocab): all positions, so top-1 agreement rests on
batch x seq predictions, not one per sequence (a batch-1 latency case still
compares 128). Default: batch 8 x 128 tokens, 4 layers, d 256, vocab 8192 (a CPU
budget); batch 1 for latency.

Weights: torch's GPT-2 initialisation (normal(0, 0.02), seeded), not trained;
JAX loads a copy (xpubench.suites.models.port), ONNX Runtime runs the model
exported from them. Prompt tokens come from numpy, the same in every framework.

int8: torch through torchao (Linear layers of the blocks; the tied LM head and the
attention products stay fp32); ONNX Runtime dynamic quantization (MatMul weights
int8, activations quantized per call), which ORT recommends for transformers. JAX
has no int8 GPT (its int8 path covers the MNIST CNN's dense layers): skipped.
"""

from __future__ import annotations

from typing import Any, Mapping

from xpubench.spec.registry import MATMUL, Work, workload
from xpubench.suites import flops as fl
from xpubench.suites.inference import common as cm
from xpubench.suites.models import jax_init_rngs, transformer

DROPOUT = 0.1  # as in the training suite; eval mode turns it off


def _work(p: Mapping[str, Any], mode: str) -> Work:
    return Work(p["batch"] * p["seq"], fl.gpt_forward_flops(p["batch"], p["seq"], p["layers"], p["d_model"],
                                                            p["vocab"]), flops_kind=MATMUL)


gpt = workload(
    suite="inference", name="gpt", modes=("inference",), unit="tokens",
    description="training suite's GPT in eval mode, prefill of a fixed prompt, logits of every position; "
                "default batch 8 x 128 tokens; batch-1 latency cases beside",
    sizes={"smoke": dict(batch=2, seq=16, layers=2, d_model=32, heads=2, vocab=64),
           "default": dict(batch=8, seq=128, layers=4, d_model=256, heads=4, vocab=8192),
           "large": dict(batch=32, seq=1024, layers=12, d_model=768, heads=12, vocab=50257)},
    precisions=cm.PRECISIONS, latency_batch=cm.LATENCY_BATCH, work=_work,
)

WEIGHTS_NOTE = "GPT-2 initialisation in torch (normal(0, 0.02), seeded), untrained"
_REFERENCE: dict[tuple, Any] = {}


def _arch(p: Mapping[str, Any]) -> tuple:
    return p["vocab"], p["seq"], p["layers"], p["d_model"], p["heads"]


def prompt(p: Mapping[str, Any], seed: int = 0):
    """(batch, seq) int64 tokens (numpy)."""
    return cm.rng("prompt", seed).integers(0, p["vocab"], (p["batch"], p["seq"]))


def torch_model(p: Mapping[str, Any], seed: int = 0):
    """The initialised GPT on the CPU in eval mode: the same weights at every call."""
    import torch

    from xpubench.seeding import seed_for

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for("gpt_init", seed))
        return transformer.torch_gpt(*_arch(p), DROPOUT).eval()


def torch_reference(p: Mapping[str, Any], seed: int = 0):
    """torch fp32 logits on the CPU, every position (float64 numpy, cached)."""
    import numpy as np
    import torch

    key = (_arch(p), p["batch"], seed)
    if key not in _REFERENCE:
        with torch.inference_mode():
            _REFERENCE[key] = torch_model(p, seed)(torch.from_numpy(prompt(p, seed))).numpy()
    return np.asarray(_REFERENCE[key], dtype=np.float64)


def _notes(p: Mapping[str, Any], seed: int, logits, ref_same) -> dict[str, Any]:
    return {"weights": WEIGHTS_NOTE, "logits": "every position of the prompt",
            **cm.agreement_notes(logits, ref_same, torch_reference(p, seed))}


# ------------------------------------------------------------------------------ torch
@gpt.builder("torch")
def torch_inference(ctx, p: Mapping[str, Any], mode: str):
    return cm.torch_step(ctx, torch_model(p, ctx.seed), prompt(p, ctx.seed),
                         lambda logits, ref: _notes(p, ctx.seed, logits, ref), "the tied LM head stays fp32")


# -------------------------------------------------------------------------------- jax
@gpt.builder("jax")
def jax_inference(ctx, p: Mapping[str, Any], mode: str):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from xpubench.backends.base import Step
    from xpubench.suites.models import port

    if ctx.precision == "int8":
        cm.skip("JAX int8 is written for the MNIST CNN's dense layers; the GPT has no JAX int8 path")
    tokens = jax.device_put(jnp.asarray(prompt(p, ctx.seed), dtype=jnp.int32), ctx.device)
    pure = port.flax_gpt_params({k: v.numpy() for k, v in torch_model(p, ctx.seed).state_dict().items()})

    def make(dtype):
        # XLA:CPU has no fp16 x fp16 -> fp32 dot, which jax.nn.dot_product_attention asks for.
        fused = not (dtype == jnp.float16 and ctx.device.platform == "cpu")
        return transformer.flax_gpt(*_arch(p), DROPOUT, dtype=dtype, param_dtype=ctx.param_dtype,
                                    rngs=jax_init_rngs(ctx), fused_attention=fused)

    ref = cm.jax_fp32_logits(ctx, make, pure, tokens)
    graphdef, params = cm.jax_params(ctx, make, pure, ctx.compute_dtype)
    f = ctx.compile(lambda prm, t: nnx.merge(graphdef, prm)(t), params, tokens)

    def run():
        return f(params, tokens)

    def check():
        return {"logits": ctx.numpy(run())}

    logits = check()["logits"]
    notes = _notes(p, ctx.seed, logits, logits if ref is None else ref)
    notes["weights"] = WEIGHTS_NOTE + "; copied into flax"
    return Step(run=run, check=check, notes=notes)


# ------------------------------------------------------------------------ onnxruntime
@gpt.builder("onnxruntime")
def ort_inference(ctx, p: Mapping[str, Any], mode: str):
    feeds = {"tokens": prompt(p, ctx.seed)}
    step, ref = cm.ort_step(ctx, torch_model(p, ctx.seed), feeds, ("gpt", _arch(p), p["batch"], ctx.seed),
                            int8_method="dynamic")
    step.notes = _notes(p, ctx.seed, step.check()["logits"], ref)
    step.notes["weights"] = WEIGHTS_NOTE + "; exported to ONNX"
    return step

"""What the inference cases share: numpy inputs, agreement notes, torch int8, the ORT step.

Inputs are drawn with numpy from seeds by name, so torch, JAX and ONNX Runtime see
the same numbers; weights come from torch (xpubench.suites.models.port copies them
into flax; the ONNX export carries them).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
LATENCY_BATCH = 1


def rng(name: str, seed: int):
    """A numpy generator seeded by name: the same draw in every framework."""
    import numpy as np

    from xpubench.seeding import seed_for

    return np.random.default_rng(seed_for(name, seed))


def top1_agreement(a, b) -> float:
    import numpy as np

    return float(np.mean(np.argmax(a, axis=-1) == np.argmax(b, axis=-1)))


def accuracy(logits, labels) -> float:
    """Top-1 accuracy of logits on integer labels (numpy)."""
    import numpy as np

    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(labels).astype(np.int64)))


def agreement_notes(logits, ref_same, ref_torch, ref_dense=None, ref_torch_dense=None) -> dict[str, Any]:
    """Top-1 agreement and relative L2 error of ``logits`` against the references.

    ``ref_same``: this framework at fp32, same variant; ``ref_torch``: torch fp32 on
    the CPU, same variant, weights and inputs; the dense references for a pruned variant.
    """
    import numpy as np

    from xpubench.suites.common import rel_l2

    notes = {"top1_agreement_vs_fp32": top1_agreement(logits, ref_same),
             "top1_agreement_vs_torch_fp32": top1_agreement(logits, ref_torch),
             "error_vs_torch_fp32": rel_l2(logits, ref_torch),
             "agreement_predictions": int(np.prod(np.shape(logits)[:-1]))}
    if ref_dense is not None:
        notes["top1_agreement_vs_dense_fp32"] = top1_agreement(logits, ref_dense)
        notes["error_vs_dense_fp32"] = rel_l2(logits, ref_dense)
    if ref_torch_dense is not None:
        notes["top1_agreement_vs_torch_dense_fp32"] = top1_agreement(logits, ref_torch_dense)
    return notes


def skip(reason: str):
    from xpubench.errors import SkipCase

    raise SkipCase(reason)


# ------------------------------------------------------------------------ torch int8
TORCHAO_CONFIG = "Int8DynamicActivationInt8WeightConfig"


def torch_int8(model, device_type: str) -> tuple[Any, str]:
    """``model``'s Linear layers in int8 (int8 weights, activations quantized per call).

    The kept path is torchao (``quantize_`` with an int8 dynamic-activation, int8-weight
    config); ``torch.ao.quantization.quantize_dynamic`` (deprecated, CPU only) is the
    fallback where torchao does not import. Returns the model and which path ran;
    neither path: the case is skipped with the reason.
    """
    import torch

    # torchao logs each prebuilt kernel library it cannot load, and torch's pytree
    # warns about its enum registrations: not the measurement's business.
    quiet = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in quiet]
    try:
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        import torchao
        from torchao import quantization as tq

        config = getattr(tq, TORCHAO_CONFIG)
    except (ImportError, AttributeError) as e:
        why = f"torchao unavailable ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]})"
    else:
        tq.quantize_(model, config())
        return model, (f"torchao.quantization.quantize_({TORCHAO_CONFIG}()), torchao {torchao.__version__}: "
                       "Linear layers with int8 weights, activations quantized to int8 per call")
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    legacy = getattr(getattr(torch.ao, "quantization", None), "quantize_dynamic", None)
    if legacy is None:
        skip(f"no torch int8 path: {why}, and this torch has no torch.ao.quantization.quantize_dynamic")
    if device_type != "cpu":
        skip(f"{why}; the fallback torch.ao dynamic int8 quantization runs on the CPU only")
    model = legacy(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model, (f"torch.ao.quantization.quantize_dynamic (fallback: {why}; deprecated in torch "
                   f"{torch.__version__}): Linear layers with int8 weights, activations quantized per call")


def torch_step(ctx, model, inputs, notes: Callable[[Any, Any], dict], stays_fp32: str):
    """The torch step: ``model`` (CPU, fp32) on the device, called on ``inputs`` (numpy).

    ``notes(logits, fp32 logits on this device)`` gives the record's notes; int8
    quantizes the Linear layers (``stays_fp32`` says what does not get int8).
    """
    import torch

    from xpubench.backends.base import Step
    from xpubench.suites.training import torch_cpu_fp16_skip

    reason = torch_cpu_fp16_skip(ctx)
    if reason:
        skip(reason)
    x = torch.from_numpy(inputs).to(ctx.device)
    model = model.to(ctx.device)
    with torch.inference_mode():
        ref = ctx.numpy(model(x))
    quantization = None
    if ctx.precision == "int8":
        model, quantization = torch_int8(model, ctx.device.type)

    def run():
        with torch.inference_mode(), ctx.autocast():
            return model(x)

    def check():
        return {"logits": ctx.numpy(run())}

    out = notes(check()["logits"], ref)
    if quantization:
        out["quantization"] = f"{quantization}; {stays_fp32}"
    return Step(run=run, check=check, notes=out)


# ------------------------------------------------------------------------ jax
def jax_params(ctx, make: Callable[[Any], Any], pure: Mapping, dtype):
    """(graphdef, params on the device) of the flax model ``make(dtype)`` holding the
    values of ``pure`` (torch's weights, ported): built abstract, then filled."""
    import jax
    from flax import nnx

    graphdef, params = nnx.split(nnx.eval_shape(lambda: make(dtype)), nnx.Param)
    nnx.replace_by_pure_dict(params, pure)
    return graphdef, jax.device_put(params, ctx.device)


def jax_fp32_logits(ctx, make: Callable[[Any], Any], pure: Mapping, *inputs):
    """This model at fp32 on the device: the JAX fp32 reference (float64 numpy); None when the
    context is fp32 (the step is its own reference: no second compile)."""
    if ctx.precision == "fp32":
        return None
    import jax
    import jax.numpy as jnp
    from flax import nnx

    graphdef, params = jax_params(ctx, make, pure, jnp.float32)
    return ctx.numpy(jax.jit(lambda prm, *a: nnx.merge(graphdef, prm)(*a))(params, *inputs))


# ------------------------------------------------------------------------ onnxruntime
def ort_logits_fp32(model: bytes, feeds: Mapping[str, Any]):
    """One call of the fp32 ONNX model on the CPU provider (the ORT fp32 reference)."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, dict(feeds))[0], dtype=np.float64)


def ort_step(ctx, model, feeds: Mapping[str, Any], key: tuple, int8_method: str,
             calibration: list[Mapping] | None = None):
    """Export the torch ``model`` (CPU, fp32) called on ``feeds``, bring it to the
    backend's precision, open a session and return (Step, this model's ORT fp32 logits).

    ``feeds``: input name -> numpy array, in the model's argument order.
    """
    import torch

    from xpubench.backends.base import Step

    args = tuple(torch.from_numpy(v) for v in feeds.values())
    fp32 = ctx.export(model, args, tuple(feeds), ("logits",), key=key)
    runner = ctx.runner(ctx.session(ctx.at_precision(fp32, int8_method, calibration)), feeds)

    def check():
        return {"logits": ctx.numpy(runner.outputs()[0])}

    ref = check()["logits"] if ctx.precision == "fp32" and ctx.device == "cpu" else ort_logits_fp32(fp32, feeds)
    return Step(run=runner.run, check=check), ref

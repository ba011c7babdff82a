"""FLOP counting: analytic formulas for the declared work, and real counters.

Scope, the same everywhere: multiply-accumulates of matmuls and convolutions
(2 FLOPs each), forward and backward. Element-wise ops, normalizations, softmax,
pooling and the optimizer update are left out: this is the "model FLOPs" of the
MFU definition (PaLM, App. B), and the scope of ``torch.utils.flop_counter``.

- Analytic (``*_train_flops``): training = 3 x forward (backward = 2 x forward).
  Used for ``Work.flops`` of the declared workload, computed without a framework.
- Counted, torch: ``FlopCounterMode`` over one forward + backward of the model
  built on the ``meta`` device (build time, no arithmetic). On meta, LSTM/GRU
  and attention dispatch to their composite matmul ops, which have FLOP
  formulas; on a real CPU the fused oneDNN RNN and CPU flash-attention kernels
  have none and would count 0. Same aten ops otherwise, same count (checked).
- Counted, JAX: the traced program's jaxpr, walking ``dot_general`` and
  ``conv_general_dilated`` (scan bodies times their length). XLA's
  ``compiled.cost_analysis()`` is recorded too, but it counts element-wise ops
  and counts a loop body once (an LSTM under ``lax.scan`` comes out ~seq-length
  times too small), so it is not the headline count.

Counted figures fall slightly below the analytic 3x: no gradient is computed for
a network's input (images, token ids), so the first layer's backward skips its
input-gradient matmul.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

TORCH_COUNTER = "torch.utils.flop_counter.FlopCounterMode"
JAX_COUNTER = "jaxpr dot_general/conv_general_dilated count (scan bodies x length)"
TRAIN_FACTOR = 3  # forward + backward (2 x forward)


# ------------------------------------------------------------------ analytic pieces
def linear_flops(rows: float, d_in: int, d_out: int) -> float:
    return 2.0 * rows * d_in * d_out


def conv2d_flops(n: int, h_out: int, w_out: int, c_in: int, c_out: int, k: int) -> float:
    return 2.0 * n * h_out * w_out * c_out * c_in * k * k


def mnist_cnn_forward_flops(batch: int, hw: int = 28) -> float:
    """Keras mnist_cnn: conv 3x3x32 (26x26), conv 3x3x64 (24x24), dense 9216->128, 128->10
    (at 28 px; ``hw`` for other square inputs)."""
    return (conv2d_flops(batch, hw - 2, hw - 2, 1, 32, 3) + conv2d_flops(batch, hw - 4, hw - 4, 32, 64, 3)
            + linear_flops(batch, ((hw - 4) // 2) ** 2 * 64, 128) + linear_flops(batch, 128, 10))


def resnet_forward_flops(batch: int, hw: int, width: int, classes: int,
                         blocks: tuple[int, ...] = (2, 2, 2, 2)) -> float:
    """ResNet with basic blocks; the stem is CIFAR-style (3x3, stride 1) below 64 px,
    ImageNet-style (7x7 stride 2 + 3x3/2 max-pool) from 64 px up (see models.cnn)."""
    if hw < 64:
        s = hw
        total = conv2d_flops(batch, s, s, 3, width, 3)
    else:
        s = (hw + 1) // 2
        total = conv2d_flops(batch, s, s, 3, width, 7)
        s = (s + 1) // 2
    c_in = width
    for stage, n_blocks in enumerate(blocks):
        c = width * 2 ** stage
        for b in range(n_blocks):
            stride = 2 if (stage > 0 and b == 0) else 1
            s_out = (s + stride - 1) // stride
            total += conv2d_flops(batch, s_out, s_out, c_in, c, 3) + conv2d_flops(batch, s_out, s_out, c, c, 3)
            if stride != 1 or c_in != c:
                total += conv2d_flops(batch, s_out, s_out, c_in, c, 1)
            c_in, s = c, s_out
    return total + linear_flops(batch, c_in, classes)


def rnn_lm_forward_flops(tokens: int, cell: str, layers: int, hidden: int, vocab: int) -> float:
    """Embedding (a lookup, no FLOPs) -> stacked LSTM/GRU (input = hidden) -> vocabulary head."""
    gates = {"lstm": 4, "gru": 3}[cell]
    per_token = layers * 2.0 * gates * hidden * (hidden + hidden) + 2.0 * hidden * vocab
    return tokens * per_token


def gpt_forward_flops(batch: int, seq: int, layers: int, d_model: int, vocab: int) -> float:
    """Per token: 2 x matmul parameters (12 d^2 per block, plus the tied head d x V),
    plus attention scores and values 2 x 2 x seq x d per block (full square, as PaLM)."""
    per_token = 2.0 * (layers * 12 * d_model ** 2 + d_model * vocab) + layers * 4.0 * seq * d_model
    return batch * seq * per_token


def train_flops(forward: float) -> float:
    return TRAIN_FACTOR * forward


# ------------------------------------------------------------------ torch counter
def torch_count_flops(fn) -> int:
    """FLOPs of one call of ``fn`` (the forward and backward ops it dispatches)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


# ------------------------------------------------------------------ JAX counters
def _conv_flops(eqn) -> float:
    """Multiply-adds of a convolution, counted as torch's FlopCounterMode does.

    torch counts every conv of a training step at its forward size,
    batch x C_out x C_in x kernel taps x forward output positions, padding taps
    included. JAX writes the input gradient as a convolution of the (dilated,
    fully padded) output gradient, whose output is the forward *input*; counting
    its output positions would over-count by the border (and the stride holes).
    Per spatial dimension, min(output, lhs) x kernel is the forward-sized count
    for all three convolutions of a layer: forward (output < lhs), input gradient
    (lhs = forward output < output), weight gradient (output = kernel, rhs =
    forward output). It is exact while every input is at least as large as the
    kernel; below that (a 2x2 map under a 3x3 kernel) the weight gradient is
    under-counted, so the suites keep feature maps >= 3x3 (ResNet inputs >= 24 px).
    """
    lhs, rhs = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
    out = eqn.outvars[0].aval.shape
    dn = eqn.params["dimension_numbers"]
    lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
    channels = out[out_spec[0]] * out[out_spec[1]] * rhs[rhs_spec[1]]  # batch x C_out x C_in per group
    taps = math.prod(min(out[o], lhs[i]) * rhs[r] for o, i, r in zip(out_spec[2:], lhs_spec[2:], rhs_spec[2:]))
    return 2.0 * channels * taps


def _dot_flops(eqn) -> float:
    lhs = eqn.invars[0].aval.shape
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    out = eqn.outvars[0].aval.shape
    return 2.0 * math.prod(out) * math.prod(lhs[d] for d in lhs_contract)


def _sub_jaxprs(value: Any) -> Iterable[Any]:
    from jax.extend import core as jcore

    if isinstance(value, jcore.ClosedJaxpr):
        yield value.jaxpr
    elif isinstance(value, jcore.Jaxpr):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _sub_jaxprs(v)


def jaxpr_flops(jaxpr) -> tuple[float, bool]:
    """(matmul + conv FLOPs of a (closed) jaxpr, whether a while loop was counted once)."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total, saw_while = 0.0, False
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "cond":  # one branch runs: count the costliest
            branches = [jaxpr_flops(b) for b in eqn.params["branches"]]
            total += max(f for f, _ in branches)
            saw_while |= any(w for _, w in branches)
        else:
            mult = eqn.params["length"] if name == "scan" else 1
            saw_while |= name == "while"
            for key, value in eqn.params.items():
                if name == "while" and key == "cond_jaxpr":
                    continue
                for sub in _sub_jaxprs(value):
                    f, w = jaxpr_flops(sub)
                    total += mult * f
                    saw_while |= w
    return total, saw_while


def xla_cost_flops(compiled) -> float | None:
    """``flops`` from XLA's cost analysis of a compiled executable (None when absent)."""
    try:
        ca = compiled.cost_analysis()
    except Exception:  # some PJRT plugins do not implement it
        return None
    if isinstance(ca, (list, tuple)):  # older jax: one dict per computation
        ca = ca[0] if ca else None
    if not isinstance(ca, Mapping) or "flops" not in ca:
        return None
    return float(ca["flops"])


def notes_for(counted: float, counter: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``Step.notes`` keys every training case uses for its counted FLOPs."""
    out: dict[str, Any] = {"flops_counted": float(counted), "flop_counter": counter}
    out.update(extra or {})
    return out

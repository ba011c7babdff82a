"""Parameter lists shaped like real models, for the optimizer suite.

An optimizer step does not care what the parameters compute, only how many
tensors there are and how big each is: many small tensors (norm weights, biases)
cost per-tensor overhead, a few huge ones (embeddings, the classifier) cost
bandwidth. So each set here is the ordered ``(name, shape)`` list of a real model's
trainable parameters, written out from its published layout — no framework needed.

- ``resnet18`` / ``resnet50``: torchvision's layouts (conv weights without bias,
  BatchNorm weight and bias, final ``fc``); ``width`` scales every channel count
  (64 = the real model) so the smoke size keeps the layout with tiny tensors.
- ``gpt``: a GPT-2 style decoder (nanoGPT names): token and position embeddings,
  per layer LayerNorm, fused qkv and output projections, a 4x MLP, all with biases;
  a final LayerNorm; the LM head shares the token embedding (tied), as in GPT-2.
- ``flat``: one large 1-D tensor (the best case for any implementation).

A case's params say which set it is by their keys: ``arch`` (ResNet), ``vocab``
(GPT) or ``n`` (flat); the other keys give its dimensions.
"""

from __future__ import annotations

from typing import Any, Mapping

from xpubench.suites.common import numel

Shapes = list[tuple[str, tuple[int, ...]]]

RESNET_BLOCKS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6, 3))}


def _bn(name: str, c: int) -> Shapes:
    return [(f"{name}.weight", (c,)), (f"{name}.bias", (c,))]


def resnet_shapes(arch: str = "resnet18", width: int = 64, classes: int = 1000, in_ch: int = 3) -> Shapes:
    """Trainable parameters of torchvision's ResNet-18/50, channel counts scaled by width/64."""
    kind, blocks = RESNET_BLOCKS[arch]
    expansion = 4 if kind == "bottleneck" else 1
    out: Shapes = [("conv1.weight", (width, in_ch, 7, 7))] + _bn("bn1", width)
    cin = width
    for stage, n_blocks in enumerate(blocks):
        planes = width * 2 ** stage
        cout = planes * expansion
        for b in range(n_blocks):
            pre = f"layer{stage + 1}.{b}"
            if kind == "basic":
                out += [(f"{pre}.conv1.weight", (planes, cin, 3, 3))] + _bn(f"{pre}.bn1", planes)
                out += [(f"{pre}.conv2.weight", (planes, planes, 3, 3))] + _bn(f"{pre}.bn2", planes)
            else:
                out += [(f"{pre}.conv1.weight", (planes, cin, 1, 1))] + _bn(f"{pre}.bn1", planes)
                out += [(f"{pre}.conv2.weight", (planes, planes, 3, 3))] + _bn(f"{pre}.bn2", planes)
                out += [(f"{pre}.conv3.weight", (cout, planes, 1, 1))] + _bn(f"{pre}.bn3", cout)
            # A projection shortcut wherever the block changes shape (stride or channels).
            if b == 0 and (stage > 0 or cin != cout):
                out += [(f"{pre}.downsample.0.weight", (cout, cin, 1, 1))] + _bn(f"{pre}.downsample.1", cout)
            cin = cout
    out += [("fc.weight", (classes, cin)), ("fc.bias", (classes,))]
    return out


def gpt_shapes(vocab: int, ctx: int, d: int, layers: int) -> Shapes:
    """A GPT-2 style decoder's trainable parameters (LM head tied to the embedding)."""
    out: Shapes = [("transformer.wte.weight", (vocab, d)), ("transformer.wpe.weight", (ctx, d))]
    for i in range(layers):
        pre = f"transformer.h.{i}"
        out += [
            (f"{pre}.ln_1.weight", (d,)), (f"{pre}.ln_1.bias", (d,)),
            (f"{pre}.attn.c_attn.weight", (3 * d, d)), (f"{pre}.attn.c_attn.bias", (3 * d,)),
            (f"{pre}.attn.c_proj.weight", (d, d)), (f"{pre}.attn.c_proj.bias", (d,)),
            (f"{pre}.ln_2.weight", (d,)), (f"{pre}.ln_2.bias", (d,)),
            (f"{pre}.mlp.c_fc.weight", (4 * d, d)), (f"{pre}.mlp.c_fc.bias", (4 * d,)),
            (f"{pre}.mlp.c_proj.weight", (d, 4 * d)), (f"{pre}.mlp.c_proj.bias", (d,)),
        ]
    return out + [("transformer.ln_f.weight", (d,)), ("transformer.ln_f.bias", (d,))]


def flat_shapes(n: int) -> Shapes:
    return [("flat", (int(n),))]


def shapes(p: Mapping[str, Any]) -> Shapes:
    """The parameter list a case's params describe."""
    if "arch" in p:
        return resnet_shapes(p["arch"], p.get("width", 64), p.get("classes", 1000))
    if "vocab" in p:
        return gpt_shapes(p["vocab"], p["ctx"], p["d"], p["layers"])
    if "n" in p:
        return flat_shapes(p["n"])
    raise ValueError(f"params {dict(p)} name no parameter set (expected arch, vocab or n)")


def count(s: Shapes) -> int:
    return sum(numel(*shape) for _, shape in s)

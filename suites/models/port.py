"""torch weights into the flax models: the same function with each framework's layout.

The inference suite runs one set of weights everywhere (torch trains or initialises
them; JAX and ONNX Runtime get copies), so every framework can be compared with
torch fp32 on the same inputs. Inputs are numpy ``state_dict`` values; outputs are
flax nnx pure dicts for ``nnx.replace_by_pure_dict``.

Layouts: a torch Linear weight is (out, in), a flax kernel (in, out); a torch Conv
weight (out, in, kh, kw), a flax kernel (kh, kw, in, out). The MNIST CNN's first
dense layer also sees its input flattened in another order (torch C,H,W; flax
H,W,C), so its rows are permuted.
"""

from __future__ import annotations

from typing import Any, Mapping

MNIST_POOLED = (64, 12, 12)  # channels, height, width of the MNIST CNN's flattened features


def flax_mnist_cnn_params(state: Mapping[str, Any]) -> dict:
    """torch MnistCNN state dict (numpy) -> flax MnistCNN pure dict."""
    import numpy as np

    c, h, w = MNIST_POOLED
    fc1 = np.asarray(state["fc1.weight"])
    fc1 = fc1.reshape(fc1.shape[0], c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, fc1.shape[0])
    return {
        "conv1": {"kernel": np.asarray(state["conv1.weight"]).transpose(2, 3, 1, 0), "bias": state["conv1.bias"]},
        "conv2": {"kernel": np.asarray(state["conv2.weight"]).transpose(2, 3, 1, 0), "bias": state["conv2.bias"]},
        "fc1": {"kernel": fc1, "bias": state["fc1.bias"]},
        "fc2": {"kernel": np.asarray(state["fc2.weight"]).T, "bias": state["fc2.bias"]},
    }


def flax_gpt_params(state: Mapping[str, Any]) -> dict:
    """torch GPT state dict (numpy) -> flax GPT pure dict (block indices as ints)."""
    import numpy as np

    out: dict = {}
    for name, value in state.items():
        *path, leaf = [int(p) if p.isdigit() else p for p in name.split(".")]
        value = np.asarray(value)
        if path[-1] in ("wte", "wpe"):
            leaf = "embedding"
        elif leaf == "weight" and str(path[-1]).startswith("ln"):
            leaf = "scale"
        elif leaf == "weight":
            leaf, value = "kernel", value.T
        node = out
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out

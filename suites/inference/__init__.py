"""Inference: models deployed in eval mode, on torch, JAX and ONNX Runtime side by side.

Workloads: ``mnist_cnn`` (the classic MNIST CNN, dense and 50%-pruned; batch 128)
and ``gpt`` (the training suite's GPT, prefill of a fixed prompt). Each also has a
batch-1 latency case per variant (``latency=True``): every call timed on its own,
p50/p90/p99 in the record's ``latency_s``.

One set of weights (from torch) and one set of inputs (from numpy) run in every
framework, so each record notes, beside its own framework's fp32 reference
(``top1_agreement_vs_fp32``; the harness's ``error_vs_fp32``), the agreement with
torch fp32 on the CPU: ``top1_agreement_vs_torch_fp32`` and ``error_vs_torch_fp32``
(relative L2 of the logits), over ``agreement_predictions`` predictions.
``check()`` returns the logits. Precisions: fp32, bf16, fp16 (torch autocast /
flax dtype policy / ORT fp16 on CUDA) and int8 (each framework's own path; the
record's ``quantization`` says which ran).
"""

# Registers the workloads, MNIST first (the order `list` and reports show).
from xpubench.suites.inference import mnist  # noqa: F401
from xpubench.suites.inference import gpt  # noqa: F401, I001

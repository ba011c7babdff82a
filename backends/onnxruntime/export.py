"""A torch model as ONNX bytes, through torch's own exporter, cached per process.

Exporter: ``torch.onnx.export(..., dynamo=True)``, the torch.export-based exporter
(torch's default since 2.9; it needs ``onnxscript``). The legacy TorchScript
exporter is deprecated and slated for removal, and it writes a tied weight twice
(the GPT's embedding and LM head: 29 MB against 21.5 MB). Shapes are static (the
batch the case runs), so ORT may specialise on them. The exporter's progress lines,
its registry's logging and torch's own deprecation notices from inside the exporter
are kept out of the worker's output and the record's warnings: they are about
torch's internals, not the measurement.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any, Hashable

OPSET = 18
EXPORTER = f"torch.onnx.export(dynamo=True, opset {OPSET})"


@dataclass(frozen=True)
class Exported:
    """One exported model: serialized ONNX bytes and how they were made."""

    model: bytes
    exporter: str
    export_s: float
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


_CACHE: dict[Hashable, Exported] = {}


@contextlib.contextmanager
def _quiet():
    """The exporter prints progress to stdout, logs missing torchvision ops and trips
    torch's own FutureWarnings (pytree internals)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def export(model: Any, args: tuple, input_names: tuple[str, ...], output_names: tuple[str, ...],
           key: Hashable | None = None) -> Exported:
    """Export ``model`` (eval mode, on the CPU) called on ``args``; ``key`` caches it.

    The cache lets a process's fp32 twin and quantized variants share one export
    (a few seconds each for the GPT).
    """
    if key is not None and key in _CACHE:
        return _CACHE[key]
    import torch

    model.eval()
    t0 = time.perf_counter()
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(model, args, dynamo=True, opset_version=OPSET, verbose=False,
                                    input_names=list(input_names), output_names=list(output_names))
    out = Exported(model=program.model_proto.SerializeToString(), exporter=f"{EXPORTER}, torch {torch.__version__}",
                   export_s=time.perf_counter() - t0, input_names=tuple(input_names),
                   output_names=tuple(output_names))
    if key is not None:
        _CACHE[key] = out
    return out


def clear_cache() -> None:
    _CACHE.clear()

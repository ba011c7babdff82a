"""Reduced-precision ONNX models through onnxruntime's own tools: int8 and fp16.

int8, two ways (``onnxruntime.quantization``), after ``quant_pre_process`` (shape
inference and graph clean-up, as ORT's guide asks):

- ``dynamic``: weights int8 ahead of time; activations quantized per call from
  their observed range (MatMulInteger / ConvInteger). ORT recommends it for
  transformers and RNNs.
- ``static``: QDQ format, weights int8 per output channel, activations uint8 with
  ranges calibrated (min/max) on batches of the suite's inputs. ORT recommends it
  for CNNs.

fp16 (the CUDA provider): ``onnxruntime.transformers.float16`` converts weights and
compute to fp16 and keeps fp32 inputs and outputs, so feeds and comparisons are the
same as in fp32.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable, Mapping

INT8_METHODS = ("dynamic", "static")


def describe_int8(method: str) -> str:
    import onnxruntime as ort

    if method == "dynamic":
        return (f"onnxruntime.quantization.quantize_dynamic (int8 weights, activations quantized per call), "
                f"onnxruntime {ort.__version__}")
    weights = "7-bit (reduce_range: no VNNI on this CPU)" if needs_reduced_range() else "int8"
    return (f"onnxruntime.quantization.quantize_static (QDQ; {weights} per-channel weights, uint8 activations "
            f"calibrated min/max on the suite's inputs), onnxruntime {ort.__version__}")


class _Batches:
    """onnxruntime's CalibrationDataReader over a list of feed dicts."""

    def __init__(self, feeds: Iterable[Mapping]):
        self._it = iter(list(feeds))

    def get_next(self):
        batch = next(self._it, None)
        return None if batch is None else dict(batch)

    def rewind(self):  # not needed for min/max calibration; part of the reader protocol
        pass


VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def needs_reduced_range(flags: Mapping[str, bool | None] | None = None) -> bool:
    """7-bit weights where the CPU has no VNNI: onnxruntime's uint8 x int8 kernels there
    multiply-add pairs into int16 and can saturate (its quantization docs advise
    ``reduce_range``). Seen on a 2-core AMD EPYC Zen 3 (AVX2, no VNNI): the static int8
    model's error against torch fp32 was 0.066 where the tests allow 0.05, and within
    that with it. Unknown flags (no /proc/cpuinfo) count as no VNNI: the safe side."""
    if flags is None:
        from xpubench.hardware.cpu import cpu_info

        flags = cpu_info()["flags"]
    return not any(flags.get(f) for f in VNNI_FLAGS)


def quantize_int8(model: bytes, method: str, calibration: Iterable[Mapping] | None = None) -> bytes:
    """``model`` (ONNX bytes, fp32) quantized to int8 by ``method`` (dynamic | static)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in INT8_METHODS:
        raise ValueError(f"unknown int8 method {method!r}; accepted: {', '.join(INT8_METHODS)}")
    if method == "static" and calibration is None:
        raise ValueError("static int8 quantization needs calibration batches")
    with tempfile.TemporaryDirectory(prefix="xpubench-ort-") as tmp:
        src, pre, out = (Path(tmp) / n for n in ("model.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(model)
        quant_pre_process(str(src), str(pre))
        if method == "dynamic":
            quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8)
        else:
            quantize_static(str(pre), str(out), _Batches(calibration or ()), quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=needs_reduced_range(), activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
        return out.read_bytes()


def to_fp16(model: bytes) -> bytes:
    """``model`` with fp16 weights and compute, fp32 inputs and outputs kept."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = convert_float_to_float16(onnx.load_from_string(model), keep_io_types=True)
    return proto.SerializeToString()

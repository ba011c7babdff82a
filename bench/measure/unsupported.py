"""Is an exception a framework saying "not implemented for this precision/device"?

Such a case is recorded ``skipped`` with the framework's own message, not ``error``:
oneDNN refusing an fp16 LSTM on a CPU is a fact about the stack, not a failure of
the benchmark. Everything else stays an error. Matched on the exception's type and
text, so no framework is imported here.
"""

from __future__ import annotations

import re

# Lower-cased fragments of the messages frameworks give for a missing kernel or dtype path.
_MARKERS = (
    "could not create a primitive descriptor",  # oneDNN: no implementation for this dtype/shape/ISA
    "could not create a primitive",
    "unimplemented:",  # XLA status code (XlaRuntimeError: UNIMPLEMENTED: ...)
    "cublas_status_not_supported",
    "cudnn_status_not_supported",
    "no kernel image is available for execution on the device",  # built without this GPU's architecture
    "is only supported on cuda devices with compute capability",  # torch._scaled_mm and friends
    "path needs the cpu support",  # torch mkldnn_convolution: "fp16 path needs the cpu support avx512_fp16"
)
# torch: '"addmm_impl_cpu_" not implemented for 'Half'' (any dtype name in quotes)
_NOT_IMPLEMENTED_FOR_DTYPE = re.compile(r"not implemented for '[A-Za-z0-9_]+'")
# torch dispatcher: "Could not run 'aten::...' with arguments from the 'QuantizedCPU' backend"
_NO_BACKEND_KERNEL = re.compile(r"could not run '[^']+' with arguments from the '[^']+' backend")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [""])[0].strip()


def is_unsupported(exc: BaseException) -> str | None:
    """The framework's one-line message when ``exc`` says the op is not implemented for this
    precision or device (then the case is ``skipped``), else None (it stays an ``error``)."""
    text = str(exc)
    low = text.lower()
    if isinstance(exc, NotImplementedError) or type(exc).__name__ == "NotImplementedError":
        pass
    elif not (any(m in low for m in _MARKERS) or _NOT_IMPLEMENTED_FOR_DTYPE.search(text)
              or _NO_BACKEND_KERNEL.search(low)):
        return None
    line = _first_line(exc) or "not implemented"
    return f"not supported by the framework here: {type(exc).__name__}: {line}"[:500]

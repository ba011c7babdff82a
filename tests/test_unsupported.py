"""The unsupported-op classification, on exceptions the frameworks really raise here."""

from __future__ import annotations

import pytest

from xpubench.measure.unsupported import is_unsupported


def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - the exception is the test's input
        return e
    pytest.skip("this machine runs it: nothing to classify")


def _onednn_fp16_lstm():
    import torch

    h = 16
    x = torch.randn(4, 2, h, dtype=torch.float16)
    w = [torch.randn(4 * h, h, dtype=torch.float16) for _ in range(2)]
    b = [torch.randn(4 * h, dtype=torch.float16) for _ in range(2)]
    hx = torch.zeros(2, h, dtype=torch.float16)
    # the primitive nn.LSTM reaches on an AVX512-FP16 CPU (the Intel first-run failure)
    torch.mkldnn_rnn_layer(x, *w, *b, hx, hx.clone(), False, [], 2, h, 1, True, False, False, False)


def test_onednn_primitive_descriptor_failure_is_unsupported():
    exc = _raised(_onednn_fp16_lstm)
    reason = is_unsupported(exc)
    assert reason is not None and "could not create a primitive descriptor" in reason
    assert reason.startswith("not supported by the framework here: RuntimeError:") and "\n" not in reason


def test_torch_not_implemented_for_a_dtype_is_unsupported():
    import torch

    exc = _raised(lambda: torch.linalg.cholesky(torch.eye(3).half()))
    assert "not implemented for 'Half'" in is_unsupported(exc)
    exc = _raised(lambda: torch.linalg.svd(torch.eye(3).bfloat16()))
    assert "'BFloat16'" in is_unsupported(exc)
    # older torch raised the same text as a RuntimeError
    assert is_unsupported(RuntimeError(str(exc))) is not None


def test_torch_cpu_feature_requirement_is_unsupported():
    import torch

    exc = _raised(lambda: torch.mkldnn_convolution(torch.randn(1, 3, 8, 8).half(), torch.randn(4, 3, 3, 3).half(),
                                                   None, [0, 0], [1, 1], [1, 1], 1))
    assert "needs the cpu support" in is_unsupported(exc)


def test_xla_unimplemented_and_jax_not_implemented_are_unsupported():
    import jax.numpy as jnp

    exc = _raised(lambda: jnp.dot(jnp.ones((8, 8), jnp.int2), jnp.ones((8, 8), jnp.int2)).block_until_ready())
    assert "UNIMPLEMENTED" in is_unsupported(exc)
    exc = _raised(lambda: jnp.linalg.cholesky(jnp.eye(3, dtype=jnp.float16)))
    assert isinstance(exc, NotImplementedError) and is_unsupported(exc).startswith(
        "not supported by the framework here: NotImplementedError")


def test_other_errors_stay_errors():
    import jax.numpy as jnp
    import torch

    real = [_raised(lambda: torch.ones(2, 3) @ torch.ones(2, 3)),  # a shape bug
            _raised(lambda: torch.empty(1, device="meta").item()),
            _raised(lambda: jnp.ones((2, 3)) @ jnp.ones((2, 3))),
            _raised(lambda: 1 / 0),
            MemoryError(),
            RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1099511627776 bytes.")]
    for exc in real:
        assert is_unsupported(exc) is None, exc


def test_a_case_that_raises_not_implemented_is_skipped_with_the_frameworks_message():
    from xpubench.backends.base import BackendSpec
    from xpubench.measure.record import error_record
    from xpubench.spec import registry as specmod

    case = specmod.select(["normalization"], None, "smoke")[0]
    spec = BackendSpec.parse("torch:cpu:fp16")
    rec = error_record(case, spec, RuntimeError(
        "could not create a primitive descriptor for the LSTM forward propagation primitive"))
    assert rec["status"] == "skipped" and "primitive descriptor" in rec["reason"]
    other = error_record(case, spec, RuntimeError("shape mismatch"))
    assert other["status"] == "error" and "traceback" in other

"""Real GPU checks: run only where torch sees a CUDA device (scripts/gpu_check.sh on a
lent GPU). Their logic is covered on CPU by tests/test_backends_fakes.py."""

import time

import pytest

from xpubench.backends.base import Step, make_backend
from xpubench.spec import registry as specmod
from xpubench.measure.case import measure_case
from xpubench.options import RunOptions

pytestmark = pytest.mark.gpu


def _cuda_backend(precision="fp32"):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch")
    b = make_backend(f"torch:cuda:{precision}")
    b.setup()
    b.activate()
    return b, torch


def test_cuda_events_agree_with_a_synchronized_host_clock():
    b, torch = _cuda_backend()
    a = torch.randn(4096, 4096, device="cuda")
    step = Step(run=lambda: a @ a)
    b.time_block(step, 5)  # warm
    events = sorted(b.time_block(step, 20) for _ in range(7))[3]
    host = []
    for _ in range(7):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            step.run()
        torch.cuda.synchronize()
        host.append(time.perf_counter() - t0)
    host_med = sorted(host)[3]
    # two honest ways to time the same device work must agree (host adds launch gaps)
    assert events == pytest.approx(host_med, rel=0.05)


def test_device_peak_covers_a_known_allocation():
    b, torch = _cuda_backend()
    b.reset_peak_memory()
    keep = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    peak = b.peak_memory()
    assert peak["device_peak_bytes"] >= 256 << 20
    assert peak["device_peak_bytes"] < (256 << 20) * 1.05 + (64 << 20)
    del keep


def test_layernorm_case_on_cuda_has_energy_and_memory():
    b, _ = _cuda_backend("bf16")
    case = specmod.select(["normalization"], ["layernorm:forward_backward"], "default")[0]
    rec = measure_case(b, case, RunOptions(size="default", time_budget_s=0.3))
    assert rec["status"] == "ok"
    assert rec["timing_method"] == "cuda-events"
    assert rec["memory"]["device_peak_bytes"] > 0
    assert rec["energy"]["method"] in ("nvml-counter", "nvml-power")
    assert rec["energy"]["joules_per_step"] > 0
    assert 0 < rec["error_vs_fp32"] < 0.05


def test_jax_gpu_memory_stats_and_timing():
    pytest.importorskip("jax")
    import jax

    try:
        jax.devices("gpu")
    except RuntimeError:
        pytest.skip("no GPU visible to JAX")
    b = make_backend("jax:gpu:bf16")
    b.setup()
    b.activate()
    case = specmod.select(["normalization"], ["layernorm:forward_backward"], "smoke")[0]
    rec = measure_case(b, case, RunOptions(size="smoke", time_budget_s=0.2, telemetry=False))
    assert rec["status"] == "ok" and rec["compile_s"] > 0
    assert rec["memory"]["device_peak_bytes"] > 0

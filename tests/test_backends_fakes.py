"""GPU and TPU paths, tested on CPU with fake device lists, fake torch.cuda and
fake availability probes. The real paths run on a lent GPU (scripts/gpu_check.sh)."""

from types import SimpleNamespace

import pytest

from xpubench.backends import availability as av
from xpubench.backends.jax import availability as jav
from xpubench.backends.jax import backend as jax_backend
from xpubench.backends.torch import availability as tav
from xpubench.backends.torch import backend as torch_backend
from xpubench.backends.base import BackendSpec, Step, make_backend


# ---------------------------------------------------------------- availability probes
def test_torch_cuda_availability_reasons(monkeypatch):
    b = make_backend("torch:cuda:bf16")
    monkeypatch.setattr(tav, "torch_cuda_build", lambda: None)
    assert "CPU-only build" in b.availability().reason
    monkeypatch.setattr(tav, "torch_cuda_build", lambda: "12.4")
    monkeypatch.setattr(av, "nvidia_gpu_count", lambda: 0)
    assert b.availability().reason == "no CUDA device visible"
    monkeypatch.setattr(av, "nvidia_gpu_count", lambda: 1)
    assert b.availability().ok
    assert "no CUDA device 1" in make_backend("torch:cuda1:bf16").availability().reason
    specs = [str(s) for s in torch_backend.TorchBackend.default_specs()]
    assert "torch:cuda:tf32" in specs and "torch:cpu:fp32" in specs
    # fp8 runs when asked for (-b torch:cuda:fp8), not in the default set users compare
    assert "torch:cuda:fp8" not in specs and make_backend("torch:cuda:fp8").availability().ok


def test_gpu_count_from_procfs_and_visible_devices(tmp_path, monkeypatch):
    for i in range(4):
        (tmp_path / f"0000:0{i}:00.0").mkdir()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert av.nvidia_gpu_count(str(tmp_path), "/nonexistent*") == 4
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert av.nvidia_gpu_count(str(tmp_path), "/nonexistent*") == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert av.nvidia_gpu_count(str(tmp_path), "/nonexistent*") == 0


def test_torch_cuda_build_read_without_import():
    # this machine's torch is the CPU build: version.py says cuda = None
    assert tav.torch_cuda_build() is None


def test_jax_gpu_and_tpu_availability_reasons(monkeypatch):
    monkeypatch.setattr(jav, "jax_gpu_plugin", lambda: None)
    assert "no GPU visible to JAX" in make_backend("jax:gpu:bf16").availability().reason
    monkeypatch.setattr(jav, "jax_tpu_runtime", lambda: None)
    assert "no TPU visible to JAX" in make_backend("jax:tpu:bf16").availability().reason
    monkeypatch.setattr(jav, "jax_tpu_runtime", lambda: "libtpu 0.0.1")
    monkeypatch.setattr(av, "tpu_chip_count", lambda: 4)
    assert make_backend("jax:tpu:bf16").availability().ok
    assert "tf32" in make_backend("jax:tpu:tf32").availability().reason


# --------------------------------------------------------------- JAX device handling
class FakeDevice:
    def __init__(self, platform, i, stats):
        self.platform, self.id, self._stats = platform, i, stats
        self.device_kind = {"tpu": "TPU v5 lite", "gpu": "NVIDIA H100 80GB HBM3"}.get(platform, "cpu")

    def memory_stats(self):
        if isinstance(self._stats, Exception):
            raise self._stats
        return self._stats


def fake_devices(platform):
    if platform == "cpu":
        return [FakeDevice("cpu", 0, None)]
    if platform in ("tpu", "gpu"):
        return [FakeDevice(platform, i, {"peak_bytes_in_use": 1000 + i, "bytes_in_use": 10, "bytes_limit": 1 << 34})
                for i in range(4)]
    raise RuntimeError(f"Unknown backend: '{platform}' requested, but no platforms that are instances of {platform} are present.")


@pytest.mark.parametrize("platform", ["tpu", "gpu"])
def test_tpu_and_gpu_share_one_device_path(platform):
    b = jax_backend.JaxBackend(BackendSpec("jax", platform, "bf16", 2), devices_fn=fake_devices)
    info = b.setup()
    assert b.device.platform == platform and b.device.id == 2
    assert info["device_kind"] == b.device.device_kind
    mem = b.peak_memory()
    assert mem["device_peak_bytes"] == 1002 and "not resettable" in mem["device_method"]


def test_missing_platform_and_index_are_clear():
    with pytest.raises(RuntimeError, match="no ROCM visible to JAX"):
        jax_backend.pick_device("rocm", 0, fake_devices)
    with pytest.raises(RuntimeError, match="no tpu device 7 \\(4 visible\\)"):
        jax_backend.pick_device("tpu", 7, fake_devices)


def test_cpu_memory_stats_none_or_raising_is_null_with_reason():
    m = jax_backend.device_peak_memory(FakeDevice("cpu", 0, None))
    assert m["device_peak_bytes"] is None and "does not report" in m["device_reason"]
    m = jax_backend.device_peak_memory(FakeDevice("tpu", 0, NotImplementedError("nope")))
    assert m["device_peak_bytes"] is None and "failed" in m["device_reason"]


def test_real_jax_cpu_reports_no_memory_stats():
    b = make_backend("jax:cpu:fp32")
    b.setup()
    assert b.peak_memory()["device_peak_bytes"] is None


# ------------------------------------------------------------ torch CUDA timing logic
class FakeEvent:
    clock = 0.0

    def __init__(self, enable_timing=False):
        self.t = None

    def record(self):
        self.t = FakeEvent.clock

    def synchronize(self):
        FakeCuda.waited += 1

    def elapsed_time(self, other):  # milliseconds, as CUDA reports
        return (other.t - self.t) * 1e3


class FakeCuda:
    waited = 0
    syncs = 0
    Event = FakeEvent

    @staticmethod
    def synchronize(device=None):
        FakeCuda.syncs += 1


def test_cuda_event_timing_waits_and_converts_ms(monkeypatch):
    b = torch_backend.TorchBackend(BackendSpec("torch", "cuda", "fp32"))
    b._torch = SimpleNamespace(cuda=FakeCuda)
    b.device = SimpleNamespace(type="cuda")

    def step():  # each "kernel" advances the device clock by 2 ms
        FakeEvent.clock += 0.002

    FakeCuda.waited = FakeCuda.syncs = 0
    elapsed = b.time_block(Step(run=step), 5)
    assert elapsed == pytest.approx(0.010)
    assert FakeCuda.syncs == 1  # earlier work drained before the start event
    assert FakeCuda.waited == 1  # host waited on the end event before reading it
    assert b.timing_method == "cuda-events"


def test_cuda_cold_cache_flushes_outside_the_timed_window(monkeypatch):
    b = torch_backend.TorchBackend(BackendSpec("torch", "cuda", "fp32"))
    b._torch = SimpleNamespace(cuda=FakeCuda)
    b.device = SimpleNamespace(type="cuda")
    b.cold_cache = True
    flushes = []

    class Buf:
        def zero_(self):  # a flush "takes" 1 ms of device time, outside the events
            flushes.append(1)
            FakeEvent.clock += 0.001

    b._flush_buf = Buf()

    def step():
        FakeEvent.clock += 0.002

    assert b.time_block(Step(run=step), 4) == pytest.approx(0.008)
    assert len(flushes) == 4


def test_fp32_mode_turns_tf32_and_reduced_reductions_off():
    import torch

    for prec, tf32 in (("fp32", False), ("tf32", True)):
        b = make_backend(f"torch:cpu:{prec}")
        b.setup()
        b.activate()
        assert torch.backends.cuda.matmul.allow_tf32 is tf32
        assert torch.backends.cudnn.allow_tf32 is tf32
        assert torch.get_float32_matmul_precision() == ("high" if tf32 else "highest")
    b = make_backend("torch:cpu:fp32")
    b.setup()
    b.activate()
    assert torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction is False


def test_only_jax_accelerators_need_a_fresh_worker_per_case():
    assert make_backend("jax:tpu:bf16").fresh_worker_per_case
    assert make_backend("jax:gpu:fp32").fresh_worker_per_case
    assert not make_backend("jax:cpu:fp32").fresh_worker_per_case
    assert not make_backend("torch:cuda:fp32").fresh_worker_per_case


# ------------------------------------------------- what the harness asks of a backend
@pytest.mark.parametrize("spec,kind,key", [
    ("torch:cpu:fp32", "cpu", "cpu"), ("torch:cuda:bf16", "cuda", "cuda0"), ("torch:cuda1:fp16", "cuda", "cuda1"),
    ("jax:cpu:fp32", "cpu", "cpu"), ("jax:gpu2:bf16", "cuda", "cuda2"), ("jax:tpu:bf16", "tpu", "tpu0"),
])
def test_device_kind_and_key_come_from_the_backend(spec, kind, key):
    b = make_backend(spec)
    assert (b.device_kind, b.device_key) == (kind, key)


def test_framework_software_is_named_by_each_backend():
    assert torch_backend.TorchBackend.software == ("torch",)
    assert set(jax_backend.JaxBackend.software) == {"jax", "jaxlib", "flax", "optax"}
    assert "libtpu" in jax_backend.JaxBackend.software_optional


@pytest.mark.parametrize("spec", ["torch:cpu:bf16", "jax:cpu:bf16"])
def test_contexts_implement_the_builder_protocol(spec):
    import numpy as np

    from xpubench.backends.base import Context

    b = make_backend(spec)
    b.setup()
    ctx = b.context()
    assert isinstance(ctx, Context)
    x = ctx.activation("x", (2, 3), requires_grad=True)
    assert str(x.dtype).endswith("bfloat16")
    placed = ctx.put({"w": np.ones((2, 3), np.float32)})
    assert ctx.numpy(placed["w"]).dtype == np.float64 and ctx.numpy(placed["w"]).sum() == 6.0
    with ctx.autocast():
        y = ctx.compile(lambda a: a * 2, x)(x)
    assert ctx.numpy(y) == pytest.approx(2 * ctx.numpy(x))
    assert b.sync(y) is y and b.sync() is None

"""Backend specs and case selection: user mistakes are one clear line."""

import pytest

from xpubench.backends.base import BackendSpec, all_specs, make_backend
from xpubench.spec import registry as specmod
from xpubench.errors import UserError


@pytest.mark.parametrize("text,expected", [
    ("torch:cpu:fp32", BackendSpec("torch", "cpu", "fp32")),
    ("torch:cuda:bf16", BackendSpec("torch", "cuda", "bf16")),
    ("torch:cuda1:fp16", BackendSpec("torch", "cuda", "fp16", 1)),
    ("jax:tpu:bf16", BackendSpec("jax", "tpu", "bf16")),
    (" JAX:GPU:FP32 ", BackendSpec("jax", "gpu", "fp32")),
])
def test_parse(text, expected):
    assert BackendSpec.parse(text) == expected
    assert BackendSpec.parse(str(expected)) == expected


@pytest.mark.parametrize("text,word", [
    ("tensorflow:cpu:fp32", "unknown framework"),
    ("torch:tpu:fp32", "unknown device"),
    ("torch:cpu:fp64", "unknown precision"),
    ("torch:cpu", "bad backend"),
    ("torch:cpu1:fp32", "cpu takes no index"),
])
def test_parse_rejects_with_accepted_list(text, word):
    with pytest.raises(UserError) as e:
        BackendSpec.parse(text)
    msg = str(e.value)
    assert word in msg and "accepted" in msg and "torch:cpu:fp32" in msg and "\n" not in msg


def test_availability_has_reasons_for_what_this_machine_lacks():
    for s in all_specs():
        a = make_backend(s).availability()
        assert a.ok or a.reason, s
    assert make_backend("torch:cpu:fp32").availability().ok
    assert "CUDA" in make_backend("torch:cpu:tf32").availability().reason


def test_selection_by_suite_and_glob():
    cases = specmod.select(["normalization"], None, "smoke")
    assert {c.name for c in cases} == {"batchnorm1d", "batchnorm2d", "instancenorm2d", "groupnorm",
                                       "layernorm", "rmsnorm"}
    assert all(c.mode in ("forward", "forward_backward") for c in cases)
    ln = specmod.select(None, ["layernorm:forward_backward"], "smoke")
    assert [c.full_name for c in ln] == ["normalization/layernorm[b=2,t=16,d=64]:forward_backward"]
    drop = specmod.select(["dropout"], None, "smoke")
    assert sorted({c.params["p"] for c in drop}) == [0.1, 0.5]


@pytest.mark.parametrize("args,word", [
    ((["nope"], None, "smoke"), "unknown suite"),
    ((None, ["zzz*"], "smoke"), "no case matches"),
    ((None, None, "huge"), "unknown size"),
])
def test_selection_errors(args, word):
    with pytest.raises(UserError, match=word):
        specmod.select(*args)


def test_every_case_declares_its_work():
    for c in specmod.all_cases("smoke"):
        w = c.work
        assert w.units > 0, c.full_name
        assert w.flops is None or w.flops > 0
        assert w.flops_kind in specmod.FLOPS_KINDS
        for p in c.workload.precisions:
            nbytes, ws = w.bytes_at(p), w.working_set_at(p)
            assert nbytes is None or 0 < ws <= nbytes, c.full_name  # a working set is at most what moves


def test_reimporting_a_suite_module_replaces_its_workloads_but_clashes_are_errors():
    import importlib

    import xpubench.suites.dropout as d

    importlib.reload(d)  # what pytester's sys.modules restore amounts to
    assert specmod.load_all()[("dropout", "dropout")] is d.dropout
    from xpubench.spec.registry import Work, Workload, register

    with pytest.raises(ValueError, match="declared twice"):
        register(Workload(suite="dropout", name="dropout", modes=("forward",), unit="x", sizes={},
                          work=lambda p, m: Work(1), module="someone.else"))


# --------------------------------------------------------------------------- default backends
_AMD_FLAGS = "fpu sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx512_bf16"
_INTEL_AMX_FLAGS = _AMD_FLAGS + " avx512_fp16 avx_vnni amx_tile amx_bf16 amx_int8"


def _fake_cpuinfo(monkeypatch, vendor: str, model: str, flags: str) -> None:
    from xpubench.hardware import cpu as cpu_module

    text = "".join(f"processor\t: {i}\nvendor_id\t: {vendor}\nmodel name\t: {model}\nflags\t\t: {flags}\n"
                   f"physical id\t: 0\ncore id\t\t: {i}\n\n" for i in range(2))
    real = cpu_module.read_text
    monkeypatch.setattr(cpu_module, "read_text", lambda path: text if path == "/proc/cpuinfo" else real(path))


@pytest.mark.parametrize("vendor,model,flags", [
    ("AuthenticAMD", "AMD EPYC 9B14", _AMD_FLAGS),
    ("GenuineIntel", "Intel(R) Xeon(R) Platinum 8581C", _INTEL_AMX_FLAGS),  # AVX512-FP16 and AMX
])
def test_default_cpu_backends_are_fp32_and_bf16_of_each_framework_whatever_the_flags(monkeypatch, vendor, model,
                                                                                       flags):
    from xpubench.backends import availability as av
    from xpubench.backends.base import default_specs
    from xpubench.hardware.cpu import cpu_info

    _fake_cpuinfo(monkeypatch, vendor, model, flags)
    monkeypatch.setattr(av, "nvidia_gpu_count", lambda *a, **k: 0)
    monkeypatch.setattr(av, "tpu_chip_count", lambda *a, **k: 0)
    info = cpu_info()
    assert info["vendor"] == vendor and info["flags"]["avx512_bf16"]
    assert info["flags"]["avx512_fp16"] == ("avx512_fp16" in flags)  # the fake reaches the fingerprint
    # fp16 and int8 on a CPU (emulated, or refused by oneDNN primitives) only when asked for
    assert sorted(map(str, default_specs())) == ["jax:cpu:bf16", "jax:cpu:fp32", "torch:cpu:bf16", "torch:cpu:fp32"]


def test_default_gpu_backends(monkeypatch):
    from xpubench.backends import availability as av
    from xpubench.backends.base import default_specs
    from xpubench.backends.jax import availability as jav
    from xpubench.backends.torch import availability as tav

    _fake_cpuinfo(monkeypatch, "GenuineIntel", "Intel(R) Xeon(R)", _INTEL_AMX_FLAGS)
    monkeypatch.setattr(av, "nvidia_gpu_count", lambda *a, **k: 1)
    monkeypatch.setattr(tav, "torch_cuda_build", lambda: "12.4")
    monkeypatch.setattr(jav, "jax_gpu_plugin", lambda: "jax-cuda12-plugin 0.6.0")
    specs = {str(s) for s in default_specs()}
    assert {s for s in specs if ":cuda:" in s} == {f"torch:cuda:{p}" for p in ("fp32", "tf32", "bf16", "fp16")}
    assert {s for s in specs if ":gpu:" in s} == {"jax:gpu:fp32", "jax:gpu:bf16"}
    assert {s for s in specs if ":cpu:" in s} == {"torch:cpu:fp32", "torch:cpu:bf16", "jax:cpu:fp32", "jax:cpu:bf16"}

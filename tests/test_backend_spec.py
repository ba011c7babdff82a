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
        assert w.bytes is None or w.bytes > 0


def test_reimporting_a_suite_module_replaces_its_workloads_but_clashes_are_errors():
    import importlib

    import xpubench.suites.dropout as d

    importlib.reload(d)  # what pytester's sys.modules restore amounts to
    assert specmod.load_all()[("dropout", "dropout")] is d.dropout
    from xpubench.spec.registry import Work, Workload, register

    with pytest.raises(ValueError, match="declared twice"):
        register(Workload(suite="dropout", name="dropout", modes=("forward",), unit="x", sizes={},
                          work=lambda p, m: Work(1), module="someone.else"))

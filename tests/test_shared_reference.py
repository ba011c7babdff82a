"""A run's reduced-precision records get their error against fp32 from the fp32 slot's own outputs."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from xpubench.backends.base import BackendSpec, make_backend
from xpubench.measure.record import accuracy_vs_fp32
from xpubench.measure.reference import AwaitingFp32, plan_references
from xpubench.options import RunOptions
from xpubench.run.schedule import interleaved
from xpubench.run.supervisor import Runner
from xpubench.spec import registry as specmod


@dataclass
class FakeCase:
    full_name: str


@dataclass
class FakeSlot:
    case: FakeCase
    spec: BackendSpec
    pass_index: int = 0


def slots(*texts: str, case: str = "c"):
    return [FakeSlot(FakeCase(case), BackendSpec.parse(t)) for t in texts]


def test_fp32_first_saves_and_the_reduced_slots_read():
    plan = plan_references(slots("torch:cpu:fp32", "torch:cpu:bf16"), "/d")
    assert plan[0].save and not plan[0].judge and plan[1].load == plan[0].save and not plan[1].offers


def test_a_reduced_slot_first_offers_its_outputs_and_fp32_judges_them():
    plan = plan_references(slots("torch:cpu:bf16", "torch:cpu:fp32", "torch:cpu:fp16"), "/d")
    assert plan[0].offers
    assert plan[1].judge == {"torch:cpu:bf16": plan[0].save}
    assert plan[1].save and plan[2].load == plan[1].save  # fp16 comes after: fp32 also saves


def test_only_twins_of_the_same_framework_and_device_and_case_share():
    plan = plan_references(slots("jax:cpu:bf16", "torch:cpu:fp32") + slots("torch:cpu:bf16", case="other"), "/d")
    assert plan == {}


def test_held_records_are_filled_by_their_fp32_slot_or_say_why_not():
    plan_slots = slots("torch:cpu:bf16", "torch:cpu:fp32")
    waiting = AwaitingFp32(plan_slots, plan_references(plan_slots, "/d"))
    bf16 = {"backend": "torch:cpu:bf16", "status": "ok"}
    assert waiting.take(0, bf16) == []
    fp32 = {"backend": "torch:cpu:fp32", "status": "ok",
            "reference_errors": {"torch:cpu:bf16": {"error_vs_fp32": 0.01, "error_vs_fp32_detail": {"y": 0.01}}}}
    assert waiting.take(1, fp32) == [bf16, fp32]
    assert bf16["error_vs_fp32"] == 0.01 and "reference_errors" not in fp32

    waiting = AwaitingFp32(plan_slots, plan_references(plan_slots, "/d"))
    bf16 = {"backend": "torch:cpu:bf16", "status": "ok"}
    waiting.take(0, bf16)
    assert waiting.release() == [bf16] and "before its fp32 slot" in bf16["warnings"][0]


@pytest.mark.parametrize("fp32_first", [True, False])
def test_the_shared_error_is_the_twins_error(fp32_first):
    """Either order of a real run gives the error an fp32 twin built in the same process gives."""
    specs = [BackendSpec.parse("torch:cpu:fp32"), BackendSpec.parse("torch:cpu:bf16")]
    (case,) = [c for c in specmod.select(["normalization"], None, "smoke")
               if c.name == "layernorm" and c.mode == "forward"]
    opts = RunOptions(size="smoke", time_budget_s=0.02, telemetry=False, seed=0)
    seed = next(s for s in range(50)  # a seed whose order puts fp32 where this test wants it
                if (interleaved([case], specs, seed=s, name=lambda c: c.full_name)[0][0].spec.precision
                    == "fp32") == fp32_first)
    records = {r["backend"]: r for r in Runner(specs, [case], None, replace(opts, seed=seed)).run().records}
    got = records["torch:cpu:bf16"]
    assert got["status"] == "ok" and "reference_errors" not in records["torch:cpu:fp32"]

    bf16 = make_backend(specs[1])
    bf16.setup()
    bf16.activate()
    step = bf16.build(case, options=opts)
    want, detail = accuracy_vs_fp32(bf16, case, step, opts)
    assert got["error_vs_fp32"] == pytest.approx(want, rel=1e-6)
    assert set(got["error_vs_fp32_detail"]) == set(detail)


def test_mnist_weights_are_trained_once_and_loaded_from_the_disk_cache(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from xpubench.suites.inference import mnist

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(mnist, "_TRAINED", {})
    trained = mnist.trained_state(seed=3)
    (cached,) = (tmp_path / "xpubench").glob("mnist_cnn-*-seed3.pt")
    monkeypatch.setattr(mnist, "_TRAINED", {})  # a new worker: nothing in memory
    monkeypatch.setattr(torch.optim, "Adadelta", None)  # and no training allowed
    loaded = mnist.trained_state(seed=3)
    assert cached.exists() and loaded.keys() == trained.keys()
    assert all(torch.equal(loaded[k], trained[k]) for k in trained)


def test_run_records_carry_the_cases_whole_cost():
    specs = [BackendSpec.parse("torch:cpu:fp32")]
    (case,) = [c for c in specmod.select(["normalization"], None, "smoke")
               if c.name == "layernorm" and c.mode == "forward"]
    opts = RunOptions(size="smoke", time_budget_s=0.02, telemetry=False, seed=0)
    (rec,) = Runner(specs, [case], None, opts).run().records
    t = rec["time_s"]
    assert rec["case_wall_s"] >= sum(t["samples"]) * t["iterations_per_round"] > 0

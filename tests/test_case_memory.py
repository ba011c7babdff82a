"""Host memory per case: the case's own peak above a baseline taken before its build,
whatever ran before it in the same worker."""

from __future__ import annotations

import pytest

from xpubench.backends.base import make_backend
from xpubench.measure.case import measure_case
from xpubench.options import RunOptions
from xpubench.spec import registry as specmod

MIB = 1 << 20


@pytest.fixture
def memory_cases(monkeypatch):
    specmod.load_all()
    monkeypatch.setattr(specmod, "_REGISTRY", dict(specmod._REGISTRY))  # the suite leaves with the test
    import importlib

    import tests.memory_suite as ms

    importlib.reload(ms)  # registers into the copy
    return {c.params["mib"]: c for c in specmod.select(["memory"], None, "smoke")}


def test_a_case_after_a_bigger_one_reports_its_own_peak(memory_cases):
    backend = make_backend("torch:cpu:fp32")
    backend.setup(1)
    opts = RunOptions(size="smoke", time_budget_s=0.05, accuracy=False)
    big = measure_case(backend, memory_cases[1024], opts)
    small = measure_case(backend, memory_cases[256], opts)
    for rec, mib in ((big, 1024), (small, 256)):
        assert rec["status"] == "ok", rec.get("reason")
        mem = rec["memory"]
        assert mem["host_peak_bytes"] == pytest.approx(mib * MIB, rel=0.05)
        assert "above the case's baseline" in mem["host_method"]
        assert mem["host_rss_peak_bytes"] >= mem["host_peak_bytes"]


def test_energy_without_a_meter_is_not_measured_unless_an_estimate_is_asked_for(memory_cases):
    backend = make_backend("torch:cpu:fp32")
    backend.setup(1)
    case = memory_cases[256]
    plain = measure_case(backend, case, RunOptions(size="smoke", time_budget_s=0.05, accuracy=False))
    asked = measure_case(backend, case, RunOptions(size="smoke", time_budget_s=0.05, accuracy=False,
                                                   energy_estimate=True))
    import os

    if os.path.exists("/sys/class/powercap/intel-rapl:0/energy_uj") and os.access(
            "/sys/class/powercap/intel-rapl:0/energy_uj", os.R_OK):
        pytest.skip("RAPL is readable here: energy is measured, not estimated")
    assert plain["energy"]["method"] == "unavailable"
    assert plain["energy"]["joules_per_step"] is None
    assert "not measured" in plain["energy"]["reason"] and "--energy-estimate" in plain["energy"]["reason"]
    assert asked["energy"]["method"] == "estimate"
    assert asked["time_s"]["window_s"] < 1.0  # no 1 s energy window for a model

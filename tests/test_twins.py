"""Ratios between twin backends of a case, with their CIs."""

from __future__ import annotations

import math

import pytest

from xpubench.regress.twins import twin_kind, twin_ratios


def rec(backend, median, ci=None, passes=None, case="c", status="ok"):
    t = {"median": median, "ci95": ci}
    if passes:
        t["processes"] = [{"pass": i, "median": m} for i, m in enumerate(passes)]
    return {"suite": "s", "case": case, "mode": "forward", "backend": backend, "status": status, "time_s": t}


def test_twins_differ_in_exactly_one_part_on_one_device():
    assert twin_kind("torch:cpu:fp32", "torch:cpu:bf16") == "precision"
    assert twin_kind("jax:cpu:fp32", "torch:cpu:fp32") == "framework"
    assert twin_kind("jax:cpu:bf16", "torch:cpu:fp32") is None
    assert twin_kind("torch:cuda:fp32", "torch:cpu:fp32") is None


def test_one_pass_combines_the_medians_cis_on_the_log_scale():
    (r,) = twin_ratios([rec("torch:cpu:bf16", 2.0, [1.9, 2.1]), rec("torch:cpu:fp32", 1.0, [0.98, 1.02])])
    assert (r["base"], r["other"], r["kind"]) == ("torch:cpu:fp32", "torch:cpu:bf16", "precision")
    assert r["ratio"] == pytest.approx(2.0)
    half = math.hypot(math.log(2.0 / 1.9), math.log(1.0 / 0.98))  # the wider side of each
    assert r["ci95"] == pytest.approx([2.0 * math.exp(-half), 2.0 * math.exp(half)])


def test_k_passes_are_paired_by_pass():
    """A drift shared by both backends in a pass cancels in the paired ratio."""
    base = rec("torch:cpu:fp32", 1.0, passes=[1.0, 1.5, 0.8])
    other = rec("torch:cpu:bf16", 0.5, passes=[0.5, 0.75, 0.4])
    (r,) = twin_ratios([base, other])
    assert r["ratio"] == pytest.approx(0.5)
    assert r["ci95"] == pytest.approx([0.5, 0.5])
    assert "paired over 3" in r["method"]


def test_failed_records_have_no_twin_ratio():
    assert twin_ratios([rec("torch:cpu:fp32", 1.0), rec("torch:cpu:bf16", 0.5, status="error")]) == []

"""Frameworks come from the entry-point group ``xpubench.backends``: one from a separate,
test-only distribution (tests/data/numpy_backend) is listed and runs a case."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xpubench.backends import registry
from xpubench.backends.base import BackendSpec, Context, all_specs, make_backend
from xpubench.errors import UserError
from xpubench.results.reader import read_run

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "tests" / "data" / "numpy_backend"  # xpb_numpy + its .dist-info


def _env() -> dict[str, str]:
    # The worker is a spawned process: it finds the distribution through PYTHONPATH too.
    path = os.pathsep.join(p for p in (str(DIST), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "XPUBENCH_SUITE_MODULES": "xpb_numpy.suite"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xpubench", *args], capture_output=True,
                          text=True, cwd=ROOT, env=_env(), timeout=300)


@pytest.fixture
def with_numpy_dist(monkeypatch):
    monkeypatch.syspath_prepend(str(DIST))
    registry.reload()
    yield
    monkeypatch.undo()
    registry.reload()


def test_torch_and_jax_are_registered_like_any_third_party():
    classes = registry.backend_classes()
    assert {"torch", "jax"} <= set(classes) and not registry.broken()
    assert classes["torch"].__module__ == "xpubench.backends.torch.backend"
    ours = md.distribution("xpubench").entry_points
    assert {ep.name for ep in ours if ep.group == registry.GROUP} == {"torch", "jax", "onnxruntime"}


def test_a_registered_distribution_adds_a_framework(with_numpy_dist):
    assert "numpy" in registry.backend_classes()
    spec = BackendSpec.parse("numpy:cpu:fp32")
    assert spec == BackendSpec("numpy", "cpu", "fp32")
    assert str(spec) in {str(s) for s in all_specs()}
    b = make_backend(spec)
    assert b.device_kind == "cpu" and b.device_key == "cpu"
    assert isinstance(b.context(), Context)  # it implements the protocol builders rely on
    with pytest.raises(UserError, match="unknown device 'cuda' for numpy"):
        BackendSpec.parse("numpy:cuda:fp32")
    from xpubench.hardware.fingerprint import software_versions

    assert software_versions()["xpb-numpy"] == "0.1"  # the backend's software, in the fingerprint


def test_a_broken_registration_is_named_and_leaves_the_others(tmp_path, monkeypatch):
    info = tmp_path / "broken_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[xpubench.backends]\nghost = no_such_module_xyz:Backend\n"
                                           "notone = json:JSONDecoder\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reload()
    try:
        assert {"torch", "jax"} <= set(registry.backend_classes())
        assert "ModuleNotFoundError" in registry.broken()["ghost"]
        assert "not a xpubench Backend subclass" in registry.broken()["notone"]
        with pytest.raises(UserError, match="framework 'ghost' in backend 'ghost:cpu:fp32' failed to load"):
            BackendSpec.parse("ghost:cpu:fp32")
    finally:
        monkeypatch.undo()
        registry.reload()


def test_the_third_party_backend_appears_in_list_and_runs_a_case(tmp_path):
    listed = _cli("list", "--size", "smoke", "--suite", "numpy_only")
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "numpy:cpu:" in line]
    assert any("numpy:cpu:fp32" in r and "yes" in r for r in rows), listed.stdout
    assert any("numpy:cpu:bf16" in r and "fp32 only" in r for r in rows)
    assert "saxpy" in listed.stdout

    r = _cli("run", "--size", "smoke", "-s", "numpy_only", "-b", "numpy:cpu:fp32", "--time-budget", "0.05",
             "--out", str(tmp_path), "--machine-id", "m")
    assert r.returncode == 0, r.stderr + r.stdout
    [path] = [p for p in (tmp_path / "m").rglob("*.json") if p.name != "ceilings.json"]
    doc = read_run(path)
    [m] = doc["measurements"]
    assert (m["backend"], m["framework"], m["case"], m["status"]) == \
        ("numpy:cpu:fp32", "numpy", "saxpy[n=4096]", "ok"), m.get("reason")
    assert m["time_s"]["median"] > 0 and m["units_per_step"] == 4096
    assert doc["run"]["backend_info"]["numpy:cpu:fp32"]["device_key"] == "cpu"
    json.dumps(doc, allow_nan=False)

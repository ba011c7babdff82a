"""Distributed suite with real processes (2 ranks on CPU, smoke sizes): records, parity, failures, two nodes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xpubench.backends.base import make_backend
from xpubench.options import RunOptions
from xpubench.run.distributed import measure_distributed
from xpubench.run.rank import FAULT_ENV
from xpubench.spec import registry

pytestmark = pytest.mark.slow
OPTS = RunOptions(size="smoke", telemetry=False, time_budget_s=0.1, min_rounds=3, case_timeout_s=240)


def _case(name: str, world: int, launch: str = "processes", scaling: str = "weak", **extra):
    base = registry.select(["distributed"], [name], "smoke")[0]
    return registry.Case(base.workload, "smoke", base.mode,
                         {**base.params, "launch": launch, "world_size": world, "scaling": scaling, **extra})


def _leftovers(rec: dict) -> list[int]:
    """Processes whose command line names this case's job file."""
    job = rec["launch"]["command"].split()[-1]
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if job.encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


@pytest.mark.parametrize("world", [1, 2])
def test_torch_ddp_over_gloo_gives_an_ok_record_with_every_rank(world):
    rec = measure_distributed(make_backend("torch:cpu:fp32"), _case("mnist_cnn", world), OPTS)
    assert rec["status"] == "ok", rec.get("reason")
    assert rec["world_size"] == world and rec["nnodes"] == 1
    assert [r["rank"] for r in rec["ranks"]] == list(range(world))
    assert rec["throughput_per_s"] == pytest.approx(rec["per_device_throughput_per_s"] * world)
    assert rec["notes"]["process_group"] == "gloo"
    assert 0.0 <= rec["communication"]["share"] < 1.0
    assert not _leftovers(rec)


@pytest.mark.parametrize("model,impl", [("mnist_cnn", "ddp"), ("mnist_cnn", "fully_shard"), ("gpt", "fully_shard")])
def test_gradients_equal_the_single_process_step_on_the_concatenated_batch(model, impl):
    """Strong scaling: two ranks take halves of the batch one rank takes whole."""
    torch_backend = make_backend("torch:cpu:fp32")
    one = measure_distributed(torch_backend, _case(model, 1, scaling="strong", batch=4, impl=impl), OPTS,
                              check=True)
    two = measure_distributed(torch_backend, _case(model, 2, scaling="strong", batch=4, impl=impl), OPTS,
                              check=True)
    assert one["status"] == two["status"] == "ok", (one.get("reason"), two.get("reason"))
    for key in ("loss", "grad_first", "grad_last"):
        np.testing.assert_allclose(two["check"][key], one["check"][key], rtol=1e-4, atol=1e-6)
    assert np.abs(np.asarray(one["check"]["grad_first"])).sum() > 0
    assert ("fully_shard" if impl == "fully_shard" else "DistributedDataParallel") in two["notes"]["implementation"]


@pytest.mark.parametrize("launch", ["devices", "processes"])
def test_jax_over_two_devices_or_two_processes(launch):
    backend = make_backend("jax:cpu:fp32")
    one = measure_distributed(backend, _case("mnist_cnn", 1, launch, scaling="strong", batch=4), OPTS, check=True)
    two = measure_distributed(backend, _case("mnist_cnn", 2, launch, scaling="strong", batch=4), OPTS, check=True)
    assert one["status"] == two["status"] == "ok", (one.get("reason"), two.get("reason"))
    assert len(two["devices"]) == 2
    assert two["simulated_devices"] is (launch == "devices")
    assert len(two["ranks"]) == (1 if launch == "devices" else 2)
    for key in ("loss", "grad_first", "grad_last"):  # the same gradients, split or whole
        np.testing.assert_allclose(two["check"][key], one["check"][key], rtol=1e-4, atol=1e-6)
    from xpubench.measure.ranks import attach_scaling

    attach_scaling([one, two])
    assert two["scaling_efficiency"] > 0 and len(two["scaling_efficiency_ci95"]) == 2


def test_a_killed_rank_is_crashed_with_its_rank_and_leaves_no_process(monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "1:kill")
    rec = measure_distributed(make_backend("torch:cpu:fp32"), _case("mnist_cnn", 2), OPTS)
    assert rec["status"] == "crashed"
    assert rec["failed_rank"] == 1 and "rank 1" in rec["reason"] and "SIGKILL" in rec["reason"]
    assert not _leftovers(rec)


def test_a_rank_that_raises_is_named(monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "0:raise")
    rec = measure_distributed(make_backend("torch:cpu:fp32"), _case("mnist_cnn", 2), OPTS)
    assert rec["status"] == "error" and rec["failed_rank"] == 0
    assert "injected fault on rank 0" in rec["reason"]
    assert not _leftovers(rec)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_over_loopback_write_one_results_file_with_nnodes_2(tmp_path):
    port = _free_port()
    common = [sys.executable, "-m", "xpubench", "run", "-s", "distributed",
              "-k", "mnist_cnn?launch=processes,impl=ddp*",
              "-b", "torch:cpu:fp32", "--size", "smoke", "--world-size", "2", "--no-telemetry",
              "--time-budget", "0.1", "--nnodes", "2", "--rdzv-endpoint", f"127.0.0.1:{port}"]
    nodes = [subprocess.Popen(common + ["--node-rank", str(i), "--out", str(tmp_path / f"node{i}")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    outs = [p.communicate(timeout=300)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outs
    files = list((tmp_path / "node0").rglob("*.json"))
    assert len(files) == 1 and not list((tmp_path / "node1").rglob("*.json"))
    (m,) = json.loads(files[0].read_text())["measurements"]
    assert m["status"] == "ok" and m["nnodes"] == 2 and m["world_size"] == 2
    assert len(m["ranks"]) == 2
    assert "node 0 writes" in outs[1]


def test_probe_collectives_writes_a_bus_bandwidth_curve(tmp_path):
    out = subprocess.run([sys.executable, "-m", "xpubench", "probe", "--collectives", "--size", "smoke",
                          "--world-size", "2", "--out", str(tmp_path), "--machine-id", "m"],
                         capture_output=True, text=True, timeout=300, env={**os.environ})
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads((tmp_path / "m" / "collectives.json").read_text())
    (entry,) = doc["collectives"]
    assert entry["world_size"] == 2 and entry["process_group"] == "gloo"
    rows = entry["ops"]["all_reduce"]
    assert [r["bytes"] for r in rows] == sorted(r["bytes"] for r in rows)
    assert all(r["busbw_bytes_per_s"] > 0 for r in rows + entry["ops"]["all_gather"])


def test_a_hung_rank_is_a_timeout_naming_it_and_the_run_goes_on(monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "1:hang")
    opts = RunOptions(size="smoke", telemetry=False, time_budget_s=0.1, min_rounds=3, case_timeout_s=60)
    rec = measure_distributed(make_backend("torch:cpu:fp32"), _case("mnist_cnn", 2), opts)
    assert rec["status"] == "timeout" and rec["failed_rank"] == 1, rec["reason"]
    assert not _leftovers(rec)


def test_torch_is_not_launched_for_one_process_over_several_devices():
    rec = measure_distributed(make_backend("torch:cpu:fp32"), _case("mnist_cnn", 2, launch="devices"), OPTS)
    assert rec["status"] == "skipped" and "one process per device" in rec["reason"]
    assert "launch" not in rec  # no process was started

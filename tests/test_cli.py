"""The CLI end to end at smoke size, and one-line errors for user mistakes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xpubench.results.reader import read_run

XPUBENCH = [sys.executable, "-m", "xpubench"]
ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, timeout=600, **kw):
    return subprocess.run(XPUBENCH + list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


def only_file(folder: Path) -> Path:
    files = [f for f in folder.rglob("*.json") if f.name != "ceilings.json"]
    assert len(files) == 1, files
    return files[0]


def test_smoke_run_writes_a_valid_file_with_every_case_ok(tmp_path):
    r = run_cli("run", "--size", "smoke", "-s", "normalization", "-s", "dropout",
                "-b", "torch:cpu:fp32", "-b", "torch:cpu:bf16", "--time-budget", "0.05",
                "--out", str(tmp_path), "--machine-id", "testbox")
    assert r.returncode == 0, r.stderr + r.stdout
    doc = read_run(only_file(tmp_path / "testbox"))
    ms = doc["measurements"]
    assert len(ms) == 16 * 2
    assert {m["status"] for m in ms} == {"ok"}, [(m["case"], m["status"], m.get("reason")) for m in ms]
    assert doc["machine"]["machine_id"] == "testbox"
    assert doc["run"]["finished_at"] and doc["run"]["interrupted"] is False
    for m in ms:
        t = m["time_s"]
        assert t["median"] > 0 and t["rounds"] >= 5 and len(t["samples"]) == t["rounds"]
        assert t["ci95"][0] <= t["median"] <= t["ci95"][1]
        assert t["stop_reason"] in ("ci_target", "time_budget", "max_rounds")
        assert m["throughput_per_s"] == pytest.approx(m["units_per_step"] / t["median"])
        assert m["first_call_s"] > 0
        if m["precision"] == "bf16":
            assert isinstance(m["error_vs_fp32"], float) and 0 < m["error_vs_fp32"] < 0.1
    assert "median" in r.stdout and "throughput" in r.stdout  # the summary table


@pytest.mark.parametrize("args,word", [
    (["run", "-b", "torch:gpu:fp32"], "unknown device"),
    (["run", "-b", "mxnet:cpu:fp32"], "unknown framework"),
    (["run", "-k", "no_such_case"], "no case matches"),
    (["run", "-s", "nosuite"], "unknown suite"),
    (["run", "--size", "galactic"], "unknown size"),
    (["run", "--machine-id", "bad id/with slash"], "machine"),
])
def test_user_mistakes_are_one_line_no_traceback(args, word, tmp_path):
    r = run_cli(*args, "--out", str(tmp_path))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("xpubench: error:") and word in lines[0], r.stderr


def test_list_and_env_work_without_loading_frameworks():
    code = ("import sys, xpubench.cli.main as c; c.main(['list','--size','smoke']); "
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules, 'framework imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "layernorm" in r.stdout and "torch:cuda:bf16" in r.stdout
    env = run_cli("env", "--machine-id", "box1")
    assert env.returncode == 0
    assert json.loads(env.stdout)["machine_id"] == "box1"


def test_unavailable_backend_is_skipped_with_reason(tmp_path):
    r = run_cli("run", "--size", "smoke", "-k", "layernorm", "-b", "torch:cuda:bf16", "-b", "jax:tpu:bf16",
                "--out", str(tmp_path), "--machine-id", "m")
    assert r.returncode == 0, r.stderr
    ms = read_run(only_file(tmp_path))["measurements"]
    assert {m["status"] for m in ms} == {"skipped"}
    assert all(m["reason"] for m in ms)


def test_ctrl_c_keeps_a_valid_file_and_exits_nonzero(tmp_path):
    proc = subprocess.Popen(XPUBENCH + ["run", "--size", "smoke", "-b", "torch:cpu:fp32",
                                        "--time-budget", "0.5", "--out", str(tmp_path), "--machine-id", "m"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell's background job ignores SIGINT, and children inherit that:
                            # the run under test gets Ctrl-C as a terminal would deliver it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    seen: list[str] = []  # what the file looked like while waiting (for the failure message)
    # wait until at least one measurement is in the file, then interrupt
    while time.time() < deadline and proc.poll() is None:
        files = list(tmp_path.rglob("*.json"))
        if files:
            try:
                if read_run(files[0])["measurements"]:
                    break
                seen.append("no measurement yet")
            except Exception as e:
                seen.append(f"{files[0].name}: {e}")
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (seen[-3:], err[-2000:])
    doc = read_run(only_file(tmp_path))
    assert doc["run"]["interrupted"] is True
    assert 1 <= len(doc["measurements"]) < 16
    assert "INTERRUPTED" in out
    assert "Traceback" not in err

"""calibrate: power and false alarms from process medians, the calibration file compare reads, the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from xpubench.regress import calibrate as CAL
from xpubench.regress import levels as L


def test_power_grows_with_the_change_and_the_processes_and_is_alpha_at_zero():
    assert CAL.power(0.0, 0.05, 1) == pytest.approx(CAL.FALSE_ALARM_ALPHA, abs=1e-9)
    assert CAL.power(0.05, 0.05, 1) < CAL.power(0.20, 0.05, 1) < 1.0
    assert CAL.power(0.10, 0.05, 3) < CAL.power(0.10, 0.05, 10)
    assert CAL.power(0.10, 0.0, 1) == 1.0


def test_the_detectable_change_is_found_with_95_percent_power():
    sigma = 0.03
    d = L.detectable_change(sigma * math.sqrt(2), CAL.FALSE_ALARM_ALPHA)
    assert CAL.power(d, sigma, 1) == pytest.approx(0.95, abs=0.01)


def test_aa_false_alarms_count_splits_that_a_process_level_compare_flags():
    assert CAL.aa_false_alarm([1.0, 1.01, 0.99, 1.0, 1.02, 0.98], threshold=0.05) == 0.0
    # two clusters of processes far apart: some splits put one cluster on each side
    assert CAL.aa_false_alarm([1.0, 1.0001, 1.0002, 2.0, 2.0001, 2.0002], threshold=0.05) > 0
    assert CAL.aa_false_alarm([1.0, 1.1], threshold=0.05) is None


def rec(case: str, medians: list[float]) -> dict:
    return {"suite": "s", "case": case, "mode": "forward", "backend": "torch:cpu:fp32", "status": "ok",
            "time_s": {"median": medians[0], "processes": [{"pass": i, "median": m} for i, m in enumerate(medians)]}}


def test_the_calibration_file_is_the_noise_model_compare_reads(tmp_path: Path):
    a = [rec("x[n=1]", [1.0, 1.02, 0.99, 1.01]), rec("noisy[n=1]", [1.0, 1.5, 0.7, 1.2])]
    b = [rec("x[n=1]", [1.1, 1.12, 1.09, 1.11]), rec("noisy[n=1]", [1.1, 1.6, 0.8, 1.3])]
    doc = CAL.calibration_doc("box", a, b, injected=0.10, threshold=0.05, repeat_for=3, meta={})
    x, noisy = doc["cases"]["s/x[n=1]:forward|torch:cpu:fp32"], doc["cases"]["s/noisy[n=1]:forward|torch:cpu:fp32"]
    assert x["injected"]["flagged"] and not noisy["injected"]["flagged"]
    assert x["detectable"]["k3"] < x["detectable"]["one_process"] < noisy["detectable"]["one_process"]
    assert x["power"]["20%"]["k3"] > x["power"]["5%"]["k3"]
    path = tmp_path / "box" / L.CALIBRATION_FILE
    path.parent.mkdir()
    path.write_text(json.dumps(doc))
    model = L.find_calibrations([tmp_path])
    assert model.for_key(("box", "s", "x[n=1]", "forward", "torch:cpu:fp32")) == pytest.approx(x["sigma"])
    text = "\n".join(CAL.calibration_lines(doc))
    assert "s/noisy[n=1]:forward|torch:cpu:fp32" in text and "flagged" in text and "missed" in text


def test_the_command_measures_a_and_b_in_fresh_processes(monkeypatch, tmp_path: Path, capsys):
    from xpubench.cli.main import main
    from tests.verdict_suite import use_suite_module

    use_suite_module(monkeypatch)
    code = main(["calibrate", "-s", "verdicts", "-k", "spin_a", "-b", "torch:cpu:fp32", "--size", "smoke",
                 "--time-budget", "0.05", "--processes", "2", "--slowdown", "50%", "--out", str(tmp_path),
                 "--machine-id", "box"])
    assert code == 0
    doc = json.loads((tmp_path / "box" / L.CALIBRATION_FILE).read_text())
    (case,) = doc["cases"].values()
    assert len(case["a_medians"]) == 2 and len(case["b_medians"]) == 2
    assert min(case["b_medians"]) > max(case["a_medians"])  # 50% busy-wait on every call of B: never faster
    assert "calibration:" in capsys.readouterr().out

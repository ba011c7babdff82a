"""Verdict levels: process medians, mixed, a noise model, one process (unsupported), and fingerprint refusal."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from xpubench.measure.processes import compare_processes
from xpubench.regress import compare as C
from xpubench.regress import levels as L
from xpubench.results.view import Measurement


def rec(medians: list[float], *, rounds_spread: float = 0.002, case: str = "layernorm[d=8]") -> dict:
    """A record of len(medians) processes (one: no ``processes`` list), each with tight rounds."""
    procs = [{"pass": i, "status": "ok", "median": m,
              "samples": [m * (1 + rounds_spread * ((j * 7) % 5 - 2)) for j in range(30)]}
             for i, m in enumerate(medians)]
    samples = [s for p in procs for s in p["samples"]]
    t = {"median": math.exp(sum(map(math.log, medians)) / len(medians)), "samples": samples,
         "ci95": [min(medians) * 0.999, max(medians) * 1.001], "rounds": len(samples)}
    if len(medians) > 1:
        t["processes"] = procs
    return {"suite": "normalization", "case": case, "mode": "forward", "backend": "torch:cpu:fp32",
            "status": "ok", "time_s": t, "threads": 2}


def run(records: list[dict], *, day: int = 1, cpu: str = "AMD EPYC", torch: str = "2.5.0") -> dict:
    return {"schema_version": 1, "run": {"id": f"r{day}", "started_at": f"2026-01-{day:02d}T02:00:00+00:00"},
            "machine": {"machine_id": "box", "cpu": {"model": cpu}, "software": {"torch": torch}},
            "measurements": records}


def test_process_level_finds_a_real_step_and_ignores_process_noise():
    base = rec([1.00, 1.03, 0.98, 1.01, 0.99])
    assert C.judge(base, rec([1.12, 1.10, 1.13, 1.11, 1.12])).verdict == C.REGRESSION
    d = C.judge(base, rec([0.97, 1.04, 1.01, 1.00, 0.99]), threshold=0.20)
    assert d.verdict == C.UNCHANGED and d.method == L.PROCESSES
    # at 15% the trimmed test (3 of 5 processes kept per side) and the spread's upper bound
    # leave 16% resolvable: not a pass
    assert C.judge(base, rec([0.97, 1.04, 1.01, 1.00, 0.99]), threshold=0.15).verdict == C.UNRESOLVED
    # at 5% five processes that spread 2% cannot tell: said, not a silent pass
    d = C.judge(base, rec([0.97, 1.04, 1.01, 1.00, 0.99]))
    assert d.verdict == C.UNRESOLVED and "cannot resolve <" in d.note


def test_one_process_per_side_is_unsupported_however_tight_its_rounds():
    d = C.judge(rec([1.0]), rec([1.2]))
    assert d.verdict == C.UNSUPPORTED and "one process per side" in d.note
    assert not C.Comparison("m", "s", "c", "f", "b", d.verdict, 0.05, "ok", "ok").is_regression
    assert C.judge(rec([1.0]), rec([1.2]), one_process_supported=True).verdict == C.REGRESSION


def test_a_noise_model_supports_single_process_files_and_says_what_it_cannot_resolve():
    assert C.judge(rec([1.0]), rec([1.3]), sigma=0.02).verdict == C.REGRESSION
    d = C.judge(rec([1.0]), rec([1.01]), sigma=0.005)
    assert d.verdict == C.UNCHANGED and d.method == L.NOISE_MODEL
    noisy = C.judge(rec([1.0]), rec([1.08]), sigma=0.2, threshold=0.10)
    assert noisy.verdict == C.UNRESOLVED and "cannot resolve <" in noisy.note and "% here" in noisy.note


def test_mixed_sides_test_the_single_process_against_the_repeated_side():
    base = rec([1.00, 1.01, 0.99, 1.00])
    d = C.judge(base, rec([1.25]))
    assert d.method == L.PROCESSES_VS_ONE and d.verdict == C.REGRESSION
    assert C.judge(rec([1.0]), rec([1.0, 1.01, 0.99, 1.0]), threshold=0.2).verdict == C.UNCHANGED


def test_noise_from_the_history_of_base_runs(tmp_path: Path):
    history = [run([rec([m])], day=d) for d, m in ((1, 1.0), (2, 1.02), (3, 0.99), (4, 1.01))]
    model = L.noise_from_history(history)
    (sigma,) = model.sigma.values()
    assert 0.005 < sigma < 0.03 and "history of 4 runs" in model.source["box"]
    (c,) = C.compare_runs(history, [run([rec([1.3])], day=5)])
    assert c.verdict == C.REGRESSION and c.method == L.NOISE_MODEL


def test_calibration_file_round_trip(tmp_path: Path):
    path = tmp_path / "box" / L.CALIBRATION_FILE
    path.parent.mkdir()
    path.write_text(json.dumps({"machine_id": "box", "cases": {
        "normalization/layernorm[d=8]:forward|torch:cpu:fp32": {"sigma": 0.01}}}))
    model = L.find_calibrations([tmp_path])
    assert model.for_key(("box", "normalization", "layernorm[d=8]", "forward", "torch:cpu:fp32")) == 0.01
    (c,) = C.compare_runs([run([rec([1.0])])], [run([rec([1.1])], day=2)], noise=model)
    assert c.verdict == C.REGRESSION and c.method == L.NOISE_MODEL
    bad = tmp_path / "bad" / L.CALIBRATION_FILE
    bad.parent.mkdir()
    bad.write_text("{}")
    from xpubench.errors import UserError

    with pytest.raises(UserError, match="not a calibration file"):
        L.find_calibrations([bad.parent])


def test_fingerprints_that_matter_are_named_on_the_line():
    base, new = rec([1.0, 1.01, 0.99]), rec([1.3, 1.31, 1.29])
    (c,) = C.compare_runs([run([base])], [run([new], day=2, cpu="Intel Xeon")])
    assert c.verdict == C.INCOMPARABLE and "CPU AMD EPYC -> Intel Xeon" in c.note and not c.is_regression
    threads = dict(new, threads=4)
    (c,) = C.compare_runs([run([base])], [run([threads], day=2)])
    assert c.verdict == C.INCOMPARABLE and "threads 2 -> 4" in c.note
    (c,) = C.compare_runs([run([base])], [run([new], day=2, torch="2.6.0")])
    assert c.verdict == C.REGRESSION and "torch 2.5.0 -> 2.6.0" in c.note  # compared, and said


def test_detectable_change_shrinks_with_more_processes():
    few = L.detectable_change(0.05 * math.sqrt(2 / 3), 0.01, dof=4)
    many = L.detectable_change(0.05 * math.sqrt(2 / 10), 0.01, dof=18)
    assert many < few
    assert Measurement.of(rec([1.0, 2.0])).median == pytest.approx(math.sqrt(2))


def test_the_resolvable_claim_rests_on_the_spreads_upper_bound():
    # 90% upper bound of a spread from chi-square: large with few processes, towards 1 with many
    assert L.spread_upper_factor(4) == pytest.approx(1.939, abs=1e-3)
    assert L.spread_upper_factor(8) == pytest.approx(1.514, abs=1e-3)
    assert 1 < L.spread_upper_factor(200) < L.spread_upper_factor(20) < L.spread_upper_factor(8)
    base, new = rec([1.00, 1.03, 0.98, 1.01, 0.99]), rec([0.97, 1.04, 1.01, 1.00, 0.99])
    t = L.level_test(Measurement.of(base), Measurement.of(new), L.PROCESSES, None, 0.01)
    lb = [1.00, 1.03, 0.98, 1.01, 0.99]
    ln = [0.97, 1.04, 1.01, 1.00, 0.99]
    yuen = compare_processes(lb, ln)
    assert t.detectable == pytest.approx(L.detectable_change(yuen.se_log * L.spread_upper_factor(yuen.dof),
                                                             0.01, yuen.dof))
    assert t.detectable > L.detectable_change(yuen.se_log, 0.01, yuen.dof) * 1.4


def test_a_significant_change_the_confident_rule_rejects_says_why_not_unresolved():
    # +12%, clearly significant, but its CI reaches inside the 10% threshold
    base = rec([1.00, 1.04, 0.96, 1.02, 0.98, 1.01, 0.99, 1.03])
    new = rec([1.12 * x for x in (1.00, 1.04, 0.96, 1.02, 0.98, 1.01, 0.99, 1.03)])
    d = C.judge(base, new, threshold=0.10, rule=C.CONFIDENT)
    assert d.verdict == C.INSIGNIFICANT and "not confident" in d.note and d.ratio == pytest.approx(1.12)
    assert C.judge(base, new, threshold=0.10).verdict == C.REGRESSION  # the significant rule flags it


def test_a_limit_near_the_threshold_is_said_with_a_decimal(monkeypatch):
    """"cannot resolve < 5%" against a 5% threshold would read as a contradiction."""
    monkeypatch.setattr(L, "level_test", lambda *a, **k: L.LevelTest(L.PROCESSES, 1.01, (0.95, 1.07), 0.6, 0.054))
    d = C.judge(rec([1.0, 1.01, 0.99]), rec([1.0, 1.02, 1.0]))
    assert d.verdict == C.UNRESOLVED and "cannot resolve < 5.4% here" in d.note
    monkeypatch.setattr(L, "level_test", lambda *a, **k: L.LevelTest(L.PROCESSES, 1.01, (0.8, 1.3), 0.6, 0.466))
    assert "cannot resolve < 47% here" in C.judge(rec([1.0, 1.01, 0.99]), rec([1.0, 1.02, 1.0])).note

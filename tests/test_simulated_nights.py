"""The regression gate's acceptance test: 30 simulated nights from one real CPU-leg run.

Runs scripts/simulate_nights.py at smoke size on one suite, without the energy
meters (the real `xpubench run --leg cpu` then takes 20-60 s on a 2-core VM; the
30 nights of the first noise draw, the gate and the history report about 10 s
more, and each further noise draw of the same real run about 2 s). See the
script's docstring for the noise model and docs/nightly.md for what the numbers mean.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "simulate_nights.py"
# The exact acceptance is asserted on a recorded real CPU-leg run (tests/data/nights_real_run.json,
# normalization at smoke size on the 2-core VM) with fixed noise seeds: deterministic, so CI is not
# flaky. A fresh real run is still made and gated end to end (the pipeline works on today's
# machine), but its noise is today's: over 420 simulated months (21 real runs x 20 draws) the gate
# met the exact acceptance in 411 (docs/nightly.md), so that run is not held to it.
SEEDS = 5
RECORDED_RUN = ROOT / "tests" / "data" / "nights_real_run.json"


def _simulate(out: Path, *extra: str) -> dict:
    summary = out / "summary.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), *extra, "--out", str(out), "--json", str(summary)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert summary.exists(), proc.stdout[-4000:] + proc.stderr[-4000:]
    doc = json.loads(summary.read_text())
    doc["_exit"] = proc.returncode
    doc["_stdout"] = proc.stdout
    doc["_out"] = out / "seed-0" if (out / "seed-0").exists() else out / "sim"  # one draw: "sim"
    return doc


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> dict:
    """A fresh real run of the CPU leg, then its 30 nights (one noise draw)."""
    return _simulate(tmp_path_factory.mktemp("nights"), "--suite", "normalization", "--no-telemetry",
                     "--seeds", "1")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict:
    """The recorded real run, SEEDS noise draws: the acceptance test proper."""
    return _simulate(tmp_path_factory.mktemp("nights-recorded"), "--from-run", str(RECORDED_RUN),
                     "--seeds", str(SEEDS))


@pytest.mark.slow
def test_the_real_cpu_leg_ran_and_fed_three_machines_for_thirty_nights(simulated):
    assert simulated["nights"] == 30 and simulated["machines"] == ["sim-a", "sim-b", "sim-c"]
    assert simulated["measurements_per_night"] >= 10
    history = simulated["_out"] / "history"
    for machine in simulated["machines"]:
        assert len(list((history / machine).glob("*.json"))) == 30
    # every night was gated: 29 transitions x 3 machines x every measurement
    assert simulated["gate"]["comparisons"] >= 29 * 3 * simulated["measurements_per_night"]
    assert simulated["gate"]["gate"].startswith("rule confident, threshold 10%")  # the CPU leg's gate


@pytest.mark.slow
def test_the_issue_acceptance_exactly(recorded):
    """"The slowdown is flagged on night 20 and on no other night" (the fixed noise draw, seed 0)."""
    gate = recorded["gate"]
    assert recorded["seed"] == 0
    assert recorded["inject"]["night"] == 20 and recorded["inject"]["slowdown"] == pytest.approx(0.15)
    assert len(recorded["inject"]["keys"]) == 3  # one case, all three CPU backends, on sim-b
    assert gate["false_alarm_count"] == 0, gate["false_alarms"]
    assert gate["nights_the_gate_failed"] == [20]
    assert gate["detected_on_inject_night"], gate["missed_on_inject_night"]
    assert set(gate["detected_on_inject_night"]) <= set(recorded["inject"]["keys"])
    assert all(0.10 < change < 0.6 for change in gate["detected_changes"].values())
    assert gate["acceptance"] is True


@pytest.mark.slow
def test_the_acceptance_holds_in_every_noise_draw(recorded):
    """The same exact criterion over two more noise draws of the same real run (cheap: the gate only)."""
    (gate,) = [v for v in recorded["over_seeds"] if v["gate"] == recorded["gate"]["gate"]]
    assert gate["seeds"] == SEEDS
    assert gate["false_alarms_per_seed"] == [0] * SEEDS
    assert gate["seeds_flagged_on_inject_night"] == SEEDS, gate["injected_flags_per_seed"]
    assert gate["seeds_failing_acceptance"] == []


@pytest.mark.slow
def test_the_naive_gate_cries_wolf_on_the_same_nights(recorded):
    """The contrast: `xpubench compare`'s defaults (5%, per comparison) raise dozens a month."""
    by_gate = {v["gate"]: v for v in recorded["over_seeds"]}
    naive = by_gate["rule significant, threshold 5%, alpha 0.01 per comparison"]
    assert min(naive["false_alarms_per_seed"]) > 3  # 9 to 78 per month over 420 recorded months
    assert sum(naive["false_alarms_per_seed"]) > 10 * SEEDS


@pytest.mark.slow
def test_the_history_page_marks_exactly_what_the_gate_flagged(simulated, recorded):
    fresh = simulated["history_page"]  # the relation holds on today's fresh run too
    assert fresh["marks_match_gate"] is True and fresh["flagged_points_on_page"] == fresh["gate_regression_flags"]
    simulated = recorded
    page = simulated["history_page"]
    assert Path(page["page"]).exists()
    assert page["injected_point_marked"] is True
    assert page["marks_match_gate"] is True and page["flagged_points_on_page"] == page["gate_regression_flags"]
    case = simulated["inject"]["keys"][0].split("[")[0].split("/", 1)[1]
    assert page["figures_with_regression_marks"] and all(case in t for t in page["figures_with_regression_marks"])


@pytest.mark.slow
def test_the_exit_code_and_the_night_summaries_read_like_the_job_summary(recorded):
    assert recorded["_exit"] == (0 if recorded["passed"] else 1), recorded["_stdout"][-2000:]
    assert recorded["passed"] is True
    summaries = recorded["_out"] / "summaries"
    night20 = (summaries / "night-20.md").read_text()
    case = recorded["inject"]["keys"][0].split(":")[0].split("/", 1)[1]
    assert "regression(s)**" in night20 and "### sim-b" in night20 and case in night20
    assert "rule confident" in night20
    assert "First night of this machine" in (summaries / "night-01.md").read_text()
    assert len(list(summaries.glob("night-*.md"))) == 30
    for night in range(2, 31):
        if night != 20:
            assert "**No regressions**" in (summaries / f"night-{night:02d}.md").read_text(), night


def _rerun(folder: Path, night: int, level: dict[str, float]) -> None:
    """One run of an unchanged build: each case's level is this process's, its rounds tight around it."""
    import numpy as np

    rng = np.random.default_rng(night)
    ms = []
    for case, lv in level.items():
        samples = [float(x) for x in lv * np.exp(rng.normal(0, 0.004, 40))]
        ms.append({"suite": "normalization", "case": case, "mode": "forward", "backend": "torch:cpu:fp32",
                   "status": "ok", "time_s": {"median": float(np.median(samples)), "samples": samples,
                                              "rounds": 40}})
    doc = {"schema_version": 1, "run": {"id": f"n{night}", "started_at": f"2026-02-{night:02d}T02:00:00+00:00"},
           "machine": {"machine_id": "rerun-box"}, "measurements": ms}
    (folder / f"n{night:02d}.json").write_text(json.dumps(doc))


def test_nights_from_reruns_show_the_old_gate_crying_wolf_and_the_new_one_not(tmp_path: Path):
    """Process-level noise (8% between runs, rounds within 0.4%): the rounds' gate flags it, levels do not."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "scripts"))
    from rerun_nights import rerun_nights

    rng = np.random.default_rng(3)
    for night in range(1, 9):
        _rerun(tmp_path, night, {f"case{i}[n=1]": 1e-3 * (1 + i) * float(np.exp(rng.normal(0, 0.08)))
                                 for i in range(6)})
    result = rerun_nights(tmp_path)
    gates = list(result["gates"].values())
    assert result["nights"] == 8
    assert gates[0]["nights_failed"] == 0 and gates[0]["unsupported"] > 0
    assert gates[1]["nights_failed"] > 0 and gates[2]["nights_failed"] > 0


def test_the_committed_real_reruns_are_judged():
    folder = ROOT / "tests" / "data" / "reruns"
    if not any(folder.glob("*.json")):
        pytest.skip("no committed reruns")
    sys.path.insert(0, str(ROOT / "scripts"))
    from rerun_nights import rerun_nights

    result = rerun_nights(folder)
    assert result["nights"] >= 2
    for gate in result["gates"].values():
        assert gate["comparisons"] > 0 and len(gate["false_alarms_per_night"]) == result["nights"] - 1


def test_the_verdict_bench_tallies_each_injected_case_over_its_pairs():
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_verdicts import per_case

    rows = [{"case": "layernorm:forward torch", "verdict": v} for v in ("regression", "unresolved", "regression")]
    rows += [{"case": "layernorm:forward jax", "verdict": "unresolved"}]
    assert per_case(rows) == {"layernorm:forward torch": {"flagged": 2, "of": 3},
                              "layernorm:forward jax": {"flagged": 0, "of": 1}}

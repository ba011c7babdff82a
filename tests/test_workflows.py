"""The GitHub workflows: valid against the workflow schema, and the nightly matrix comes from bench/ci/matrix.toml."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML  # comes with check-jsonschema (the dev extra); YAML 1.2: `on` stays a string

from xpubench.ci import matrix as M

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
NIGHTLY = WORKFLOWS / "nightly.yml"
PR = WORKFLOWS / "pr.yml"


def check_jsonschema() -> str:
    exe = Path(sys.executable).with_name("check-jsonschema")
    found = str(exe) if exe.exists() else shutil.which("check-jsonschema")
    assert found, "check-jsonschema is missing: install the dev extra (pip install -e '.[dev]')"
    return found


def load(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())


def steps_text(job: dict) -> str:
    return "\n".join(str(s.get("run", "")) + " " + str(s.get("uses", "")) for s in job["steps"])


def step(job: dict, uses_prefix: str) -> dict:
    found = [s for s in job["steps"] if str(s.get("uses", "")).startswith(uses_prefix)]
    assert len(found) == 1, f"expected one {uses_prefix} step"
    return found[0]


# --------------------------------------------------------------------------- schema
def test_workflows_validate_against_the_github_workflow_schema():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"nightly.yml", "pr.yml"}
    proc = subprocess.run([check_jsonschema(), "--builtin-schema", "vendor.github-workflows", *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


def test_the_schema_check_does_reject_a_broken_workflow(tmp_path):
    """The check above means something: a job without runs-on and a bad trigger fail it."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: {pull_requests: {}}\njobs:\n  x:\n    steps:\n      - run: echo\n")
    proc = subprocess.run([check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0


# --------------------------------------------------------------------------- nightly
def test_nightly_triggers_and_the_plan_job_emits_the_matrix_from_the_definition():
    wf = load(NIGHTLY)
    assert set(wf["on"]) == {"schedule", "workflow_dispatch"} and wf["on"]["schedule"][0]["cron"]
    plan = wf["jobs"]["plan"]
    assert plan["outputs"]["matrix"] == "${{ steps.plan.outputs.matrix }}"
    (emit,) = [s for s in plan["steps"] if s.get("id") == "plan"]
    assert 'echo "matrix=$(xpubench matrix --github)" >> "$GITHUB_OUTPUT"' in emit["run"]


def test_the_leg_job_takes_its_matrix_from_the_plan_and_hard_codes_no_leg():
    wf = load(NIGHTLY)
    leg = wf["jobs"]["leg"]
    assert leg["needs"] == "plan"
    assert leg["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert leg["strategy"]["fail-fast"] is False
    assert leg["runs-on"] == "${{ matrix.runs_on }}"
    assert leg["timeout-minutes"] == "${{ matrix.job_timeout_minutes }}"
    # nothing of any leg is written in the workflow: names, backends, runner labels, extras
    text = NIGHTLY.read_text()
    assert "include:" not in text
    definition = M.load_matrix()
    for name, lg in definition.legs.items():
        assert not re.search(rf"\b{re.escape(name)}\b", text.replace("github.event", "")), f"leg {name} in yml"
        for spec in lg.backends:
            assert spec not in text
        for label in lg.runs_on:
            if label not in ("ubuntu-24.04",):  # the plan/publish jobs' own runner
                assert not re.search(rf"\b{re.escape(label)}\b", text), f"runner label {label} in yml"


def test_every_matrix_field_the_leg_job_reads_is_in_every_entry():
    leg = load(NIGHTLY)["jobs"]["leg"]
    used = set(re.findall(r"matrix\.([a-z_]+)", json.dumps(leg)))
    assert {"leg", "runs_on", "extras", "machine_id", "timeout_minutes", "job_timeout_minutes"} <= used
    for entry in M.load_matrix().github()["include"]:
        assert used <= set(entry), f"{entry['leg']}: missing {used - set(entry)}"


def test_xpubench_matrix_github_prints_what_the_definition_produces():
    """The command the plan job runs, as a process, equals the definition's matrix."""
    exe = Path(sys.executable).with_name("xpubench")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "xpubench"]
    out = subprocess.run(cmd + ["matrix", "--github"], capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=120).stdout
    assert out.strip() == M.github_json(M.load_matrix())
    assert json.loads(out) == M.load_matrix().github()
    # and the stdlib-only form works as well (no install needed)
    plain = subprocess.run([sys.executable, "-m", "xpubench.ci.matrix", "--github"], capture_output=True, text=True,
                           check=True, cwd=ROOT, timeout=120).stdout
    assert plain == out


def test_each_leg_installs_its_extra_runs_the_leg_and_uploads_even_on_failure():
    leg = load(NIGHTLY)["jobs"]["leg"]
    text = steps_text(leg)
    assert "bash scripts/setup.sh $EXTRAS" in text and leg["env"]["EXTRAS"] == "${{ matrix.extras }}"
    assert 'xpubench run --leg "$LEG"' in text and leg["env"]["LEG"] == "${{ matrix.leg }}"
    assert "--out results" in text
    (run,) = [s for s in leg["steps"] if "xpubench run --leg" in str(s.get("run", ""))]
    assert run["timeout-minutes"] == "${{ matrix.timeout_minutes }}"  # below the job's, so the upload runs
    upload = step(leg, "actions/upload-artifact@")
    assert upload["if"] in ("${{ always() }}", "${{ !cancelled() }}")
    assert upload["with"]["name"] == M.ARTIFACT_PREFIX + "${{ matrix.leg }}"  # unique per leg
    assert upload["with"]["path"].rstrip("/") == "results"


def test_the_final_job_gates_keeps_history_and_publishes_alone():
    wf = load(NIGHTLY)
    pub = wf["jobs"]["publish"]
    assert "leg" in pub["needs"] and "!cancelled()" in pub["if"]
    assert pub["concurrency"]["group"] == "nightly-publish" and pub["concurrency"]["cancel-in-progress"] is False
    assert pub["permissions"]["pages"] == "write" and pub["permissions"]["contents"] == "write"
    download = step(pub, "actions/download-artifact@")
    assert download["with"]["pattern"] == M.ARTIFACT_PREFIX + "*"
    text = steps_text(pub)
    assert "xpubench matrix --night tonight --history history --summary \"$GITHUB_STEP_SUMMARY\"" in text
    assert "git push origin" in text and "RESULTS_BRANCH" in text
    assert "xpubench report history" in text
    step(pub, "actions/upload-pages-artifact@")
    step(pub, "actions/deploy-pages@")
    (gate,) = [s for s in pub["steps"] if s.get("id") == "gate"]
    assert gate["continue-on-error"] is True
    assert pub["steps"][-1]["if"] == "${{ steps.gate.outcome == 'failure' }}"
    assert "exit 1" in pub["steps"][-1]["run"]
    # the other jobs never publish or push
    for name, job in wf["jobs"].items():
        if name != "publish":
            assert "deploy-pages" not in steps_text(job) and "git push" not in steps_text(job)


# --------------------------------------------------------------------------- pull requests
def test_pr_workflow_runs_the_tests_and_a_smoke_cpu_run_with_its_report():
    wf = load(PR)
    assert "pull_request" in wf["on"]
    text = "\n".join(steps_text(j) for j in wf["jobs"].values())
    assert "python -m pytest" in text
    assert "xpubench run --leg cpu --size smoke" in text and "--report" in text
    (smoke,) = [j for j in wf["jobs"].values() if "--size smoke" in steps_text(j)]
    upload = step(smoke, "actions/upload-artifact@")
    assert upload["if"] == "${{ always() }}" and upload["with"]["path"].rstrip("/") == "pr-results"


@pytest.mark.parametrize("path", [NIGHTLY, PR])
def test_workflows_install_through_the_setup_script(path):
    wf = load(path)
    for name, job in wf["jobs"].items():
        text = steps_text(job)
        if ".venv/bin/" in text:
            assert "bash scripts/setup.sh" in text, f"{path.name}:{name} uses .venv without scripts/setup.sh"

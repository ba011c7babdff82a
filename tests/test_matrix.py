"""The nightly matrix: its definition, `xpubench matrix`, `run --leg`, and the nightly gate."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from xpubench.ci import matrix as M
from xpubench.cli.main import build_parser, main
from xpubench.cli.run import run_options
from xpubench.errors import UserError
from xpubench.options import RunOptions
from xpubench.regress import gate as G
from xpubench.results.writer import atomic_write_json

ROOT = Path(__file__).resolve().parent.parent


def write_toml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "matrix.toml"
    p.write_text(text)
    return p


MINIMAL = """
[defaults]
size = "smoke"
time_budget_s = 0.2
threshold = "5%"
timeout_minutes = 30

[legs.small]
runs_on = "ubuntu-24.04"
backends = ["torch:cpu:fp32"]
"""


# --------------------------------------------------------------------------- the definition
def test_repository_matrix_has_the_three_legs_of_the_issue():
    m = M.load_matrix()
    assert m.path == M.DEFAULT_PATH
    assert list(m.legs) == ["cpu", "cuda", "tpu", "multi-gpu"]
    assert m.legs["multi-gpu"].suites == ("distributed",) and "multi-gpu" in m.legs["multi-gpu"].runs_on
    assert m.legs["multi-gpu"].world_sizes == (1, 2, 4, 8) and m.legs["cpu"].world_sizes == ()
    assert M.leg_options(m.legs["multi-gpu"], {}).world_sizes == (1, 2, 4, 8)
    assert "--world-size" in m.legs["multi-gpu"].run_args() and "--world-size" not in m.legs["cpu"].run_args()
    assert m.legs["cpu"].backends == ("torch:cpu:fp32", "torch:cpu:bf16", "jax:cpu:fp32")
    assert m.legs["cuda"].backends == ("torch:cuda:fp32", "torch:cuda:tf32", "torch:cuda:bf16", "torch:cuda:fp16",
                                       "torch:cuda:fp8", "jax:gpu:fp32", "jax:gpu:bf16")
    assert m.legs["tpu"].backends == ("jax:tpu:fp32", "jax:tpu:bf16")
    assert m.legs["cpu"].extras == () and m.legs["cuda"].extras == ("cuda",) and m.legs["tpu"].extras == ("tpu",)
    assert "self-hosted" in m.legs["cuda"].runs_on and "self-hosted" in m.legs["tpu"].runs_on
    for leg in m.legs.values():
        assert 0 < leg.threshold < 1 and 0 < leg.alpha < 1
        assert leg.rule == "confident"  # the nightly gate's rule: see docs/nightly.md
        assert leg.size in M.SIZES and leg.time_budget_s > 0 and leg.timeout_minutes > 0


def test_every_extra_is_a_pyproject_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for leg in M.load_matrix().legs.values():
        for e in leg.extras:
            assert e in extras, f"leg {leg.name}: extra {e!r} is not in pyproject.toml"


def test_every_suite_named_in_the_matrix_exists():
    from xpubench.spec import registry as spec

    spec.load_all()
    known = set(spec.suites())
    for leg in M.load_matrix().legs.values():
        assert set(leg.suites) <= known, leg.name


@pytest.mark.parametrize("text, expected", [
    ("torch:cpu:fp32", ["torch:cpu:fp32"]),
    ("torch:cpu:{fp32,bf16}", ["torch:cpu:fp32", "torch:cpu:bf16"]),
    ("{torch,jax}:cpu:{fp32, bf16}", ["torch:cpu:fp32", "torch:cpu:bf16", "jax:cpu:fp32", "jax:cpu:bf16"]),
])
def test_expand_braces(text, expected):
    assert M.expand_braces(text) == expected


def test_defaults_fill_a_leg_and_a_string_runs_on_is_one_label(tmp_path):
    leg = M.load_matrix(write_toml(tmp_path, MINIMAL)).leg("small")
    assert leg.runs_on == ("ubuntu-24.04",)
    assert (leg.size, leg.time_budget_s, leg.threshold, leg.timeout_minutes) == ("smoke", 0.2, 0.05, 30)
    assert leg.suites == () and leg.cases == () and leg.extras == () and leg.machine_id == ""
    assert leg.alpha == M.DEFAULT_ALPHA and leg.rule == M.DEFAULT_RULE == "confident"
    assert leg.run_args() == ["-b", "torch:cpu:fp32", "--size", "smoke", "--time-budget", "0.2"]


@pytest.mark.parametrize("patch, message", [
    ('backends = ["torch:gpu:fp32"]', "unknown device 'gpu'"),
    ('backends = ["torch:cpu:{fp32,fp32}"]', "listed twice"),
    ('backends = []', "backends is empty"),
    ('size = "huge"', "size 'huge'"),
    ('threshold = "50"', "threshold"),
    ('threshold = "0%"', "threshold"),
    ('alpha = 2', "alpha"),
    ('rule = "lenient"', "rule 'lenient' is not one of 'significant', 'confident'"),
    ('rule = 1', "rule 1"),
    ('time_budget_s = -1', "time_budget_s"),
    ('timeout_minutes = 1.5', "timeout_minutes"),
    ('runs_on = []', "runs_on"),
    ('extras = ["CUDA 12"]', "extra"),
    ('machine_id = "../x"', "machine_id"),
    ('typo_key = 1', "unknown key(s) typo_key"),
])
def test_mistakes_in_the_definition_are_one_line_user_errors(tmp_path, patch, message):
    key = patch.split("=")[0].strip()
    kept = [line for line in MINIMAL.split("[legs.small]")[1].splitlines() if not line.startswith(key + " ")]
    text = MINIMAL.split("[legs.small]")[0] + "[legs.small]" + "\n".join(kept) + "\n" + patch + "\n"
    path = write_toml(tmp_path, text)
    with pytest.raises(UserError) as e:
        M.load_matrix(path)
    text = str(e.value)
    assert message in text and str(path) in text and "\n" not in text


@pytest.mark.parametrize("text, message", [
    ("[legs.small\n", "not valid TOML"),
    ("[defaults]\nsize='smoke'\n", "no legs"),
    (MINIMAL + "[other]\nx=1\n", "unknown table(s) other"),
    (MINIMAL.replace("[legs.small]", "[legs.Small]"), "leg name"),
    (MINIMAL.replace('runs_on = "ubuntu-24.04"\n', ""), "missing runs_on"),
    (MINIMAL.replace("[defaults]", "[defaults]\nbackends = []"), "[defaults] cannot set backends"),
])
def test_structural_mistakes(tmp_path, text, message):
    with pytest.raises(UserError, match=None) as e:
        M.load_matrix(write_toml(tmp_path, text))
    assert message in str(e.value)


def test_rule_per_leg_and_in_defaults(tmp_path):
    text = MINIMAL.replace("[defaults]", '[defaults]\nrule = "significant"') + \
        '\n[legs.other]\nruns_on = "x"\nbackends = ["torch:cpu:fp32"]\nrule = "confident"\n'
    m = M.load_matrix(write_toml(tmp_path, text))
    assert (m.default_rule, m.leg("small").rule, m.leg("other").rule) == ("significant", "significant", "confident")
    bad = write_toml(tmp_path, MINIMAL.replace("[defaults]", '[defaults]\nrule = "Confident"'))
    with pytest.raises(UserError, match="rule 'Confident'"):
        M.load_matrix(bad)


def test_missing_file_and_env_var(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no such matrix definition"):
        M.load_matrix(tmp_path / "nope.toml")
    monkeypatch.setenv(M.ENV_VAR, str(write_toml(tmp_path, MINIMAL)))
    assert list(M.load_matrix().legs) == ["small"]


# --------------------------------------------------------------------------- `xpubench matrix`
def test_github_json_is_one_line_and_carries_what_the_leg_job_reads(capsys):
    assert main(["matrix", "--github"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    doc = json.loads(out)
    assert doc == M.load_matrix().github()
    assert [e["leg"] for e in doc["include"]] == ["cpu", "cuda", "tpu", "multi-gpu"]
    cuda = doc["include"][1]
    assert cuda["runs_on"] == ["self-hosted", "linux", "x64", "gpu"] and cuda["extras"] == "cuda"
    assert cuda["job_timeout_minutes"] == cuda["timeout_minutes"] + M.JOB_OVERHEAD_MINUTES


def test_github_json_follows_the_file_flag(tmp_path, capsys):
    assert main(["matrix", "--github", "--file", str(write_toml(tmp_path, MINIMAL))]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"include": [{"leg": "small", "runs_on": ["ubuntu-24.04"], "extras": "", "machine_id": "",
                                "backends": "torch:cpu:fp32", "timeout_minutes": 30,
                                "job_timeout_minutes": 30 + M.JOB_OVERHEAD_MINUTES}]}


def test_plan_lists_legs_and_what_runs_here(capsys):
    assert main(["matrix"]) == 0
    out = capsys.readouterr().out
    for name in ("cpu", "cuda", "tpu", "torch:cuda:fp8", "jax:tpu:bf16"):
        assert name in out
    # this test machine has torch and jax but no GPU/TPU: the CPU leg is the one it can run
    assert "this machine can run: cpu (3/3 backends)" in out


def test_leg_here_reports_missing_backends():
    m = M.load_matrix()
    here = M.leg_here(m.legs["cpu"])
    assert here.verdict == "yes" and here.missing == []
    tpu = M.leg_here(m.legs["tpu"])
    assert tpu.verdict == "no" and {s for s, _ in tpu.missing} == {"jax:tpu:fp32", "jax:tpu:bf16"}
    assert M._missing_lines(tpu.missing)[0].startswith("jax:tpu:{fp32,bf16}: ")


def test_bad_definition_through_the_cli_is_exit_2_one_line(tmp_path, capsys):
    assert main(["matrix", "--file", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xpubench: error: ") and err.count("\n") == 1


# --------------------------------------------------------------------------- run --leg
def leg_run(*argv: str) -> RunOptions:
    """The options `xpubench run ARGV` measures with."""
    return run_options(build_parser().parse_args(["run", *argv]))


def test_leg_fills_the_run_from_the_leg():
    opts = leg_run("--leg", "cpu")
    leg = M.load_matrix().leg("cpu")
    assert opts.backends == ("torch:cpu:fp32", "torch:cpu:bf16", "jax:cpu:fp32")
    assert opts.suites == ()  # [] in the definition: every suite
    assert opts.size == leg.size == "default"
    assert opts.time_budget_s == leg.time_budget_s


def test_leg_keeps_what_the_command_line_says():
    opts = leg_run("--leg", "cpu", "-b", "torch:cpu:fp32", "-s", "dropout", "--time-budget", "0.3")
    assert opts.backends == ("torch:cpu:fp32",) and opts.suites == ("dropout",) and opts.time_budget_s == 0.3


def test_a_different_size_drops_the_legs_time_budget():
    opts = leg_run("--leg", "cpu", "--size", "smoke")
    assert opts.size == "smoke" and opts.time_budget_s is None  # the smoke size's own budget applies


def test_leg_uses_suites_and_cases_of_the_leg(tmp_path, monkeypatch):
    path = write_toml(tmp_path, MINIMAL + 'suites = ["dropout"]\ncases = ["dropout*"]\n')
    monkeypatch.setenv(M.ENV_VAR, str(path))
    opts = leg_run("--leg", "small")
    assert opts.suites == ("dropout",) and opts.cases == ("dropout*",) and opts.size == "smoke"


def test_unknown_leg_is_a_user_error_listing_the_known_ones():
    with pytest.raises(UserError) as e:
        leg_run("--leg", "gpu")
    assert "unknown leg 'gpu'" in str(e.value) and "known legs: cpu, cuda, tpu" in str(e.value)


def test_unknown_leg_through_the_cli(capsys):
    assert main(["run", "--leg", "nope", "--out", "/nonexistent-never-written"]) == 2
    err = capsys.readouterr().err
    assert "unknown leg 'nope'" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- the nightly gate
RNG = np.random.default_rng(7)
CASES = [("normalization", "layernorm[d=8]", "forward"), ("normalization", "rmsnorm[d=8]", "forward"),
         ("dropout", "dropout[p=0.1]", "forward")]


def processes(samples: list[float], k: int = 3) -> list[dict]:
    """The rounds split into K processes (a run with --repeat K): the gate judges at the process level."""
    chunks = [samples[i::k] for i in range(k)]
    return [{"pass": i, "status": "ok", "median": float(np.median(c)), "samples": c} for i, c in enumerate(chunks)]


def measurement(suite: str, case: str, mode: str, median: float, status: str = "ok") -> dict:
    samples = [float(x) for x in median * np.exp(RNG.normal(0, 0.01, 40))]
    s = sorted(samples)
    return {"suite": suite, "case": case, "mode": mode, "backend": "torch:cpu:fp32", "status": status,
            "time_s": {"median": float(np.median(s)), "ci95": [s[14], s[25]], "rounds": 40, "samples": samples,
                       "processes": processes(samples)}}


def write_run(folder: Path, machine: str, day: int, slow: dict[str, float] | None = None,
              command: str = "xpubench run") -> Path:
    slow = slow or {}
    run_id = f"{machine[:3]}{day:05d}"
    doc = {"schema_version": 1,
           "run": {"id": run_id, "started_at": f"2026-01-{day:02d}T02:17:00+00:00", "command": command},
           "machine": {"machine_id": machine},
           "measurements": [measurement(s, c, m, 1e-4 * slow.get(c, 1.0)) for s, c, m in CASES]}
    path = folder / machine / f"202601{day:02d}T021700Z-{run_id}.json"
    atomic_write_json(path, doc)
    return path


@pytest.fixture
def two_legs(tmp_path) -> M.Matrix:
    text = MINIMAL + '\n[legs.strict]\nruns_on = "x"\nbackends = ["torch:cpu:fp32"]\nthreshold = "5%"\n' \
                     '\n[legs.loose]\nruns_on = "y"\nbackends = ["torch:cpu:fp32"]\nthreshold = "30%"\n' \
                     'machine_id = "box-loose"\n'
    return M.load_matrix(write_toml(tmp_path, text))


def test_gate_flags_a_slowdown_against_the_previous_night_with_the_legs_threshold(tmp_path, two_legs):
    history = tmp_path / "history"
    write_run(history, "box-strict", 1, {"layernorm[d=8]": 1.5})  # an older night: not the baseline
    write_run(history, "box-strict", 2)
    write_run(history, "box-loose", 2)
    tonight = tmp_path / "tonight"
    write_run(tonight / "xpubench-strict", "box-strict", 3, {"layernorm[d=8]": 1.2})
    write_run(tonight / "xpubench-loose", "box-loose", 3, {"layernorm[d=8]": 1.2})
    nights = {n.machine_id: n for n in G.gate_night(tonight, history, two_legs.gate_book(), with_ci=False)}
    strict, loose = nights["box-strict"], nights["box-loose"]
    assert strict.leg == "strict" and strict.threshold == 0.05
    assert strict.previous is not None and strict.previous.id == "box00002"
    assert [c.case for c in strict.regressions] == ["layernorm[d=8]"]
    assert strict.alpha_each == pytest.approx(two_legs.default_alpha / len(CASES))
    assert loose.leg == "loose" and loose.threshold == 0.30 and loose.regressions == []
    md = G.night_markdown(list(nights.values()))
    assert "**1 regression(s)**" in md and "### box-strict · leg `strict` · threshold 5%" in md
    assert "layernorm[d=8]" in md and md.index("box-strict") < md.index("box-loose")


def test_leg_found_without_the_artifact_folder(tmp_path, two_legs):
    """download-artifact extracts flat when a pattern matches one artifact: the run still names its leg."""
    tonight = tmp_path / "tonight"
    write_run(tonight, "some-box", 3, command="xpubench run --leg strict --out results")
    write_run(tonight, "box-loose", 3)
    nights = {n.machine_id: n for n in G.gate_night(tonight, tmp_path / "none", two_legs.gate_book())}
    assert nights["some-box"].leg == "strict"  # from --leg in the command
    assert nights["box-loose"].leg == "loose"  # from the leg's fixed machine id
    assert all(n.previous is None and n.comparisons == [] for n in nights.values())
    assert "First night of this machine" in G.night_markdown(list(nights.values()))


def test_failed_case_tonight_is_a_regression(tmp_path, two_legs):
    history, tonight = tmp_path / "history", tmp_path / "tonight"
    write_run(history, "box-strict", 1)
    p = write_run(tonight / "xpubench-strict", "box-strict", 2)
    doc = json.loads(p.read_text())
    doc["measurements"][2]["status"] = "crashed"
    atomic_write_json(p, doc)
    (night,) = G.gate_night(tonight, history, two_legs.gate_book(), with_ci=False)
    assert [(c.case, c.verdict) for c in night.regressions] == [("dropout[p=0.1]", "failed")]


def test_merge_is_idempotent_and_a_rerun_compares_with_the_night_before(tmp_path, two_legs):
    history, tonight = tmp_path / "history", tmp_path / "tonight"
    write_run(history, "box-strict", 1)
    write_run(tonight / "xpubench-strict", "box-strict", 2, {"rmsnorm[d=8]": 1.3})
    first = G.gate_night(tonight, history, two_legs.gate_book(), with_ci=False)
    added = G.merge_into_history([r for n in first for r in n.tonight], history)
    assert [p.relative_to(history).parts[0] for p in added] == ["box-strict"]
    # the final job re-run: tonight's file is already in the history and must not be its own baseline
    again = G.gate_night(tonight, history, two_legs.gate_book(), with_ci=False)
    assert again[0].previous.id == "box00001"
    assert [c.case for c in again[0].regressions] == ["rmsnorm[d=8]"]
    assert G.merge_into_history([r for n in again for r in n.tonight], history) == []
    assert len(list(history.rglob("*.json"))) == 2


def test_night_command_exit_codes_and_summary(tmp_path, two_legs, capsys):
    history, tonight, summary = tmp_path / "history", tmp_path / "tonight", tmp_path / "summary.md"
    write_run(history, "box-strict", 1)
    write_run(tonight / "xpubench-strict", "box-strict", 2, {"dropout[p=0.1]": 1.25})
    argv = ["matrix", "--file", str(two_legs.path), "--night", str(tonight), "--history", str(history),
            "--summary", str(summary)]
    assert main(argv) == 1
    assert "dropout[p=0.1]" in summary.read_text() and "regression" in capsys.readouterr().out
    assert len(list((history / "box-strict").glob("*.json"))) == 2  # merged even on a regression
    # with a threshold above the slowdown the same night passes
    assert main(argv + ["--threshold", "40%"]) == 0
    assert main(["matrix", "--file", str(two_legs.path), "--night", str(tonight)]) == 2  # no --history
    assert main(["matrix", "--file", str(two_legs.path), "--night", str(tmp_path / "empty"),
                 "--history", str(history)]) == 2


def noisy_run(folder: Path, machine: str, day: int, factor: float, command: str = "xpubench run --leg strict") -> Path:
    """One case measured 60 rounds to +/-15% (identical shape each night, NEW = BASE x factor)."""
    rng = np.random.default_rng(11)
    base = 1e-4 * np.exp(rng.normal(0, 0.15, 60))
    samples = [float(x) for x in base * factor]
    s = sorted(samples)
    run_id = f"{machine[:3]}{day:05d}"
    doc = {"schema_version": 1,
           "run": {"id": run_id, "started_at": f"2026-01-{day:02d}T02:17:00+00:00", "command": command},
           "machine": {"machine_id": machine},
           "measurements": [{"suite": "normalization", "case": "noisy", "mode": "forward",
                             "backend": "torch:cpu:fp32", "status": "ok",
                             "time_s": {"median": float(np.median(s)), "ci95": [s[22], s[37]], "rounds": 60,
                                        "samples": samples}}]}
    path = folder / machine / f"202601{day:02d}T021700Z-{run_id}.json"
    atomic_write_json(path, doc)
    return path


def test_gate_uses_the_legs_rule_and_the_command_line_can_override_it(tmp_path, two_legs, capsys):
    """A noisy +12% against a 5% leg, one process per night: the gate cannot support it under either rule."""
    history, tonight = tmp_path / "history", tmp_path / "tonight"
    noisy_run(history, "box-strict", 1, 1.0)
    noisy_run(tonight / "xpubench-strict", "box-strict", 2, 1.12)
    (night,) = G.gate_night(tonight, history, two_legs.gate_book())
    assert night.rule == "confident" and night.regressions == []
    (c,) = night.comparisons
    assert c.verdict == "unresolved" and "not confident" in c.note and c.ratio == pytest.approx(1.12)
    assert "one process per side" in c.note
    md = G.night_markdown([night])
    assert "rule confident" in md and "**No regressions**" in md and "not confident" in md
    (sig,) = G.gate_night(tonight, history, two_legs.gate_book().overridden(rule="significant"))
    (c,) = sig.comparisons
    assert sig.regressions == [] and c.verdict == "unsupported" and "one process per side" in c.note
    argv = ["matrix", "--file", str(two_legs.path), "--night", str(tonight), "--history", str(history)]
    assert main(argv + ["--rule", "significant"]) == 0
    capsys.readouterr()
    # the run above merged tonight into the history; a re-run compares with the night before again
    assert main(argv) == 0
    assert "rule confident" in capsys.readouterr().out


def test_report_gate_marks_what_the_nightly_gate_flags(tmp_path, two_legs, capsys, monkeypatch):
    """`xpubench report --gate`: per machine its leg's threshold, rule and alpha, as `matrix --night`."""
    history = tmp_path / "history"
    noisy_run(history, "box-strict", 1, 1.0)
    noisy_run(history, "box-strict", 2, 1.12)  # noisy: significant but not confident past 5%
    write_run(history, "box-loose", 1)
    write_run(history, "box-loose", 2, {"layernorm[d=8]": 1.2})  # tight, but below the loose leg's 30%
    write_run(history, "box-loose", 3, {"layernorm[d=8]": 1.2 * 1.5})  # +50%: flagged at 30%

    def flagged(name: str, *extra: str) -> tuple[int, str]:
        assert main(["report", str(history), "-o", str(tmp_path / name), *extra]) == 0
        capsys.readouterr()
        text = (tmp_path / name / "history.html").read_text(encoding="utf-8")
        return int(text.split(" flagged regression point(s)")[0].rsplit(">", 1)[1]), text

    # the plain marks judge rounds (5%, significant): the noisy case and both loose steps
    assert flagged("plain")[0] == 3
    assert flagged("confident", "--rule", "confident")[0] == 2  # the tight steps only
    # the gate: strict leg 5% confident (noisy case not flagged), loose leg 30% (only the +50%)
    count, text = flagged("gate", "--matrix-file", str(two_legs.path))
    assert count == 1 and "nightly gate" in text and "matrix.toml" in text
    monkeypatch.setenv(M.ENV_VAR, str(two_legs.path))  # --gate alone: the definition the gate reads
    assert flagged("gate-env", "--gate")[0] == 1
    assert main(["report", str(history), "-o", str(tmp_path / "x"), "--matrix-file", str(tmp_path / "no.toml")]) == 2
    assert "no such matrix definition" in capsys.readouterr().err



def test_one_gate_book_gives_the_gate_and_the_report_marks_the_same_policy(tmp_path, two_legs):
    """Night after night the gate flags; the report over the merged history marks exactly those points."""
    from xpubench.regress.policy import GatePolicy
    from xpubench.report.history import gate_flags
    from xpubench.report.model import Model
    from xpubench.results.reader import load_runs

    book = two_legs.gate_book()
    assert book.legs["strict"] == GatePolicy(0.05, M.DEFAULT_ALPHA, "confident")
    assert book.legs["loose"] == GatePolicy(0.30, M.DEFAULT_ALPHA, "confident")
    assert book.leg_machines == {"loose": "box-loose"} and book.source == "matrix.toml"
    history = tmp_path / "history"
    slow = {2: {"layernorm[d=8]": 1.2}, 3: {"layernorm[d=8]": 1.2 * 1.5, "rmsnorm[d=8]": 0.7}}
    by_gate, policies = set(), {}
    for day in (1, 2, 3):
        tonight = tmp_path / f"night-{day}"
        write_run(tonight / "xpubench-strict", "box-strict", day, slow.get(day),
                  command="xpubench run --leg strict")
        write_run(tonight, "box-loose", day, slow.get(day))  # named by the leg's fixed machine id
        nights = G.gate_night(tonight, history, book, with_ci=False)
        for night in nights:
            policies[night.machine_id] = (night.leg, GatePolicy(night.threshold, night.alpha, night.rule))
            by_gate |= {(night.machine_id, night.tonight[0].id, c.case, c.verdict) for c in night.comparisons
                        if c.verdict in ("regression", "improvement")}
        G.merge_into_history([r for n in nights for r in n.tonight], history)
    assert policies == {"box-strict": ("strict", book.legs["strict"]), "box-loose": ("loose", book.legs["loose"])}
    assert ("box-loose", "box00003", "layernorm[d=8]", "regression") in by_gate  # +50% past the loose 30%
    assert ("box-loose", "box00002", "layernorm[d=8]", "regression") not in by_gate  # +20%: under 30%
    assert ("box-strict", "box00002", "layernorm[d=8]", "regression") in by_gate  # +20%: past the strict 5%
    runs = load_runs([history]).runs
    for run in runs:  # from the merged history alone (no artifact folder), the same leg and policy
        assert book.policy_for([run]) == policies[run.machine_id]
    model = Model(runs, [], None, "t", 0.05, {}, gate=book)
    marked = {(mid, run_id, key[1], verdict) for (run_id, mid, key), (verdict, _) in gate_flags(model).items()}
    assert marked == by_gate


def test_a_calibration_in_the_history_supports_single_process_nights(tmp_path, two_legs):
    history, tonight = tmp_path / "history", tmp_path / "tonight"
    noisy_run(history, "box-strict", 1, 1.0)
    noisy_run(tonight / "xpubench-strict", "box-strict", 2, 1.12)
    cal = history / "box-strict" / "calibration.json"
    cal.write_text(json.dumps({"machine_id": "box-strict", "cases": {
        "normalization/noisy:forward|torch:cpu:fp32": {"sigma": 0.01}}}))
    (night,) = G.gate_night(tonight, history, two_legs.gate_book())
    (c,) = night.comparisons
    assert c.method == "noise-model" and c.verdict == "regression" and night.regressions == [c]

"""Run options defined once: the CLI and the pytest flags build equal objects, `--leg`
lets explicit flags win, and the options reach the worker's builders as an object."""

from __future__ import annotations

import os
from dataclasses import fields

import pytest

from xpubench.ci import matrix as M
from xpubench.cli.main import build_parser
from xpubench.cli.run import run_options
from xpubench.errors import UserError
from xpubench.options import RunOptions, flags, given_pytest_options

pytest_plugins = ["pytester"]

# every option that has a flag, set away from its default: (xpubench run, pytest) spellings
GIVEN = [
    (["-b", "torch:cpu:fp32", "--backend", "jax:cpu:bf16"],
     ["--xpu-backend", "torch:cpu:fp32", "--xpu-backend", "jax:cpu:bf16"]),
    (["-s", "dropout"], ["--xpu-suite", "dropout"]),
    (["-k", "dropout*"], ["--xpu-case", "dropout*"]),
    (["--size", "smoke"], ["--xpu-size", "smoke"]),
    (["--time-budget", "0.3"], ["--xpu-time-budget", "0.3"]),
    (["--target-ci", "2%"], ["--xpu-target-ci", "2%"]),
    (["--min-rounds", "7"], ["--xpu-min-rounds", "7"]),
    (["--threads", "3"], ["--xpu-threads", "3"]),
    (["--no-telemetry"], ["--xpu-no-telemetry"]),
    (["--cpu-tdp", "65"], ["--xpu-cpu-tdp", "65"]),
    (["--energy-estimate"], ["--xpu-energy-estimate"]),
    (["--no-accuracy"], ["--xpu-no-accuracy"]),
    (["--cold-cache"], ["--xpu-cold-cache"]),
    (["--torch-compile", "max-autotune"], ["--xpu-torch-compile", "max-autotune"]),
    (["--inject-slowdown", "dropout*=10%"], ["--xpu-inject-slowdown", "dropout*=10%"]),
]


def cli(*argv: str) -> RunOptions:
    return run_options(build_parser().parse_args(["run", *argv]))


def pytest_flags(pytester: pytest.Pytester, *argv: str) -> RunOptions:
    return RunOptions.from_flags(given_pytest_options(pytester.parseconfig(*argv)))


def test_cli_flags_and_pytest_flags_build_equal_options(pytester: pytest.Pytester):
    from_cli = cli(*[a for c, _ in GIVEN for a in c])
    from_pytest = pytest_flags(pytester, *[a for _, p in GIVEN for a in p])
    assert from_cli == from_pytest
    assert from_cli.backends == ("torch:cpu:fp32", "jax:cpu:bf16") and from_cli.target_rel_ci == 0.02
    assert (from_cli.telemetry, from_cli.accuracy, from_cli.cold_cache) == (False, False, True)
    # the table above covers every option pytest has a flag for
    defaults = RunOptions()
    assert {n for n, f in flags() if f.in_pytest} == {
        f.name for f in fields(RunOptions) if getattr(from_cli, f.name) != getattr(defaults, f.name)}


def test_no_flags_are_the_defaults_on_both_sides(pytester: pytest.Pytester):
    assert cli() == pytest_flags(pytester) == RunOptions()


def test_torch_compile_without_a_mode_is_the_default_mode(pytester: pytest.Pytester):
    assert cli("--torch-compile").torch_compile == "default"
    assert pytest_flags(pytester, "--xpu-torch-compile").torch_compile == "default"


def test_an_explicit_size_default_wins_over_the_legs_size(tmp_path, monkeypatch):
    path = tmp_path / "matrix.toml"
    path.write_text('[defaults]\nsize = "smoke"\ntime_budget_s = 0.2\nthreshold = "5%"\n'
                    'timeout_minutes = 30\n\n[legs.small]\nruns_on = "ubuntu-24.04"\n'
                    'backends = ["torch:cpu:fp32"]\n')
    monkeypatch.setenv(M.ENV_VAR, str(path))
    assert (cli("--leg", "small").size, cli("--leg", "small").time_budget_s) == ("smoke", 0.2)
    explicit = cli("--leg", "small", "--size", "default")
    assert explicit.size == "default" and explicit.time_budget_s is None  # the leg's budget was for smoke
    assert explicit.backends == ("torch:cpu:fp32",)


def test_options_survive_the_trip_to_a_worker():
    opts = cli("-b", "torch:cpu:fp32", "--size", "smoke", "--torch-compile", "--no-telemetry")
    assert RunOptions.from_dict(opts.to_dict()) == opts


def test_a_bad_size_is_a_user_error_naming_the_sizes():
    with pytest.raises(UserError, match="unknown size 'galactic'; accepted: smoke, default, large"):
        cli("--size", "galactic")


def test_torch_compile_reaches_the_workers_builder_without_the_environment(monkeypatch):
    from xpubench.backends.base import BackendSpec
    from xpubench.run.supervisor import Runner
    from xpubench.spec import registry as specmod

    specmod.load_all()  # the built-in suites first: the copy below must hold them (modules import once)
    monkeypatch.setenv("XPUBENCH_SUITE_MODULES", "tests.options_suite")  # workers load the suite
    monkeypatch.setattr(specmod, "_LOADED", False)
    monkeypatch.setattr(specmod, "_REGISTRY", dict(specmod._REGISTRY))  # the suite leaves with the test
    monkeypatch.delenv("XPUBENCH_TORCH_COMPILE", raising=False)
    cases = specmod.select(["options"], None, "smoke")
    opts = RunOptions(size="smoke", time_budget_s=0.02, telemetry=False, torch_compile="reduce-overhead")
    outcome = Runner([BackendSpec.parse("torch:cpu:fp32")], cases, None, opts).run()
    (rec,) = outcome.records
    assert rec["status"] == "ok", rec.get("reason")
    assert rec["notes"] == {"torch_compile": "reduce-overhead", "size": "smoke"}
    assert not any("TORCH_COMPILE" in k for k in os.environ)


def test_repeat_seed_and_injection_are_run_options():
    opts = cli("--repeat", "3", "--seed", "42", "--inject-slowdown", "normalization/layernorm*=10%")
    assert (opts.repeat, opts.seed, opts.inject_slowdown) == (3, 42, ("normalization/layernorm*=10%",))
    assert RunOptions.from_dict(opts.to_dict()) == opts


@pytest.mark.parametrize("argv", [["--repeat", "0"], ["--inject-slowdown", "layernorm"]])
def test_bad_repeat_or_injection_is_a_user_error(argv):
    with pytest.raises(UserError):
        cli(*argv)

"""`xpubench compare`: significance on per-round samples plus a threshold; exit codes."""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
from datetime import timedelta
from pathlib import Path

import pytest

from xpubench.cli import compare as CLI
from xpubench.regress import compare as C
from xpubench.regress import stats as S
from xpubench.regress.format import format_table
from tests import report_data as D

# These tests check the within-process machinery (rank test, rules, CIs) on single-process
# records: they ask for it explicitly (verdict levels: tests/test_verdict_levels.py).
judge1 = functools.partial(C.judge, one_process_supported=True)
compare1 = functools.partial(C.compare_runs, one_process_supported=True)

REAL = sorted(D.REAL_SAMPLES)
TIGHT = [n for n in REAL if n != "torch_conv2d_contended_cpu"]


def _m(samples, *, case="layernorm[d=512]", backend="torch:cpu:fp32", suite="normalization", **kw):
    return D.measurement(suite, case, backend, None if samples is None else list(samples), **kw)


def _run(ms, *, machine="laptop", day=0, run_id=None):
    return D.run(machine, D.T0 + timedelta(days=day), ms, run_id=run_id or f"r{day}-{machine}")


def _split(samples):
    """A/A from one real measurement: even rounds vs odd rounds (interleaved, so drift hits both)."""
    return samples[0::2], samples[1::2]


# --------------------------------------------------------------------------- decisions on real samples
@pytest.mark.parametrize("name", REAL)
def test_a_a_on_real_samples_is_not_a_regression(name):
    a, b = _split(D.REAL_SAMPLES[name])
    (c,) = compare1([_run([_m(a)])], [_run([_m(b)], day=1)])
    assert c.verdict in (C.UNCHANGED, C.INSIGNIFICANT)
    assert not c.is_regression
    assert C.find_regressions([c]) == []


@pytest.mark.parametrize("name", TIGHT)
def test_every_sample_ten_percent_slower_is_flagged(name):
    a, b = _split(D.REAL_SAMPLES[name])
    (c,) = compare1([_run([_m(a)])], [_run([_m([x * 1.10 for x in b])], day=1)])
    assert c.verdict == C.REGRESSION, (c.ratio, c.p_value)
    assert c.method == "mann-whitney" and c.p_value < C.DEFAULT_ALPHA
    assert c.ratio == pytest.approx(1.10, rel=0.06)
    lo, hi = c.ratio_ci
    assert lo <= c.ratio <= hi and lo > 1.0


def test_ten_percent_inside_a_contended_measurement_is_shown_but_not_gated():
    """30 rounds with a 4x slow phase cannot prove a 10% change: reported as `~`, not a regression."""
    a, b = _split(D.REAL_SAMPLES["torch_conv2d_contended_cpu"])
    (c,) = compare1([_run([_m(a)])], [_run([_m([x * 1.10 for x in b])], day=1)])
    assert c.verdict == C.INSIGNIFICANT and not c.is_regression
    assert c.ratio > 1.05 and c.p_value > C.DEFAULT_ALPHA
    assert "~" in format_table([c])


@pytest.mark.parametrize("name", REAL)
def test_two_percent_noise_level_change_is_not_flagged(name):
    a, b = _split(D.REAL_SAMPLES[name])
    (c,) = compare1([_run([_m(a)])], [_run([_m([x * 1.02 for x in b])], day=1)])
    assert c.verdict == C.UNCHANGED
    assert not c.is_regression


@pytest.mark.parametrize("name", TIGHT)
def test_ten_percent_faster_is_an_improvement(name):
    a, b = _split(D.REAL_SAMPLES[name])
    (c,) = compare1([_run([_m(a)])], [_run([_m([x / 1.10 for x in b])], day=1)])
    assert c.verdict == C.IMPROVEMENT and not c.is_regression


def test_a_a_lognormal_has_no_false_regressions():
    rng = random.Random(1)
    false = 0
    for _ in range(200):
        base = D.lognormal_samples(rng, 2e-3, 0.03, 30)
        new = D.lognormal_samples(rng, 2e-3, 0.03, 30)
        d = judge1(_m(base), _m(new))
        false += d.verdict == C.REGRESSION
    assert false == 0


def test_lognormal_ten_percent_slower_is_flagged_every_time():
    rng = random.Random(2)
    for _ in range(50):
        base = D.lognormal_samples(rng, 2e-3, 0.02, 30)
        new = D.lognormal_samples(rng, 2.2e-3, 0.02, 30)
        assert judge1(_m(base), _m(new)).verdict == C.REGRESSION


def test_large_but_noisy_change_is_insignificant_not_a_regression():
    base, new = [1.0, 2.0, 3.0], [1.2, 2.4, 3.6]  # 20% slower, but 3 rounds each cannot show it
    d = judge1(_m(base), _m(new))
    assert d.verdict == C.INSIGNIFICANT


def test_ci_overlap_fallback_without_samples():
    base = _m(D.lognormal_samples(random.Random(3), 1e-3, 0.01, 40))
    new = _m([x * 1.2 for x in base["time_s"]["samples"]])
    for m in (base, new):
        m["time_s"]["samples"] = None
    d = judge1(base, new)
    assert d.method == "ci-overlap" and d.verdict == C.REGRESSION
    for m in (base, new):
        m["time_s"]["ci95"] = None
    d = judge1(base, new)
    assert d.method == "none" and d.verdict == C.INSIGNIFICANT and "significance unknown" in d.note


# --------------------------------------------------------------------------- statistics
def test_mann_whitney_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(4)
    cases = [
        ([rng.gauss(0, 1) for _ in range(40)], [rng.gauss(0.5, 1) for _ in range(35)]),  # normal approx
        ([rng.gauss(0, 1) for _ in range(6)], [rng.gauss(1, 1) for _ in range(7)]),  # exact
        ([1, 2, 2, 3, 3, 3, 4] * 5, [2, 3, 3, 4, 4, 5, 5] * 5),  # ties
        (D.REAL_SAMPLES["numpy_sort_20k"], D.REAL_SAMPLES["torch_matmul_128_cpu"]),
    ]
    for a, b in cases:
        method = "exact" if len(a) * len(b) <= 400 and len(set(a) | set(b)) == len(a) + len(b) else "asymptotic"
        want = stats.mannwhitneyu(a, b, alternative="two-sided", method=method).pvalue
        assert S.mann_whitney_p(a, b) == pytest.approx(want, rel=1e-6, abs=1e-12)


def test_exact_u_distribution_sums_to_one_and_is_symmetric():
    n, m = 5, 7
    total = sum(S.exact_u_sf(u, n, m) - S.exact_u_sf(u + 1, n, m) for u in range(n * m + 1))
    assert total == pytest.approx(1.0)
    assert S.exact_u_sf(0, n, m) == pytest.approx(1.0)
    assert S.min_mann_whitney_p(n, m) == pytest.approx(2 / math.comb(12, 5))


def test_bootstrap_ci_covers_the_true_ratio():
    rng = random.Random(5)
    base = D.lognormal_samples(rng, 1.0, 0.02, 60)
    new = D.lognormal_samples(rng, 1.1, 0.02, 60)
    lo, hi = S.bootstrap_ratio_ci(base, new)
    assert lo < 1.1 < hi and hi - lo < 0.05


# --------------------------------------------------------------------------- runs
def test_statuses_missing_cases_and_machines():
    rng = random.Random(6)
    s = lambda: D.lognormal_samples(rng, 1e-3, 0.01, 20)  # noqa: E731
    base = [_run([_m(s(), case="a"), _m(s(), case="b"), _m(s(), case="gone"),
                  _m(None, case="c", status="oom", reason="CUDA OOM")]),
            _run([_m(s(), case="a")], machine="gpu-node")]
    new = [_run([_m(s(), case="a"), _m(None, case="b", status="crashed", reason="SIGSEGV"), _m(s(), case="c"),
                 _m(s(), case="fresh")], day=1),
           _run([_m(s(), case="a")], machine="other-box", day=1)]
    got = {(c.machine_id, c.case): c.verdict for c in compare1(base, new)}
    assert got == {
        ("laptop", "a"): C.UNCHANGED,
        ("laptop", "b"): C.FAILED,
        ("laptop", "c"): C.RECOVERED,
        ("laptop", "gone"): C.ONLY_IN_BASE,
        ("laptop", "fresh"): C.ONLY_IN_NEW,
        ("gpu-node", "a"): C.ONLY_IN_BASE,  # machines are never pooled
        ("other-box", "a"): C.ONLY_IN_NEW,
    }
    regs = C.find_regressions(compare1(base, new))
    assert [(c.case, c.verdict) for c in regs] == [("b", C.FAILED)]


def test_newest_run_of_a_set_wins():
    rng = random.Random(7)
    old = _run([_m([x * 2 for x in D.lognormal_samples(rng, 1e-3, 0.01, 20)])], day=0)
    newer = _run([_m(D.lognormal_samples(rng, 1e-3, 0.01, 20))], day=1)
    tonight = _run([_m(D.lognormal_samples(rng, 1e-3, 0.01, 20))], day=2)
    (c,) = compare1([newer, old], [tonight])  # order of the list does not matter
    assert c.verdict == C.UNCHANGED


def test_suite_threshold_overrides_the_default():
    a, b = _split(D.REAL_SAMPLES["torch_matmul_128_cpu"])
    base = [_run([_m(a, suite="training"), _m(a, suite="normalization")])]
    new = [_run([_m([x * 1.10 for x in b], suite="training"), _m([x * 1.10 for x in b], suite="normalization")],
                day=1)]
    got = {c.suite: c.verdict for c in compare1(base, new, 0.05, {"training": 0.15})}
    assert got == {"training": C.UNCHANGED, "normalization": C.REGRESSION}


# --------------------------------------------------------------------------- CLI
def _args(base, new, *extra):
    p = argparse.ArgumentParser()
    CLI.add_arguments(p)
    return p.parse_args([str(base), str(new), "--trust-rounds", *extra])


@pytest.fixture
def nights(tmp_path: Path):
    """Folders for last night and tonight; tonight slows one case by 10%."""
    a, b = _split(D.REAL_SAMPLES["torch_matmul_128_cpu"])
    c, d = _split(D.REAL_SAMPLES["numpy_sort_20k"])
    last = tmp_path / "last"
    tonight = tmp_path / "tonight"
    D.write_run(last, _run([_m(a, case="matmul|128"), _m(c, case="<sort>")]))
    D.write_run(tonight, _run([_m([x * 1.1 for x in b], case="matmul|128"), _m(d, case="<sort>")], day=1))
    same = tmp_path / "same"
    D.write_run(same, _run([_m(b, case="matmul|128"), _m(d, case="<sort>")], day=1))
    return last, tonight, same


def test_cli_exit_codes_and_table(nights, capsys):
    last, tonight, same = nights
    assert CLI.run(_args(last, tonight)) == 1
    out = capsys.readouterr().out
    assert "regression" in out and "matmul|128" in out and "+10." in out
    assert "1 regression" in out
    assert CLI.run(_args(last, same)) == 0
    assert CLI.run(_args(last, tonight, "--threshold", "15%")) == 0


def test_cli_markdown_is_escaped(nights, capsys):
    last, tonight, _ = nights
    assert CLI.run(_args(last, tonight, "--format", "markdown")) == 1
    md = capsys.readouterr().out
    assert md.startswith("## xpubench compare")
    assert "matmul\\|128" in md and "&lt;sort&gt;" in md and "<sort>" not in md
    assert "| machine | case |" in md


def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path, nights, capsys):
    last, _, _ = nights
    assert CLI.run(_args(tmp_path / "nope.json", last)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.json" in err and "Traceback" not in err
    bad = tmp_path / "trunc.json"
    bad.write_text(json.dumps(_run([]))[:40])
    assert CLI.run(_args(last, bad)) == 2
    assert "truncated" in capsys.readouterr().err
    foreign = tmp_path / "package.json"
    foreign.write_text('{"name": "x"}')
    assert CLI.run(_args(last, foreign)) == 2
    assert "neither" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert CLI.run(_args(last, empty)) == 2
    assert "no results files" in capsys.readouterr().err


def test_threshold_parsing():
    assert CLI.parse_threshold("5%") == pytest.approx(0.05)
    assert CLI.parse_threshold("0.05") == pytest.approx(0.05)
    assert CLI.parse_suite_threshold("training=10%") == ("training", pytest.approx(0.10))
    for bad in ("5", "abc", "-3%", "training"):
        with pytest.raises(argparse.ArgumentTypeError):
            (CLI.parse_suite_threshold if bad == "training" else CLI.parse_threshold)(bad)
    p = argparse.ArgumentParser()
    CLI.add_arguments(p)
    args = p.parse_args(["a", "b", "--suite-threshold", "training=10%", "--suite-threshold", "dropout=0.2"])
    assert dict(args.suite_threshold) == {"training": pytest.approx(0.1), "dropout": pytest.approx(0.2)}


def test_min_p_for_large_samples_does_not_overflow():
    from xpubench.regress.stats import min_mann_whitney_p

    assert min_mann_whitney_p(3, 3) == pytest.approx(0.1)
    assert min_mann_whitney_p(5000, 5000) == 0.0


# --------------------------------------------------------------------------- the confident rule
def _noisy_and_shifted(factor: float, spread: float, n: int = 60, seed: int = 8):
    """BASE: lognormal rounds; NEW: the same rounds times ``factor`` (ratio of medians exactly ``factor``)."""
    base = D.lognormal_samples(random.Random(seed), 1e-3, spread, n)
    return _m(base), _m([x * factor for x in base])


def test_noisy_twelve_percent_counts_only_under_the_significant_rule():
    base, new = _noisy_and_shifted(1.12, 0.15)
    sig = judge1(base, new, threshold=0.10)
    conf = judge1(base, new, threshold=0.10, rule=C.CONFIDENT)
    assert sig.verdict == C.REGRESSION and sig.ratio == pytest.approx(1.12)
    # the same evidence: significant, past the threshold; but the CI reaches inside 10%
    assert conf.significant and conf.p_value == sig.p_value < C.DEFAULT_ALPHA
    assert conf.verdict == C.INSIGNIFICANT and "not confident" in conf.note and "10%" in conf.note
    lo, hi = conf.ratio_ci
    assert lo < 1.10 < 1.12 < hi


def test_tight_fifteen_percent_is_a_regression_under_both_rules():
    base, new = _noisy_and_shifted(1.15, 0.01, n=30)
    for rule in C.RULES:
        d = judge1(base, new, threshold=0.10, rule=rule)
        assert d.verdict == C.REGRESSION, (rule, d)
    lo, hi = judge1(base, new, threshold=0.10, rule=C.CONFIDENT).ratio_ci
    assert 1.10 < lo < 1.15 < hi


def test_confident_improvement_needs_the_whole_ci_below_the_threshold():
    base, new = _noisy_and_shifted(1 / 1.15, 0.01, n=30)
    assert judge1(base, new, threshold=0.10, rule=C.CONFIDENT).verdict == C.IMPROVEMENT
    base, new = _noisy_and_shifted(1 / 1.12, 0.15)
    assert judge1(base, new, threshold=0.10).verdict == C.IMPROVEMENT
    assert judge1(base, new, threshold=0.10, rule=C.CONFIDENT).verdict == C.INSIGNIFICANT


@pytest.mark.parametrize("name", REAL)
def test_a_a_is_never_a_regression_under_the_confident_rule(name):
    a, b = _split(D.REAL_SAMPLES[name])
    (c,) = compare1([_run([_m(a)])], [_run([_m(b)], day=1)], rule=C.CONFIDENT)
    assert not c.is_regression and c.verdict in (C.UNCHANGED, C.INSIGNIFICANT)
    lo, hi = c.ratio_ci  # the CI shown is the rule's, and covers no change
    assert lo <= 1.0 <= hi


def test_a_a_lognormal_has_no_regressions_under_either_rule():
    rng = random.Random(9)
    for _ in range(100):
        base = _m(D.lognormal_samples(rng, 2e-3, 0.05, 20))
        new = _m(D.lognormal_samples(rng, 2e-3, 0.05, 20))
        for rule in C.RULES:
            assert judge1(base, new, threshold=0.05, rule=rule).verdict != C.REGRESSION


def test_confident_is_never_looser_than_significant():
    """Every confident regression is a significant one (the rule only adds a condition)."""
    rng = random.Random(10)
    for _ in range(60):
        spread, factor = rng.uniform(0.005, 0.2), rng.uniform(0.8, 1.3)
        base = _m(D.lognormal_samples(rng, 1e-3, spread, 25))
        new = _m(D.lognormal_samples(rng, 1e-3 * factor, spread, 25))
        sig, conf = (judge1(base, new, threshold=0.05, rule=r).verdict for r in C.RULES)
        if conf in (C.REGRESSION, C.IMPROVEMENT):
            assert sig == conf


def test_confident_rule_with_stored_cis_only():
    """Without samples the rule reads the stored median CIs (and the CI-overlap test)."""
    base, new = _noisy_and_shifted(1.25, 0.01, n=40)
    for m in (base, new):
        m["time_s"]["samples"] = None
    d = judge1(base, new, threshold=0.10, rule=C.CONFIDENT)
    assert d.method == "ci-overlap" and d.verdict == C.REGRESSION and d.ratio_ci[0] > 1.10
    for m in (base, new):
        m["time_s"]["ci95"] = None
    d = judge1(base, new, threshold=0.10, rule=C.CONFIDENT)
    assert d.verdict == C.INSIGNIFICANT and not C.Comparison("m", "s", "c", "f", "b", d.verdict, 0.1, "ok",
                                                            "ok").is_regression


def test_order_stat_ratio_ci_is_wider_with_few_rounds_and_covers_the_truth():
    rng = random.Random(12)
    base = _m(D.lognormal_samples(rng, 1.0, 0.02, 60))
    new = _m(D.lognormal_samples(rng, 1.1, 0.02, 60))
    lo, hi = C.order_stat_ratio_ci(base, new)
    assert lo < 1.1 < hi and hi - lo < 0.05
    few = C.order_stat_ratio_ci(_m(base["time_s"]["samples"][:5]), _m(new["time_s"]["samples"][:5]))
    assert few[0] < lo and few[1] > hi  # five rounds: each median's CI is its whole range


def test_unknown_rule_is_refused():
    base, new = _noisy_and_shifted(1.0, 0.01)
    with pytest.raises(ValueError, match="unknown rule"):
        judge1(base, new, rule="lenient")
    with pytest.raises(ValueError, match="unknown rule"):
        compare1([], [], rule="lenient")


@pytest.fixture
def noisy_nights(tmp_path: Path):
    """Last night and tonight: one tight case 15% slower, one noisy case 12% slower."""
    tight_b, tight_n = _noisy_and_shifted(1.15, 0.01, n=30)
    noisy_b, noisy_n = _noisy_and_shifted(1.12, 0.15)
    last, tonight = tmp_path / "last", tmp_path / "tonight"
    D.write_run(last, _run([{**tight_b, "case": "tight"}, {**noisy_b, "case": "noisy"}]))
    D.write_run(tonight, _run([{**tight_n, "case": "tight"}, {**noisy_n, "case": "noisy"}], day=1))
    return last, tonight


def test_cli_rule_option(noisy_nights, capsys):
    last, tonight = noisy_nights
    assert CLI.run(_args(last, tonight, "--threshold", "10%")) == 1
    out = capsys.readouterr().out
    assert "2 regression" in out and "rule significant" in out
    assert CLI.run(_args(last, tonight, "--threshold", "10%", "--rule", "confident")) == 1
    out = capsys.readouterr().out
    assert "1 regression" in out and "1 insignificant" in out and "rule confident" in out
    assert "~ laptop  normalization/noisy" in out and "not confident" in out  # the note under the table
    assert CLI.run(_args(last, tonight, "--threshold", "16%", "--rule", "confident")) == 0
    assert CLI.run(_args(last, tonight, "--threshold", "10%", "--rule", "confident", "--format", "markdown")) == 1
    md = capsys.readouterr().out
    assert "**1 regression(s)**" in md and "whole 95% CI" in md and "not confident" in md
    with pytest.raises(SystemExit):
        _args(last, tonight, "--rule", "lenient")


def test_history_page_marks_follow_the_rule(noisy_nights, tmp_path: Path):
    from xpubench.report import build_site

    def flagged(rule: str) -> int:
        index = build_site(list(noisy_nights), tmp_path / f"site-{rule}", threshold=0.10, rule=rule)
        text = (index.parent / "history.html").read_text(encoding="utf-8")
        return int(text.split(" flagged regression point(s)")[0].rsplit(">", 1)[1])

    # the plain history marks judge each point on its rounds (one process per night)
    assert flagged("significant") == 2
    assert flagged("confident") == 1
    with pytest.raises(ValueError):
        flagged("lenient")

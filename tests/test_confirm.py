"""Confirmation reruns: suspects re-measured A/B in fresh processes, then judged on process medians."""

from __future__ import annotations

import argparse
import math

import pytest

from xpubench.regress import compare as C
from xpubench.regress import confirm as CF
from xpubench.results.run_view import Run


def rec(median: float, case: str = "layernorm[d=8]") -> dict:
    samples = [median * (1 + 0.001 * (j % 5 - 2)) for j in range(30)]
    return {"suite": "normalization", "case": case, "name": case.split("[")[0], "params": {"d": 8},
            "size": "smoke", "mode": "forward", "backend": "torch:cpu:fp32", "status": "ok",
            "time_s": {"median": median, "samples": samples, "ci95": [median * 0.999, median * 1.001],
                       "rounds": 30}}


def run(records, day, options=None, commit="abc"):
    return Run.of({"schema_version": 1,
                   "run": {"id": f"r{day}", "started_at": f"2026-01-{day:02d}T02:00:00+00:00",
                           "git": {"commit": commit}, "options": options or {"size": "smoke"}},
                   "machine": {"machine_id": "box"}, "measurements": records})


class FakeMachine:
    """Process medians drawn around each side's true time: what fresh processes would show."""

    def __init__(self, true_s: dict[str, float], spread: float = 0.01):
        self.true_s, self.spread, self.calls, self.k = true_s, spread, [], 0

    def __call__(self, items, options):
        side = "slow" if options.get("inject_slowdown") else "fast"
        self.calls.append(side)
        out = []
        for record, backend in items:
            self.k += 1
            m = self.true_s[side] * math.exp(self.spread * ((self.k * 7) % 5 - 2) / 2)
            out.append({**rec(m, record["case"]), "worker_pid": 1000 + self.k})
        return out


@pytest.fixture
def same_build(monkeypatch):
    monkeypatch.setattr(CF, "same_build", lambda run: True)


def test_a_within_process_false_alarm_is_not_confirmed(same_build):
    base, new = [run([rec(1.0)], 1)], [run([rec(1.2)], 2)]  # one process each: 20% "slower"
    comparisons = C.compare_runs(base, new)
    assert comparisons[0].verdict == C.UNSUPPORTED
    fake = FakeMachine({"fast": 1.0, "slow": 1.0})  # a rerun shows no difference: the 20% was the process
    out, info = CF.confirm(comparisons, base, new, processes=3, seed=1, measure=fake, clock=iter(range(100)).__next__, measure_pair=None)
    (c,) = out
    assert c.verdict in (C.UNCHANGED, C.UNRESOLVED) and c.method == "confirmed" and not c.is_regression
    assert "confirmed by 3+3 interleaved fresh processes" in c.note
    assert sorted(fake.calls) == ["fast"] * 6 and info.processes == 6 and info.suspects == 1
    assert "6 fresh worker processes" in info.note() and "per suspect" in info.note()


def test_an_injected_slowdown_is_confirmed_and_the_order_alternates(same_build):
    base = [run([rec(1.0)], 1)]
    new = [run([rec(1.2)], 2, options={"size": "smoke", "inject_slowdown": ["normalization/layernorm*=20%"]})]
    fake = FakeMachine({"fast": 1.0, "slow": 1.2})
    out, _ = CF.confirm(C.compare_runs(base, new), base, new, processes=4, seed=3, measure=fake, measure_pair=None)
    (c,) = out
    assert c.verdict == C.REGRESSION and c.ratio == pytest.approx(1.2, rel=0.02)
    pairs = [fake.calls[i:i + 2] for i in range(0, 8, 2)]
    assert all(sorted(p) == ["fast", "slow"] for p in pairs)  # A and B in every pass
    assert len({tuple(p) for p in pairs}) == 2  # and not always in the same order


def test_another_build_on_the_base_side_is_not_re_measured(monkeypatch):
    monkeypatch.setattr(CF, "same_build", lambda run: False)
    base, new = [run([rec(1.0)], 1, commit="old")], [run([rec(1.3)], 2)]
    fake = FakeMachine({"fast": 1.3, "slow": 1.3})
    out, info = CF.confirm(C.compare_runs(base, new), base, new, processes=5, seed=2, measure=fake, measure_pair=None)
    assert fake.calls == ["fast"] * 5 and not info.base_remeasured and "NEW only" in info.note()
    assert out[0].verdict == C.REGRESSION and "0+5" in out[0].note


def with_processes(record: dict, medians: list[float]) -> dict:
    """``record`` as a --repeat run stores it: one entry per fresh process."""
    t = record["time_s"]
    t["processes"] = [{"pass": k, "status": "ok", "median": m} for k, m in enumerate(medians)]
    return record


def test_no_change_from_one_process_is_re_measured_and_a_resolved_one_is_not(same_build):
    # one process per side: "no change" is no verdict (a rerun's spread is unknown) until confirmed
    base, new = [run([rec(1.0)], 1)], [run([rec(1.0)], 2)]
    comparisons = C.compare_runs(base, new)
    assert comparisons[0].verdict == C.UNRESOLVED and "one process per side" in comparisons[0].note
    fake = FakeMachine({"fast": 1.0, "slow": 1.0}, spread=0.001)
    out, info = CF.confirm(comparisons, base, new, processes=5, seed=4, measure=fake, measure_pair=None)
    assert info.suspects == 1 and len(fake.calls) == 10 and out[0].verdict == C.UNCHANGED
    # five tight processes per side resolve it: nothing to re-measure
    tight = [1.0, 1.001, 0.999, 1.0005, 0.9995]
    base = [run([with_processes(rec(1.0), tight)], 1)]
    new = [run([with_processes(rec(1.0), tight)], 2)]
    fake = FakeMachine({"fast": 1.0, "slow": 1.0})
    out, info = CF.confirm(C.compare_runs(base, new), base, new, measure=fake, measure_pair=None)
    assert fake.calls == [] and info.suspects == 0 and out[0].verdict == C.UNCHANGED


def test_both_sides_are_re_measured_with_the_confirmations_budget(same_build):
    base = [run([rec(1.0)], 1, options={"size": "smoke", "time_budget_s": 0.75})]
    new = [run([rec(1.2)], 2, options={"size": "smoke", "time_budget_s": 2.0})]
    seen = []

    def measure(items, options):
        seen.append(options)
        return FakeMachine({"fast": 1.0, "slow": 1.0})(items, options)

    _, info = CF.confirm(C.compare_runs(base, new), base, new, processes=2, budget_s=0.1, measure=measure, measure_pair=None)
    assert len(seen) == 4 and all(o["time_budget_s"] == 0.1 for o in seen)
    assert all(o["telemetry"] is False and o["accuracy"] is False for o in seen)
    assert "0.1 s of rounds each" in info.note()


def test_a_bad_confirmation_budget_is_one_line(tmp_path, capsys):
    from xpubench.cli.main import main

    assert main(["compare", str(tmp_path), str(tmp_path), "--confirm-budget", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--confirm-budget 0: needs seconds > 0" in err


def test_cli_takes_confirm_and_seed():
    from xpubench.cli import compare as CLI

    p = argparse.ArgumentParser()
    CLI.add_arguments(p)
    assert p.parse_args(["a", "b", "--confirm"]).confirm == CF.DEFAULT_PROCESSES
    assert p.parse_args(["a", "b", "--confirm", "7", "--seed", "9"]).confirm == 7
    assert p.parse_args(["a", "b"]).confirm_budget == CF.DEFAULT_BUDGET_S
    assert p.parse_args(["a", "b"]).confirm is None  # auto: on where NEW can be measured again here
    assert p.parse_args(["a", "b", "--no-confirm"]).confirm == 0


def test_a_real_fresh_process_measures_the_record_with_its_sides_options(monkeypatch):
    from tests.verdict_suite import use_suite_module
    from xpubench.spec import registry as specmod

    use_suite_module(monkeypatch)
    cases = specmod.select(["verdicts"], None, "smoke")
    records = [{"suite": c.suite, "name": c.name, "case": c.case_id, "params": dict(c.params),
                "size": "smoke", "mode": c.mode} for c in cases]
    got = CF.measure_in_fresh_processes([(r, "torch:cpu:fp32") for r in records], {
        "size": "smoke", "time_budget_s": 0.05, "telemetry": False, "inject_slowdown": ["verdicts/spin_a=50%"]})
    assert [g["case"] for g in got] == [r["case"] for r in records] and all(g["status"] == "ok" for g in got)
    assert len({g["worker_pid"] for g in got}) == 1  # one fresh worker measures the backend's suspects
    (spin_a,) = [g for g in got if g["name"] == "spin_a"]
    assert spin_a["injected_slowdown"]["fraction"] == 0.5
    assert spin_a["time_s"]["median"] > 200e-6 * 1.3  # 200 us spin + 50% busy-wait


def test_compare_confirms_by_default_only_what_can_be_measured_again_here(monkeypatch):
    from xpubench.cli import compare as CLI

    new = [run([rec(1.0)], 2)]
    monkeypatch.setattr(CF, "measured_here", lambda r: True)
    monkeypatch.setattr(CF, "same_build", lambda r: True)
    assert CLI.auto_confirm(new) == CF.DEFAULT_PROCESSES
    monkeypatch.setattr(CF, "same_build", lambda r: False)  # another commit: its code is not here
    assert CLI.auto_confirm(new) == 0
    monkeypatch.setattr(CF, "same_build", lambda r: True)
    monkeypatch.setattr(CF, "measured_here", lambda r: False)  # a file from another machine
    assert CLI.auto_confirm(new) == 0


def test_measured_here_reads_the_host_and_cpu():
    import socket

    from xpubench.hardware.cpu import cpu_info

    cpu = cpu_info()
    here = {"hostname": socket.gethostname(), "cpu": {"model": cpu.get("model"),
                                                        "logical_cores": cpu.get("logical_cores")}}
    assert CF.measured_here(Run.of({"run": {}, "machine": here, "measurements": []}))
    assert not CF.measured_here(Run.of({"run": {}, "machine": {**here, "hostname": "elsewhere"},
                                        "measurements": []}))


class NoisyMachine:
    """Process medians log-normal around each side's true time (seeded): a memory-bound case on a small VM."""

    def __init__(self, true_s: dict[str, float], sd: float, seed: int = 0):
        import random

        self.true_s, self.sd, self.rng, self.calls = true_s, sd, random.Random(seed), []

    def __call__(self, items, options):
        side = "slow" if options.get("inject_slowdown") else "fast"
        self.calls.append((side, len(items)))
        return [rec(self.true_s[side] * math.exp(self.rng.gauss(0, self.sd)), r["case"]) for r, _ in items]


def injected_pair(fast: float, slow: float, cases=("layernorm[d=8]",)):
    base = [run([rec(fast, c) for c in cases], 1)]
    new = [run([rec(slow, c) for c in cases], 2,
               options={"size": "smoke", "inject_slowdown": ["normalization/layernorm*=20%"]})]
    return base, new


def test_an_undecided_suspect_beyond_the_threshold_gets_more_processes_and_is_decided(same_build):
    """At a 15% spread between processes, 5 + 5 cannot tell a 20% slowdown; up to 25 + 25 can."""
    base, new = injected_pair(1.0, 1.2)
    few, _ = CF.confirm(C.compare_runs(base, new), base, new, processes=5, max_processes=5, seed=1,
                        measure=NoisyMachine({"fast": 1.0, "slow": 1.2}, 0.15, seed=2), measure_pair=None)
    assert few[0].verdict != C.REGRESSION and "confirmed by 5+5" in few[0].note
    assert "alpha" not in few[0].note  # one look: the whole alpha
    machine = NoisyMachine({"fast": 1.0, "slow": 1.2}, 0.15, seed=2)
    out, info = CF.confirm(C.compare_runs(base, new), base, new, processes=5, max_processes=25, seed=1,
                           escalate_s=1e9, measure=machine, measure_pair=None)
    (c,) = out
    assert c.verdict == C.REGRESSION and "confirmed by 25+25" in c.note and "alpha 0.005 per look" in c.note
    assert info.escalated == 1 and info.passes == 25 and len(machine.calls) == 50
    assert "1 undecided suspect(s) got up to 25 passes" in info.note() and "the most processes" in info.note()


def test_only_undecided_suspects_beyond_the_threshold_escalate(same_build):
    """A suspect whose estimate is inside the threshold stays 'cannot resolve' after K passes;
    one decided after K passes is not re-measured either."""
    d = CF.needs_more
    assert d(C.Decision(C.UNRESOLVED, 1.12, 0.2, False, "processes", "cannot resolve < 30% here"), 0.05)
    assert d(C.Decision(C.INSIGNIFICANT, 0.90, 0.2, False, "processes", ""), 0.05)
    assert not d(C.Decision(C.UNRESOLVED, 1.02, 0.7, False, "processes", "cannot resolve < 30% here"), 0.05)
    assert not d(C.Decision(C.REGRESSION, 1.3, 0.001, True, "processes", ""), 0.05)
    assert not d(C.Decision(C.UNCHANGED, 1.0, 0.9, False, "processes", ""), 0.05)
    base, new = injected_pair(1.0, 1.0, cases=("layernorm[d=8]", "layernorm[d=16]"))
    machine = FakeMachine({"fast": 1.0, "slow": 1.0}, spread=0.001)  # quiet and unchanged: decided at once
    out, info = CF.confirm(C.compare_runs(base, new), base, new, processes=3, max_processes=25, measure=machine, measure_pair=None)
    assert info.escalated == 0 and len(machine.calls) == 6 and all(c.verdict == C.UNCHANGED for c in out)


def test_the_extra_passes_stop_at_their_time_cap(same_build):
    base, new = injected_pair(1.0, 1.2)
    ticks = iter(range(0, 100_000, 10))  # every clock read: 10 s later
    out, info = CF.confirm(C.compare_runs(base, new), base, new, processes=5, max_processes=25, seed=1,
                           escalate_s=100, measure=NoisyMachine({"fast": 1.0, "slow": 1.2}, 0.15, seed=2),
                           clock=ticks.__next__, measure_pair=None)
    assert info.capped and 5 < info.passes < 25 and "stopped by its time cap" in info.note()
    assert f"confirmed by {info.passes}+{info.passes}" in out[0].note


def test_bad_escalation_cap_is_one_line(tmp_path, capsys):
    from xpubench.cli.main import main

    assert main(["compare", str(tmp_path), str(tmp_path), "--confirm-escalate-s", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--confirm-escalate-s -1: needs seconds >= 0" in err


def test_a_bad_focus_is_one_line(tmp_path, capsys):
    from xpubench.cli.main import main

    assert main(["compare", str(tmp_path), str(tmp_path), "--confirm-focus", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--confirm-focus 0: needs at least 1 suspect per pass" in err


def test_a_suspect_whose_estimate_comes_back_inside_the_threshold_stops_escalating(same_build):
    """Every K extra passes the undecided are looked at again: noise that regressed toward
    no change stops costing processes; a real change goes on."""
    cases = ("layernorm[d=8]", "layernorm[d=16]")
    base, new = injected_pair(1.0, 1.0, cases=cases)

    class Scripted:
        """Process medians +-30% alternating (undecided at 5 + 5); d=8 is 25% slower in NEW,
        d=16 is 8% slower in NEW's first 5 processes only (a lucky first look)."""

        def __init__(self):
            self.seen: dict[tuple[str, str], int] = {}

        def __call__(self, items, options):
            side = "slow" if options.get("inject_slowdown") else "fast"
            out = []
            for r, _ in items:
                n = self.seen[(side, r["case"])] = self.seen.get((side, r["case"]), 0) + 1
                shift = 1.0 if side == "fast" else 1.25 if r["case"] == "layernorm[d=8]" else 1.08 if n <= 5 else 0.98
                out.append(rec(shift * math.exp(0.3 * (1 if n % 2 else -1)), r["case"]))
            return out

    machine = Scripted()
    out, info = CF.confirm(C.compare_runs(base, new), base, new, processes=5, max_processes=25, seed=1,
                           escalate_s=1e9, measure=machine, measure_pair=None)
    assert info.escalated == 2
    assert machine.seen[("slow", "layernorm[d=16]")] == 10  # dropped at the first look after 5 more
    assert machine.seen[("slow", "layernorm[d=8]")] == 25 and info.stopped_by == "the most processes"
    by_case = {c.case: c for c in out}
    assert "confirmed by 10+10" in by_case["layernorm[d=16]"].note
    assert by_case["layernorm[d=16]"].verdict != C.REGRESSION


def test_the_note_says_when_every_escalated_estimate_came_back_inside_the_threshold(same_build):
    """A lucky first look (+8%), then no change: the extra passes end at the first look after K more."""
    base, new = injected_pair(1.0, 1.0)
    seen = {}

    def lucky(items, options):
        side = "slow" if options.get("inject_slowdown") else "fast"
        out = []
        for r, _ in items:
            n = seen[side] = seen.get(side, 0) + 1
            shift = 1.08 if side == "slow" and n <= 5 else 1.0
            out.append(rec(shift * math.exp(0.3 * (1 if n % 2 else -1)), r["case"]))
        return out

    out, info = CF.confirm(C.compare_runs(base, new), base, new, processes=5, max_processes=25, seed=1,
                           escalate_s=1e9, measure=lucky, measure_pair=None)
    assert info.escalated == 1 and info.passes == 10 and seen["slow"] == 10
    assert "stopped by every estimate coming back inside the threshold" in info.note()
    assert out[0].verdict != C.REGRESSION


def test_each_extra_pass_measures_only_the_strongest_undecided_suspects(same_build):
    """Four noisy suspects +8% and one real +25% change, all undecided at 5 + 5: with a focus
    of one, every extra pass goes to the real change until it has its 25 processes, instead
    of the cap being spread over all five."""
    cases = ("layernorm[d=8]", "layernorm[d=16]", "layernorm[d=24]", "layernorm[d=32]", "layernorm[d=40]")
    base, new = injected_pair(1.0, 1.0, cases=cases)
    order, seen = [], {}

    def machine(items, options):
        side = "slow" if options.get("inject_slowdown") else "fast"
        if len(seen.get((side, items[0][0]["case"]), ())) >= 5:
            order.append([r["case"] for r, _ in items])
        out = []
        for r, _ in items:
            xs = seen.setdefault((side, r["case"]), [])
            xs.append(1)
            shift = 1.0 if side == "fast" else 1.25 if r["case"] == "layernorm[d=8]" else 1.08
            out.append(rec(shift * math.exp(0.3 * (1 if len(xs) % 2 else -1)), r["case"]))
        return out

    out, info = CF.confirm(C.compare_runs(base, new), base, new, processes=5, max_processes=25, seed=1,
                           escalate_s=1e9, focus=1, measure=machine, measure_pair=None)
    assert info.escalated == 5
    assert order[:40] == [["layernorm[d=8]"]] * 40  # 20 extra passes, both sides, the real change alone
    by_case = {c.case: c for c in out}
    assert "confirmed by 25+25" in by_case["layernorm[d=8]"].note
    assert info.passes == 25


def test_what_the_confirmation_measured_is_kept_as_results_files(same_build, tmp_path):
    from xpubench.cli.compare import write_confirmed
    from xpubench.results.reader import load_runs

    base = [run([rec(1.0)], 1)]
    new = [run([rec(1.2)], 2, options={"size": "smoke", "inject_slowdown": ["normalization/layernorm*=20%"]})]
    out, info = CF.confirm(C.compare_runs(base, new), base, new, processes=4, max_processes=4, seed=3,
                           measure=FakeMachine({"fast": 1.0, "slow": 1.2}), measure_pair=None)
    assert set(info.runs) == {("base", "box"), ("new", "box")}
    line = write_confirmed(tmp_path, info.runs)
    assert str(tmp_path / "base") in line
    for side, true_s in (("base", 1.0), ("new", 1.2)):
        (saved,) = load_runs([tmp_path / side], strict=True).runs
        (m,) = saved.data["measurements"]
        assert len(m["time_s"]["processes"]) == 4 and m["time_s"]["median"] == pytest.approx(true_s, rel=0.02)
        assert saved.meta["confirmation"]["side"] == side and saved.meta["confirmation"]["seed"] == 3
    # judged again from the files, without re-measuring: the confirmation's verdict
    again = C.compare_runs(load_runs([tmp_path / "base"]).runs, load_runs([tmp_path / "new"]).runs)
    assert again[0].verdict == out[0].verdict == C.REGRESSION


def test_confirm_out_that_cannot_be_written_costs_one_line_not_the_verdicts(tmp_path):
    from xpubench.cli.compare import write_confirmed

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    line = write_confirmed(blocker, {("base", "box"): run([rec(1.0)], 1).data})
    assert line.startswith(f"--confirm-out {blocker}: cannot write")


def test_confirm_out_without_a_confirmation_says_nothing_was_written(tmp_path, capsys):
    import json

    from xpubench.cli.main import main

    for name, day in (("base", 1), ("new", 2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "r.json").write_text(json.dumps(run([rec(1.0)], day).data))
    main(["compare", str(tmp_path / "base"), str(tmp_path / "new"), "--no-confirm",
          "--confirm-out", str(tmp_path / "kept")])
    assert "--confirm-out: nothing written, no confirmation ran" in capsys.readouterr().out
    assert not (tmp_path / "kept").exists()


class PairedMachine:
    """Pairs of processes taking turns: each pass's machine moves both sides alike (log sd
    ``shared``); within a pair they differ by ``own`` (seeded)."""

    def __init__(self, true_s: dict[str, float], shared: float, own: float, seed: int = 0):
        import random

        self.true_s, self.shared, self.own, self.rng, self.calls = true_s, shared, own, random.Random(seed), []

    def __call__(self, items, base_options, new_options, lead, pair_id):
        self.calls.append((lead, pair_id, len(items)))
        out = {"base": [], "new": []}
        for r, _ in items:
            moved = math.exp(self.rng.gauss(0, self.shared))
            for side, opts in (("base", base_options), ("new", new_options)):
                speed = "slow" if opts.get("inject_slowdown") else "fast"
                m = self.true_s[speed] * moved * math.exp(self.rng.gauss(0, self.own))
                out[side].append({**rec(m, r["case"]), "paired": {"pair": pair_id, "lead": lead, "side": side}})
        return out["base"], out["new"]


def test_pairs_taking_turns_decide_what_separate_processes_cannot(same_build):
    """A 20% slowdown on a machine whose seconds move by 15%: 5 + 5 separate processes cannot tell
    it (test above); 5 pairs taking turns, 2% apart within a pair, flag it at the first look."""
    base, new = injected_pair(1.0, 1.2)
    machine = PairedMachine({"fast": 1.0, "slow": 1.2}, shared=0.15, own=0.02, seed=2)
    out, info = CF.confirm(C.compare_runs(base, new), base, new, processes=5, max_processes=25, seed=1,
                           measure_pair=machine)
    (c,) = out
    assert c.verdict == C.REGRESSION and "confirmed by 5 pairs of fresh processes taking turns" in c.note
    assert info.paired and info.escalated == 0 and len(machine.calls) == 5
    assert {lead for lead, _, _ in machine.calls} == {"base", "new"}  # drawn per pass: both lead
    assert [pid for _, pid, _ in machine.calls] == [f"1-{k}" for k in range(5)]
    assert "in pairs of workers taking turns" in info.note()
    new_doc = info.runs[("new", "box")]["measurements"][0]
    assert [p["pair"] for p in new_doc["time_s"]["processes"]] == [f"1-{k}" for k in range(5)]


def test_pairs_taking_turns_keep_an_unchanged_case_unchanged(same_build):
    base, new = injected_pair(1.0, 1.0, cases=("layernorm[d=8]", "layernorm[d=16]"))
    new = [run([rec(1.0, c) for c in ("layernorm[d=8]", "layernorm[d=16]")], 2)]
    machine = PairedMachine({"fast": 1.0, "slow": 1.0}, shared=0.15, own=0.003, seed=5)
    comparisons = C.compare_runs(base, new)
    assert all(c.verdict == C.UNRESOLVED for c in comparisons)  # one process a side: suspects
    out, info = CF.confirm(comparisons, base, new, processes=5, seed=2, measure_pair=machine)
    assert info.suspects == 2 and info.paired
    assert all(c.verdict == C.UNCHANGED and c.method == "confirmed" for c in out)

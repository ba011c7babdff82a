"""Two workers taking turns (xpubench.run.paired): the parent's turn-keeping, the timing loop's
turns, the paired test, and two real workers measuring one case."""

from __future__ import annotations

import math
import random

import pytest

from xpubench.measure.processes import PAIRED_TRIM_FROM, compare_paired, compare_processes, far_off_pairs
from xpubench.measure.timing import TimingConfig, measure
from xpubench.options import RunOptions
from xpubench.run.paired import GO, ROUND, SETUP, STOP, PairedCase, _Side


def sides(budget_s=0.01, min_rounds=3):
    opts = RunOptions(size="smoke", time_budget_s=budget_s, min_rounds=min_rounds, telemetry=False)
    return [_Side("new", None, opts), _Side("base", None, opts)]  # "new" leads


def paired_record(medians, pairs=None):
    """An ok record whose processes have these medians, each in its pair (None: measured alone);
    pairs default to s-0, s-1, ..."""
    pairs = [f"s-{i}" for i in range(len(medians))] if pairs is None else pairs
    procs = [{"median": m, "status": "ok", **({"pair": p} if p is not None else {})}
             for m, p in zip(medians, pairs)]
    return {"status": "ok", "time_s": {"median": 1.0, "processes": procs}}


def test_setups_go_one_at_a_time_the_lead_first_then_rounds_alternate():
    new, base = sides()
    state = PairedCase([new, base])
    state.asked(base, SETUP, 0.0)
    assert state.grants(0.0) == []  # the lead has not asked yet: nobody runs alone
    state.asked(new, SETUP, 0.0)
    assert state.grants(0.0) == [(new, GO)]
    assert state.grants(0.1) == []  # a turn is held
    state.asked(new, ROUND, 1.0)  # the lead's set-up is over: its next ask ends it
    assert state.grants(1.0) == [(base, GO)]  # set-ups before rounds
    state.asked(base, ROUND, 2.0)
    order = []
    t = 2.0
    for _ in range(6):
        (side, reply), = state.grants(t)
        assert reply == GO
        order.append(side.name)
        t += 0.005
        state.asked(side, ROUND, t)
    assert order == ["new", "base"] * 3
    assert [p for _, p in state.log[:2]] == [SETUP, SETUP]
    assert new.rounds == base.rounds == 3 and new.held_s == pytest.approx(0.015)
    # each side's limit runs from its own first turn: base waited a second for the lead's set-up
    assert new.deadline == pytest.approx(0.0 + new.opts.case_timeout_s)
    assert base.deadline == pytest.approx(1.0 + base.opts.case_timeout_s)


def test_the_rounds_stop_together_once_each_side_had_its_budget_and_min_rounds():
    new, base = sides(budget_s=0.019, min_rounds=3)
    state = PairedCase([new, base])
    for s in (new, base):
        state.asked(s, ROUND, 0.0)
    t, granted = 0.0, 0
    while True:
        replies = state.grants(t)
        if replies and replies[0][1] == STOP:
            break
        (side, _), = replies
        granted += 1
        t += 0.004  # each round lasts 4 ms: 5 rounds a side fill the 20 ms budget
        state.asked(side, ROUND, t)
    assert sorted(s.name for s, r in replies if r == STOP) == ["base", "new"]
    assert new.rounds == base.rounds == 5 and granted == 10


def test_a_side_that_leaves_lets_the_other_finish_alone():
    new, base = sides(budget_s=0.01, min_rounds=2)
    state = PairedCase([new, base])
    state.asked(new, ROUND, 0.0)
    state.finished(base, {"status": "skipped"}, 0.0)  # e.g. the case is not offered on its backend
    t = 0.0
    rounds = 0
    while True:
        (side, reply), = state.grants(t)
        if reply == STOP:
            break
        assert side is new
        rounds += 1
        t += 0.004
        state.asked(new, ROUND, t)
    assert rounds == 3 and base.record == {"status": "skipped"}


def test_the_timing_loop_takes_turns_and_rewarms_after_each_turn():
    calls = []

    def run_block(n):
        calls.append(n)
        return 0.001 * n

    turns = iter([True] * 7 + [False])
    cfg = TimingConfig(min_rounds=100, time_budget_s=0.0, warmup_min_s=0.0, warmup_max_s=0.0)
    clock = iter(range(0, 10_000)).__next__
    res = measure(run_block, cfg, turn=lambda: next(turns), clock=clock)
    assert len(res.samples) == 7 and res.stop_reason == "turns"  # the turns end the rounds, not min_rounds
    timed = calls[-14:]  # each round: one untimed call, then the timed block
    assert timed[0::2] == [1] * 7 and all(n == res.iterations_per_round for n in timed[1::2])


def test_the_paired_test_cancels_what_a_pair_shares():
    """Each pass's machine moves both sides (log sd 0.15); within a pair they differ by 2%: 5 pairs
    find a 20% change that the two-sample test on the same processes cannot."""
    rng = random.Random(3)
    pairs = []
    for _ in range(5):
        shared = math.exp(rng.gauss(0, 0.15))
        pairs.append((shared * math.exp(rng.gauss(0, 0.02)), 1.2 * shared * math.exp(rng.gauss(0, 0.02))))
    paired = compare_paired(pairs)
    assert paired.p_value < 0.001 and paired.ci95[0] > 1.1 and paired.dof == 4  # 5 pairs: nothing trimmed
    assert compare_processes([b for b, _ in pairs], [n for _, n in pairs]).p_value > 0.005


def test_the_paired_test_keeps_its_false_alarm_rate():
    """A/A, seeded: K pairs whose log ratios are normal (and, from PAIRED_TRIM_FROM on, trimmed):
    the rate at alpha 0.01 stays near 1%."""
    rng = random.Random(7)
    for k in (5, PAIRED_TRIM_FROM + 2):
        alarms = sum(compare_paired([(1.0, math.exp(rng.gauss(0, 0.05))) for _ in range(k)]).p_value < 0.01
                     for _ in range(3000))
        assert 0.004 < alarms / 3000 < 0.018, (k, alarms)


def test_one_pair_far_off_invents_no_change():
    pairs = [(1.0, 1.0), (1.0, 1.01), (1.0, 0.99), (1.0, 1.0), (1.0, 3.0)]
    t = compare_paired(pairs)
    assert t.left_out == 1 and t.p_value > 0.3
    few = pairs[1:]  # 4 pairs give no median to trust: nothing left out, the far pair only widens
    assert compare_paired(few).left_out == 0 and compare_paired(few).p_value > 0.3


# The pairs (BASE ms, NEW ms) of one real confirmation of JAX LayerNorm forward with an
# injected 10% on NEW (results/verdicts-bench-r9, pair 3): 7 of 19 pairs hold processes
# running about 3x slow for their life; in 6 of them only one side's, a ratio far off.
JAX_LAYERNORM_PAIRS = [(3.05, 3.54), (3.10, 3.21), (3.09, 3.14), (2.71, 3.10), (2.90, 3.04), (3.18, 12.13),
                       (2.84, 3.21), (8.75, 2.91), (2.47, 2.78), (2.35, 2.65), (8.39, 9.65), (3.66, 3.50),
                       (7.76, 3.28), (2.68, 2.88), (3.10, 3.12), (9.46, 3.06), (2.53, 2.88), (2.65, 9.86),
                       (7.96, 2.85)]


def test_pairs_at_a_level_of_their_own_are_left_out_and_the_verdict_counts_them():
    from xpubench.regress import compare as C
    from xpubench.regress import levels

    t = compare_paired(JAX_LAYERNORM_PAIRS)
    assert t.left_out == 6 and 1.05 < t.ratio < 1.15 and t.p_value < 0.005
    both_slow = JAX_LAYERNORM_PAIRS[10]  # 8.39 vs 9.65: slow together, an ordinary ratio, kept
    assert not far_off_pairs([math.log(n / b) for b, n in JAX_LAYERNORM_PAIRS])[0][10], both_slow

    base = paired_record([b for b, _ in JAX_LAYERNORM_PAIRS])
    new = paired_record([n for _, n in JAX_LAYERNORM_PAIRS])
    d = C.judge(base, new, alpha=0.005)
    assert d.verdict == C.REGRESSION and d.method == levels.PAIRED
    assert "6 of 19 pairs left out, each at a level of its own" in d.note


def test_at_most_a_third_of_the_pairs_are_left_out_the_farthest_first():
    logs = [0.0, 0.01, -0.01, 2.0, -1.5]
    far, cut = far_off_pairs(logs)
    assert far == [False, False, False, True, False] and cut == pytest.approx(1.5)


def test_leaving_out_far_pairs_keeps_the_false_alarm_rate_and_finds_a_change():
    """Seeded: log ratios with sd 0.06, 15% of pairs shifted by +-0.7..1.4 (a process at a level
    of its own). A/A at alpha 0.01 stays near 1%; an injected 10% is found at 20 pairs."""
    rng = random.Random(11)

    def pairs(k, shift):
        out = []
        for _ in range(k):
            x = rng.gauss(shift, 0.06)
            if rng.random() < 0.15:
                x += rng.choice((-1, 1)) * rng.uniform(0.7, 1.4)
            out.append((1.0, math.exp(x)))
        return out

    for k in (5, 12):
        alarms = sum(compare_paired(pairs(k, 0.0)).p_value < 0.01 for _ in range(2000))
        assert alarms / 2000 < 0.02, (k, alarms)
    found = sum((lambda t: t.p_value < 0.005 and t.ratio > 1.05)(compare_paired(pairs(20, math.log(1.1))))
                for _ in range(300))
    assert found / 300 > 0.9, found


def test_a_real_pair_of_workers_takes_turns(monkeypatch):
    from tests.verdict_suite import use_suite_module
    from xpubench.backends.base import BackendSpec
    from xpubench.run.paired import measure_paired, paired_options
    from xpubench.spec import registry as specmod

    use_suite_module(monkeypatch)
    cases = specmod.select(["verdicts"], ["spin_a"], "smoke")
    base = {"size": "smoke", "time_budget_s": 0.05, "telemetry": False, "accuracy": False}
    new = {**base, "inject_slowdown": ["verdicts/spin_a=50%"]}
    got = measure_paired(BackendSpec.parse("torch:cpu:fp32"), cases, paired_options(base, new), "base", "s-0")
    (b,), (n,) = got["base"], got["new"]
    assert b["status"] == n["status"] == "ok"
    assert b["time_s"]["stop_reason"] == n["time_s"]["stop_reason"] == "turns"
    assert b["time_s"]["rounds"] == n["time_s"]["rounds"] >= 5
    assert b["paired"] == {"pair": "s-0", "lead": "base", "side": "base", "env": {"OMP_WAIT_POLICY": "PASSIVE"}}
    assert n["paired"]["side"] == "new" and b["worker_pid"] != n["worker_pid"]
    assert n["time_s"]["median"] > b["time_s"]["median"] * 1.2  # the injected 50%, in the same seconds


def test_the_paired_level_needs_every_process_in_a_pair_and_leaves_out_a_pair_that_lost_a_side():
    from xpubench.regress import levels
    from xpubench.results.view import Measurement

    def side(medians, pairs):
        return Measurement.of(paired_record(medians, pairs))

    base = side([1.0, 1.1, 0.9], ["s-0", "s-1", "s-2"])
    new = side([1.2, 1.32, 1.08], ["s-0", "s-1", "s-2"])
    assert levels.level_of(base, new, None) == levels.PAIRED
    assert levels.process_pairs(base, new) == [(1.0, 1.2), (1.1, 1.32), (0.9, 1.08)]
    t = levels.level_test(base, new, levels.PAIRED, None, 0.01)
    assert t.ratio == pytest.approx(1.2) and t.p_value == 0.0  # the same ratio in every pair
    unpaired = side([1.2, 1.32, 1.08], ["s-0", "s-1", None])  # one process measured on its own
    assert levels.level_of(base, unpaired, None) == levels.PROCESSES
    lost = side([1.2, 1.32], ["s-0", "s-1"])  # NEW's process of pair s-2 failed
    assert levels.level_of(base, lost, None) == levels.PAIRED
    assert levels.process_pairs(base, lost) == [(1.0, 1.2), (1.1, 1.32)]
    one_left = side([1.2, 1.32], ["s-0", "s-9"])
    assert levels.level_of(base, one_left, None) == levels.PROCESSES  # one pair is no paired test


def test_a_failing_case_is_recorded_on_both_sides_and_the_pair_goes_on(monkeypatch):
    from tests.verdict_suite import use_suite_module
    from xpubench.backends.base import BackendSpec
    from xpubench.run.paired import measure_paired, paired_options
    from xpubench.spec import registry as specmod

    use_suite_module(monkeypatch, "tests.fault_suite")
    cases = sorted(specmod.select(["faults"], ["raises", "good_a"], "smoke"), key=lambda c: c.name != "raises")
    opts = {"size": "smoke", "time_budget_s": 0.05, "telemetry": False, "accuracy": False, "case_timeout_s": 60}
    got = measure_paired(BackendSpec.parse("torch:cpu:fp32"), cases, paired_options(opts, opts), "new", "f-0")
    for side in ("base", "new"):
        raised, good = got[side]
        assert raised["status"] == "error" and raised["reason"] == "ValueError: the layer exploded"
        assert good["status"] == "ok" and good["time_s"]["stop_reason"] == "turns"


def test_a_case_timed_without_rounds_is_measured_whole_in_its_setup_turn(monkeypatch):
    """Train to a target (or a distributed case) has no timed rounds to take turns on: it
    asks for its set-up turn first and holds it until its record is back, so the other
    side's worker never trains at the same time."""
    from xpubench.backends.base import BackendSpec, make_backend
    from xpubench.measure import case as case_mod
    from xpubench.spec import registry as specmod

    events = []

    class FakeTurns:
        def setup(self):
            events.append(SETUP)

        def round(self):
            raise AssertionError("no timed rounds in a case trained to a target")

    def fake_convergence(backend, case, seed, on_epoch):
        events.append("trained")
        return {"status": "ok"}

    monkeypatch.setattr(case_mod, "measure_convergence", fake_convergence)
    case = next(iter(specmod.select(["convergence"], ["mnist_cnn"], "smoke")))
    backend = make_backend(BackendSpec.parse("torch:cpu:fp32"))
    rec = case_mod.measure_case(backend, case, RunOptions(size="smoke", telemetry=False), turns=FakeTurns())
    assert rec["status"] == "ok" and events == [SETUP, "trained"]

    # the parent's side: the set-up turn ends with the record, then the other side's begins
    new, base = sides()
    state = PairedCase([new, base])
    state.asked(new, SETUP, 0.0)
    state.asked(base, SETUP, 0.0)
    assert state.grants(0.0) == [(new, GO)]
    assert state.grants(5.0) == []  # still training: base waits
    state.finished(new, {"status": "ok"}, 9.0)
    assert state.grants(9.0) == [(base, GO)] and new.held_s == 0.0


def test_a_backend_neither_side_can_start_is_skipped_on_both_with_the_reason():
    """Both workers fail their handshake (no CUDA here): each side's record says why; nothing raises."""
    from xpubench.backends.base import BackendSpec
    from xpubench.run.paired import measure_paired, paired_options
    from xpubench.spec import registry as specmod

    cases = specmod.select(["normalization"], ["layernorm"], "smoke")[:1]
    opts = {"size": "smoke", "time_budget_s": 0.05, "telemetry": False, "accuracy": False}
    got = measure_paired(BackendSpec.parse("torch:cuda:fp32"), cases, paired_options(opts, opts), "new", "u-0")
    for side in ("base", "new"):
        (rec,) = got[side]
        assert rec["status"] == "skipped" and rec["reason"].startswith("backend not usable: ")


def test_a_pair_member_that_dies_or_hangs_is_recorded_and_fresh_workers_take_the_next_case(monkeypatch):
    """Real faults in both workers of a pair: an abort is ``crashed`` on each side (the other
    side gets its turn once the first is dead), a hang past the case's deadline is
    ``timeout`` on both (the waiting side too: its worker is killed with the hung one), and
    the next case is measured taking turns by fresh workers."""
    from tests.verdict_suite import use_suite_module
    from xpubench.backends.base import BackendSpec
    from xpubench.run.paired import measure_paired, paired_options
    from xpubench.spec import registry as specmod

    use_suite_module(monkeypatch, "tests.fault_suite")
    order = ["aborts", "hang", "hog", "good_a"]
    cases = sorted(specmod.select(["faults"], order, "smoke"), key=lambda c: order.index(c.name))
    opts = {"size": "smoke", "time_budget_s": 0.05, "telemetry": False, "accuracy": False, "case_timeout_s": 6,
            "memory_limit_bytes": 1 << 30}  # the hog asks for 8 GiB: a MemoryError the worker survives
    got = measure_paired(BackendSpec.parse("torch:cpu:fp32"), cases, paired_options(opts, opts), "base", "f-1")
    for side in ("base", "new"):
        aborted, hung, hog, good = got[side]
        assert hog["status"] == "oom" and "MemoryError" in hog["reason"]
        assert aborted["status"] == "crashed" and "SIGABRT" in aborted["reason"]
        assert hung["status"] == "timeout" and "6 s" in hung["reason"]
        assert good["status"] == "ok" and good["time_s"]["stop_reason"] == "turns"
        assert good["paired"]["pair"] == "f-1" and good["paired"]["side"] == side


def test_a_side_that_never_gets_a_turn_is_ended_once_the_limits_added_together_pass():
    """Neither worker ever asks for a turn (stuck before its first ask), so neither has a
    deadline of its own: the backstop, the sides' limits added together, ends both."""
    import multiprocessing as mp

    from xpubench.backends.base import BackendSpec
    from xpubench.run.paired import run_paired_case
    from xpubench.spec import registry as specmod

    class StuckWorker:
        spec = BackendSpec.parse("torch:cpu:fp32")

        def __init__(self):
            self.conn, self.child = mp.Pipe()  # the child end never answers
            self.proc = type("Proc", (), {"is_alive": lambda self: True, "join": lambda self, t=None: None})()
            self.killed = False

        def kill(self):
            self.killed = True

    opts = RunOptions(size="smoke", telemetry=False, case_timeout_s=2)
    stuck = [_Side("new", StuckWorker(), opts), _Side("base", StuckWorker(), opts)]
    ticks = iter(range(10_000))
    case = specmod.select(["normalization"], ["layernorm"], "smoke")[0]
    state = run_paired_case(stuck, case, {"pair": "b-0", "lead": "new"}, clock=lambda: float(next(ticks)))
    for s in state.sides:
        assert s.worker.killed and s.record["status"] == "timeout"
        assert s.record["reason"] == "no turn within the pair's limits added together; worker killed"

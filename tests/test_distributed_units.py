"""Distributed suite, the parts without processes: synchronised rounds, efficiency, busbw, expansion, report."""

from __future__ import annotations

import math

import pytest

from xpubench.hardware.collectives import bus_bandwidth, bus_factor
from xpubench.measure.ranks import SyncedRounds, attach_scaling, measure_synced, scaling_efficiency
from xpubench.measure.timing import TimingConfig
from xpubench.options import RunOptions
from xpubench.spec import registry


class FakeGroup:
    """Two ranks in one process: the other rank is always ``lag`` seconds slower."""

    rank, world_size = 0, 2

    def __init__(self, lag: float):
        self.lag = lag
        self.barriers = 0

    def barrier(self) -> None:
        self.barriers += 1

    def max(self, value: float) -> float:
        return value + self.lag

    def gather(self, obj):
        return [obj, obj]


def test_a_round_lasts_as_long_as_the_slowest_rank_and_the_clock_follows_it():
    group = FakeGroup(lag=0.5)
    rounds = SyncedRounds(group, local_block=lambda n: 0.1 * n)
    assert rounds.run_block(2) == pytest.approx(0.7)
    assert rounds.clock() == pytest.approx(0.7)
    assert rounds.own_samples == [pytest.approx(0.1)]
    assert group.barriers == 1


def test_synced_measure_reports_the_slowest_rank_and_keeps_the_own_times():
    cfg = TimingConfig(time_budget_s=0.5, min_rounds=5, warmup_min_s=0.01, warmup_max_s=0.05, min_round_s=0.001)
    out = measure_synced(FakeGroup(lag=0.01), lambda n: 0.002 * n, cfg)
    n = out.timing.iterations_per_round
    assert out.timing.stats.median == pytest.approx(0.002 + 0.01 / n)
    assert len(out.own_samples) == len(out.timing.samples)
    assert all(s == pytest.approx(0.002) for s in out.own_samples)


def test_scaling_efficiency_and_its_interval():
    eff = scaling_efficiency(180.0, (170.0, 190.0), 100.0, (95.0, 105.0), 2)
    assert eff.value == pytest.approx(0.9)
    assert eff.ci95[0] == pytest.approx(170 / 210) and eff.ci95[1] == pytest.approx(190 / 190)


def _rec(w, thr, units, scaling="weak", status="ok"):
    med = units / thr
    return {"suite": "distributed", "name": "gpt", "mode": "dp_train_step", "backend": "torch:cpu:fp32",
            "params": {"batch": 2, "world_size": w, "scaling": scaling}, "world_size": w, "nnodes": 1,
            "status": status, "throughput_per_s": thr, "units_per_step": units,
            "time_s": {"median": med, "ci95": [med * 0.95, med * 1.05]}}


def test_attach_scaling_pairs_each_world_size_with_world_size_one_of_the_same_case():
    recs = [_rec(1, 100.0, 64), _rec(2, 150.0, 128), _rec(2, 90.0, 64, scaling="strong")]
    attach_scaling(recs)
    assert recs[0]["scaling_efficiency"] == pytest.approx(1.0)
    assert recs[1]["scaling_efficiency"] == pytest.approx(0.75)
    lo, hi = recs[1]["scaling_efficiency_ci95"]
    assert lo < 0.75 < hi
    assert recs[2]["scaling_efficiency"] is None  # strong scaling had no world size 1 here


def test_bus_bandwidth_uses_nccl_tests_factors():
    assert bus_factor("all_reduce", 4) == pytest.approx(1.5)
    assert bus_factor("all_gather", 4) == pytest.approx(0.75)
    row = bus_bandwidth("all_reduce", 1 << 20, 1e-3, 2)
    assert row["algbw_bytes_per_s"] == pytest.approx((1 << 20) / 1e-3)
    assert row["busbw_bytes_per_s"] == pytest.approx(row["algbw_bytes_per_s"])  # 2(n-1)/n = 1 at n=2
    assert math.isnan(bus_bandwidth("all_reduce", 8, 0.0, 2)["algbw_bytes_per_s"])


def test_the_suite_is_opt_in_and_each_case_runs_at_each_world_size():
    from xpubench.run.distributed import expand_world_sizes

    assert not any(c.suite == "distributed" for c in registry.select(None, None, "smoke"))
    cases = registry.select(["distributed"], ["gpt"], "smoke")
    opts = RunOptions(size="smoke", world_sizes=(2, 1), scaling="strong")
    out = expand_world_sizes(cases, opts)
    assert len(out) == 2 * len(cases)
    assert [c.params["world_size"] for c in out[:2]] == [1, 2]
    assert {c.params["scaling"] for c in out} == {"strong"}
    # weak scaling: the work grows with the world; strong: it stays
    weak = expand_world_sizes(cases, RunOptions(size="smoke", world_sizes=(1, 2)))
    assert weak[1].work.units == 2 * weak[0].work.units
    assert out[1].work.units == out[0].work.units


def test_bad_world_sizes_are_one_line_errors():
    from xpubench.options import world_sizes

    assert world_sizes("1,2,4") == (1, 2, 4)
    with pytest.raises(Exception, match="world sizes like"):
        world_sizes("0,2")


def test_scaling_section_draws_throughput_against_the_ideal_line_and_a_table():
    from xpubench.report.scaling import scaling_section

    recs = [_rec(1, 100.0, 64), _rec(2, 150.0, 128)]
    attach_scaling(recs)
    figs = []
    html = scaling_section(recs, lambda fig: figs.append(fig) or "<div>fig</div>")
    assert len(figs) == 1
    names = [t["name"] for t in figs[0].spec["data"]]
    assert "ideal" in names
    assert ">75%<" in html and "<table" in html

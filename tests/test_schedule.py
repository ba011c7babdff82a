"""The run order: case-major, backends of a case interleaved in a seeded shuffled order, K passes."""

from __future__ import annotations

from xpubench.run.schedule import interleaved

CASES = [f"case{i}" for i in range(12)]
SPECS = ["torch:cpu:fp32", "torch:cpu:bf16", "jax:cpu:fp32", "jax:cpu:bf16"]


def test_every_case_runs_all_its_backends_back_to_back():
    (only,) = interleaved(CASES, SPECS, seed=1)
    for i, case in enumerate(CASES):
        block = only[i * len(SPECS):(i + 1) * len(SPECS)]
        assert {s.case for s in block} == {case}
        assert sorted(s.spec for s in block) == sorted(SPECS)


def test_the_order_is_shuffled_per_case_and_reproducible_from_the_seed():
    a = interleaved(CASES, SPECS, seed=42, repeat=2)
    assert a == interleaved(CASES, SPECS, seed=42, repeat=2)
    firsts = {a[0][i * len(SPECS)].spec for i in range(len(CASES))}
    assert len(firsts) > 1  # not always the same backend first
    assert [s.spec for s in a[0]] != [s.spec for s in a[1]]  # each pass has its own order
    assert a != interleaved(CASES, SPECS, seed=43, repeat=2)


def test_repeat_gives_k_passes_with_every_slot_once_each():
    passes = interleaved(CASES, SPECS, seed=7, repeat=3)
    assert [p[0].pass_index for p in passes] == [0, 1, 2]
    for p in passes:
        assert len(p) == len(CASES) * len(SPECS)
        assert len({(s.case, s.spec) for s in p}) == len(p)

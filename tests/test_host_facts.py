"""Per-process facts from a fake sysfs tree: THP mode, NUMA nodes of the affinity."""

from pathlib import Path

from xpubench.run.host_facts import numa_nodes, parse_cpu_list, process_facts, thp_mode


def test_facts_from_a_fake_sysfs(tmp_path: Path):
    thp = tmp_path / "kernel/mm/transparent_hugepage"
    thp.mkdir(parents=True)
    (thp / "enabled").write_text("always [madvise] never\n")
    (thp / "defrag").write_text("[always] defer madvise never\n")
    for node, cpus in ((0, "0-3"), (1, "4-7")):
        d = tmp_path / f"devices/system/node/node{node}"
        d.mkdir(parents=True)
        (d / "cpulist").write_text(cpus + "\n")
    assert thp_mode(tmp_path) == {"enabled": "madvise", "defrag": "always"}
    assert parse_cpu_list("0-2,8") == {0, 1, 2, 8}
    assert numa_nodes({5, 6}, tmp_path) == [1] and numa_nodes({3, 4}, tmp_path) == [0, 1]
    facts = process_facts(tmp_path / "nowhere")
    assert facts["thp"] == {"enabled": None, "defrag": None} and facts["numa_nodes"] is None

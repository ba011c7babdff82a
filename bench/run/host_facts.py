"""What can make two worker processes of the same build differ, read where Linux shows it.

Transparent huge pages change how a tensor's pages are backed, the CPU affinity and
NUMA node decide which cores and memory a worker gets; a between-process spread is
easier to explain when each process's record names them. Unreadable facts are None.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SYS = Path("/sys")


def _bracketed(text: str) -> str | None:
    """``always [madvise] never`` -> ``madvise``."""
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else (text.strip() or None)


def thp_mode(root: Path = SYS) -> dict[str, str | None]:
    base = root / "kernel/mm/transparent_hugepage"
    out: dict[str, str | None] = {}
    for name in ("enabled", "defrag"):
        try:
            out[name] = _bracketed((base / name).read_text())
        except OSError:
            out[name] = None
    return out


def parse_cpu_list(text: str) -> set[int]:
    """``0-3,8`` -> {0, 1, 2, 3, 8}."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def numa_nodes(cpus: set[int], root: Path = SYS) -> list[int] | None:
    """The NUMA nodes whose CPUs this process may run on (None where sysfs has no nodes)."""
    nodes = []
    try:
        entries = sorted((root / "devices/system/node").glob("node[0-9]*"))
    except OSError:
        return None
    for entry in entries:
        try:
            if parse_cpu_list((entry / "cpulist").read_text()) & cpus:
                nodes.append(int(entry.name[4:]))
        except (OSError, ValueError):
            continue
    return nodes or None


def process_facts(root: Path = SYS) -> dict[str, Any]:
    """This process's pid, CPU affinity, NUMA nodes and the THP mode."""
    try:
        cpus = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = set()
    return {"pid": os.getpid(), "cpu_affinity": sorted(cpus) or None,
            "numa_nodes": numa_nodes(cpus, root) if cpus else None, "thp": thp_mode(root)}

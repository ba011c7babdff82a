"""Packaging: xpubench installs one import name, `xpubench`, and never shadows a user's own packages."""

from __future__ import annotations

import importlib.metadata as md
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_packages_list_names_every_package_folder():
    """pyproject lists packages explicitly (the folders are mapped): a new sub-package must be listed."""
    tool = _pyproject()["tool"]["setuptools"]
    mapping = tool["package-dir"]
    expected = set()
    for name, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            sub = [p for p in rel.parts if p != "."]
            dotted = ".".join([name, *sub])
            # a sub-folder mapped on its own (xpubench.backends) is listed under that name
            if not any(dotted != n and dotted.startswith(n + ".") and (REPO / mapping[n]) in init.parents
                       for n in mapping if n != name and len(n) > len(name)):
                expected.add(dotted)
    assert set(tool["packages"]) == expected


def test_the_installed_distribution_has_one_top_level_name():
    tops = sorted(top for top, dists in md.packages_distributions().items() if "xpubench" in dists)
    assert tops == ["xpubench"]


@pytest.mark.slow
def test_the_wheel_holds_only_xpubench(tmp_path):
    """Build the real wheel: every file lies under xpubench/ or the dist-info folder."""
    src = tmp_path / "src"  # a copy of the tracked files: setuptools leaves build/ where it builds
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("xpubench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"xpubench", next(t for t in tops if t.endswith(".dist-info"))}
    for module in ("xpubench/backends/base.py", "xpubench/suites/normalization.py", "xpubench/ci/matrix.toml",
                   "xpubench/pytest/plugin.py"):
        assert module in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "xpubench = xpubench.pytest.plugin" in entry_points


def test_a_users_own_bench_backends_and_suites_packages_are_not_shadowed(pytester: pytest.Pytester):
    """The user project of issue 12: its own `bench`, `backends` and `suites`, plain `pytest`,
    xpubench installed in the same environment (its pytest11 plugin loads in every session)."""
    for name, value in (("bench", 1), ("backends", 2), ("suites", 3)):
        pkg = pytester.mkpydir(name)
        (pkg / "__init__.py").write_text(f"MINE = {value}\n")
    pytester.makepyfile(test_mine=textwrap.dedent("""
        import sys

        def test_my_packages_are_mine():
            import backends
            import bench
            import suites

            assert (bench.MINE, backends.MINE, suites.MINE) == (1, 2, 3)

        def test_the_xpubench_plugin_is_loaded(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("xpubench")
            assert "xpubench.pytest.plugin" in sys.modules
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=2)

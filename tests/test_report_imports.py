"""The report reads files only: it imports no backend, no suite, not the matrix and no framework."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests import report_data as D

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_PACKAGES = ("xpubench.backends", "xpubench.suites", "xpubench.ci", "xpubench.spec")
FRAMEWORKS = ("torch", "jax", "jaxlib", "flax", "optax", "onnxruntime")


def _forbidden(name: str) -> bool:
    return name.split(".")[0] in FRAMEWORKS or any(name == p or name.startswith(p + ".") for p in FORBIDDEN_PACKAGES)


def test_building_a_site_loads_no_backend_suite_matrix_or_framework(tmp_path: Path):
    """In a fresh process: build a site with the gate's marks, then look at what got imported."""
    root = tmp_path / "results"
    for doc in D.site_runs(nights=2):
        D.write_run(root, doc)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(D.pytest_benchmark_doc({"test_a": [1.0, 1.1, 0.9, 1.05, 0.95]})))
    code = textwrap.dedent("""
        import json, sys
        from xpubench.regress.policy import GateBook, GatePolicy
        from xpubench.report import build_site

        book = GateBook(GatePolicy(0.10), {"cpu": GatePolicy(0.05, 0.01, "significant")}, {"cpu": "laptop"})
        index = build_site([sys.argv[1], sys.argv[2]], sys.argv[3], gate=book)
        plain = build_site([sys.argv[1]], sys.argv[3] + "-plain")
        print(json.dumps({"index": str(index), "plain": str(plain), "modules": sorted(sys.modules)}))
    """)
    proc = subprocess.run([sys.executable, "-c", code, str(root), str(bench), str(tmp_path / "site")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert Path(out["index"]).exists() and Path(out["plain"]).exists()
    assert "nightly gate" in (Path(out["index"]).parent / "history.html").read_text(encoding="utf-8")
    modules = out["modules"]
    assert "xpubench.report.site" in modules and "xpubench.results.pytest_benchmark" in modules
    assert [m for m in modules if _forbidden(m)] == []


def test_no_report_module_imports_them_even_lazily():
    """Every import statement in bench/report, those inside functions too."""
    offenders = []
    for path in sorted((ROOT / "bench" / "report").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if _forbidden(n)]
    assert offenders == []

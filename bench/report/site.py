"""The whole site: build the model, write every page and the assets, remove stale suite pages."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from xpubench.regress import compare
from xpubench.regress.policy import GateBook
from xpubench.report import assets
from xpubench.report.figures import use_palette
from xpubench.report.history import history_page
from xpubench.report.index_page import index_page
from xpubench.report.machines import machines_page
from xpubench.report.model import Model
from xpubench.report.page import GENERATOR, INDEX
from xpubench.report.roofline_page import roofline_page
from xpubench.report.suite_page import suite_page
from xpubench.results.reader import LoadResult


def _remove_stale_pages(out_dir: Path, keep: set[str]) -> None:
    """Delete suite pages of an earlier build that this build does not write (ours only)."""
    for p in out_dir.glob("suite-*.html"):
        if p.name in keep:
            continue
        try:
            head = p.read_text(encoding="utf-8", errors="replace")[:600]
        except OSError:
            continue
        if f'content="{GENERATOR}"' in head:
            p.unlink()


def write_site(result: LoadResult, out_dir: Path, *, baseline: str | None = None, title: str | None = None,
               threshold: float = compare.DEFAULT_THRESHOLD,
               suite_thresholds: Mapping[str, float] | None = None, rule: str = compare.DEFAULT_RULE,
               gate: GateBook | None = None) -> Path:
    """Write every page and asset into ``out_dir``; return the index.html path.

    ``gate``: mark the history as the nightly gate flags it (each machine's policy from the book).
    """
    out_dir = Path(out_dir)
    model = Model(result.runs, list(result.problems), baseline, title or "xpubench report", threshold,
                  dict(suite_thresholds or {}), compare.check_rule(rule), gate)
    assets.write_assets(out_dir)
    use_palette({m.backend for r in model.runs for m in r.measurements} | set(model.machines))
    pages = [index_page(model)] + [suite_page(model, s) for s in model.suites] + [
        roofline_page(model), machines_page(model), history_page(model)]
    _remove_stale_pages(out_dir, {p.file_name for p in pages})
    for p in pages:
        p.write(out_dir)
    return out_dir / INDEX

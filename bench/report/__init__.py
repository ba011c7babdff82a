"""Static HTML reports from results files: plotly comparison, roofline, machine and history pages.

Public entry point: :func:`build_site`. Importing this package is cheap; the
page code loads when a site is built. The report reads files only: it imports
no backend, no suite and not the nightly matrix (the gate's policy comes in as a
:class:`xpubench.regress.policy.GateBook`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xpubench.regress.policy import GateBook

__all__ = ["build_site"]


def build_site(inputs: list[str | Path], out_dir: Path, *, baseline: str | None = None,
               title: str | None = None, threshold: float = 0.05,
               suite_thresholds: dict[str, float] | None = None, rule: str = "significant",
               gate: "GateBook | None" = None) -> Path:
    """Read results files, folders and pytest-benchmark JSON; write the site; return index.html.

    ``baseline``: backend spec the speedup heatmaps divide by (default: the fp32
    CPU backend of each machine). ``threshold`` and ``rule``: what the history
    page's regression marks require (as ``xpubench compare --threshold --rule``).
    ``gate``: the nightly gate's policies (``xpubench.ci.matrix.load_matrix().gate_book()``);
    the marks are then the gate's (each machine's run against its previous run with
    its leg's threshold, rule and per-night alpha). Files found inside folders that
    cannot be read are left out and listed on the index page; a file named directly
    must be readable (``xpubench.errors.UserError`` otherwise).
    """
    from xpubench.errors import UserError
    from xpubench.report.site import write_site
    from xpubench.results.reader import load_runs

    result = load_runs(inputs, strict=False)
    if not result.runs:
        raise UserError(f"no results files found in {', '.join(str(i) for i in inputs) or 'no inputs'}")
    return write_site(result, Path(out_dir), baseline=baseline, title=title, threshold=threshold,
                      suite_thresholds=suite_thresholds, rule=rule, gate=gate)

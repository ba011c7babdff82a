"""Figures about how a run measured: stop reasons, spread, overhead, drift, warnings.

    python scripts/summarize_run.py results/<machine>/<run>.json
"""

from __future__ import annotations

import statistics
import sys
from collections import Counter

from xpubench.results.reader import read_input_file
from xpubench.results.view import Measurement


def _spread(values: list[float], what: str, fmt: str = ".2%") -> str:
    if not values:
        return f"{what}: none recorded"
    values = sorted(values)
    return (f"{what}: median {statistics.median(values):{fmt}}, p90 {values[int(0.9 * (len(values) - 1))]:{fmt}}, "
            f"max {values[-1]:{fmt}}")


def main(path: str) -> None:
    from pathlib import Path

    run = read_input_file(Path(path))
    ms = run.measurements
    ok: list[Measurement] = [m for m in ms if m.ok]
    print(f"{path}: {len(ms)} measurements, " + ", ".join(f"{n} {s}" for s, n in Counter(m.status for m in ms).most_common()))
    print(f"started {run.started_at}, finished {run.meta.get('finished_at')}")
    if not ok:
        return
    print(_spread([m.iqr / m.median for m in ok if m.iqr is not None and m.median], "IQR/median over ok cases"))
    print(_spread([m.rel_ci for m in ok if m.rel_ci is not None], "95% CI half-width/median"))
    print("stop reasons: " + ", ".join(f"{n} {s}" for s, n in Counter(m.stop_reason for m in ok).most_common()))
    print(_spread([m.timer_overhead_s * 1e9 for m in ok if m.timer_overhead_s is not None],
                  "timer overhead per round (ns)", ".0f"))
    print(_spread([m.overhead_fraction for m in ok if m.overhead_fraction is not None],
                  "overhead fraction of a round", ".2e"))
    print(_spread([abs(m.drift) for m in ok if m.drift is not None], "|drift| first->last third"))
    warns = Counter(w.split(":")[0] for m in ok for w in m.warnings)
    print("warnings: " + (", ".join(f"{n} {w}" for w, n in warns.most_common()) or "none"))
    by_method = Counter(m.energy.method if m.energy else None for m in ok)
    print("energy methods: " + ", ".join(f"{n} {k}" for k, n in by_method.items()))


if __name__ == "__main__":
    main(sys.argv[1])

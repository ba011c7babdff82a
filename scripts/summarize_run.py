"""Figures about how a run measured: stop reasons, spread, overhead, drift, warnings.

    python scripts/summarize_run.py results/<machine>/<run>.json
"""

from __future__ import annotations

import statistics
import sys
from collections import Counter

from xpubench.results.reader import read_run


def main(path: str) -> None:
    doc = read_run(path)
    ms = doc["measurements"]
    ok = [m for m in ms if m["status"] == "ok"]
    run = doc["run"]
    print(f"{path}: {len(ms)} measurements, " + ", ".join(f"{n} {s}" for s, n in Counter(m["status"] for m in ms).most_common()))
    print(f"started {run.get('started_at')}, finished {run.get('finished_at')}")
    if not ok:
        return
    rel_iqr = [m["time_s"]["iqr"] / m["time_s"]["median"] for m in ok]
    rel_ci = [m["time_s"]["rel_ci"] for m in ok]
    print(f"IQR/median over ok cases: median {statistics.median(rel_iqr):.2%}, "
          f"p90 {sorted(rel_iqr)[int(0.9 * (len(rel_iqr) - 1))]:.2%}, max {max(rel_iqr):.2%}")
    print(f"95% CI half-width/median: median {statistics.median(rel_ci):.2%}")
    print("stop reasons: " + ", ".join(f"{n} {s}" for s, n in Counter(m['time_s']['stop_reason'] for m in ok).most_common()))
    over = [m["time_s"]["timer_overhead_s"] for m in ok]
    frac = [m["time_s"]["overhead_fraction"] for m in ok]
    print(f"timer overhead per round: median {statistics.median(over) * 1e9:.0f} ns, max {max(over) * 1e9:.0f} ns; "
          f"fraction of a round: median {statistics.median(frac):.2e}, max {max(frac):.2e}")
    drift = [abs(m["time_s"]["drift"]) for m in ok if m["time_s"].get("drift") is not None]
    if drift:
        print(f"|drift| first->last third: median {statistics.median(drift):.2%}, max {max(drift):.2%}")
    warns = Counter(w.split(":")[0] for m in ok for w in m.get("warnings") or [])
    print("warnings: " + (", ".join(f"{n} {w}" for w, n in warns.most_common()) or "none"))
    by_method = Counter((m.get("energy") or {}).get("method") for m in ok)
    print("energy methods: " + ", ".join(f"{n} {k}" for k, n in by_method.items()))


if __name__ == "__main__":
    main(sys.argv[1])

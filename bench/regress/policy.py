"""The gate policy, in one place: threshold, alpha and rule per leg, which leg a run is, one night's comparison.

Both the nightly gate (:mod:`xpubench.regress.gate`, ``xpubench matrix --night``)
and the report's ``--gate`` marks ask a :class:`GateBook` for a run's policy and
judge with :func:`compare_night`, so the page marks exactly what the gate flags.
The book is built from the matrix definition (``xpubench.ci.matrix.Matrix.gate_book``);
nothing here reads that file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from xpubench.regress import compare
from xpubench.results.run_view import Run

# Each leg uploads its results as the artifact ARTIFACT_PREFIX + leg name; the
# final job finds the leg (and so its policy) from that folder name.
ARTIFACT_PREFIX = "xpubench-"
DEFAULT_THRESHOLD = 0.05
# Family-wise significance of one machine's night when the definition names none.
DEFAULT_ALPHA = 0.01
# The gate's decision rule when the definition names none: a regression only when the
# whole 95% CI of the change lies beyond the threshold (xpubench.regress.compare, docs/nightly.md).
DEFAULT_RULE = compare.CONFIDENT
# The confidence of compare's CI-overlap fallback, roughly: a fallback "significant"
# is trusted only when the per-comparison alpha is at least this.
FALLBACK_LEVEL = 0.01

_LEG_ARG_RE = re.compile(r"(?:^|\s)--leg[=\s]+(\S+)")


@dataclass(frozen=True)
class GatePolicy:
    """How one machine's night is judged."""

    threshold: float = DEFAULT_THRESHOLD  # fraction: 0.05 = 5%
    alpha: float = DEFAULT_ALPHA  # family-wise, for the whole night of one machine (Bonferroni over it)
    rule: str = DEFAULT_RULE  # xpubench.regress.compare rule: "confident" or "significant"
    # judge one-process-per-side nights on their rounds alone (the old gate; the resampled
    # simulated nights model it). Off: such a change is "unsupported" (docs/verdicts.md).
    trust_rounds: bool = False

    def __post_init__(self) -> None:
        compare.check_rule(self.rule)


@dataclass(frozen=True)
class GateBook:
    """The default policy, each leg's policy, and how a run is told to belong to a leg."""

    default: GatePolicy = field(default_factory=GatePolicy)
    legs: Mapping[str, GatePolicy] = field(default_factory=dict)
    leg_machines: Mapping[str, str] = field(default_factory=dict)  # leg -> its fixed machine id
    source: str = ""  # the definition the book was read from (shown on the report's history page)

    def leg_of(self, run: Run, artifacts: Path | None = None) -> str | None:
        """The leg a run belongs to, or None.

        From the artifact folder ``xpubench-<leg>/`` under ``artifacts`` first
        (download-artifact nests each artifact in a folder of its name, except when a
        pattern matches just one, when it extracts flat), then the run's ``leg`` field,
        then ``--leg NAME`` in its command, then the leg whose fixed machine id it carries.
        """
        if artifacts is not None:
            try:
                top = run.source.relative_to(artifacts).parts[0]
            except (ValueError, IndexError):
                top = ""
            if top.startswith(ARTIFACT_PREFIX) and top[len(ARTIFACT_PREFIX):] in self.legs:
                return top[len(ARTIFACT_PREFIX):]
        if run.leg in self.legs:
            return run.leg
        m = _LEG_ARG_RE.search(run.command)
        if m and m.group(1) in self.legs:
            return m.group(1)
        return next((leg for leg, mid in self.leg_machines.items() if mid and mid == run.machine_id), None)

    def policy(self, leg: str | None) -> GatePolicy:
        return self.legs.get(leg, self.default) if leg else self.default

    def policy_for(self, runs: list[Run], artifacts: Path | None = None) -> tuple[str | None, GatePolicy]:
        """(leg, policy) of one machine's runs of a night: the first run that names a leg decides."""
        leg = next((lg for r in runs if (lg := self.leg_of(r, artifacts))), None)
        return leg, self.policy(leg)

    def overridden(self, *, threshold: float | None = None, alpha: float | None = None,
                   rule: str | None = None, trust_rounds: bool | None = None) -> "GateBook":
        """The same book with every policy's threshold, alpha or rule replaced (the command line's)."""
        given = {k: v for k, v in (("threshold", threshold), ("alpha", alpha), ("rule", rule),
                                   ("trust_rounds", trust_rounds)) if v is not None}
        if not given:
            return self
        return replace(self, default=replace(self.default, **given),
                       legs={name: replace(p, **given) for name, p in self.legs.items()})


def compare_night(previous: Run, tonight: list[Run], policy: GatePolicy, *, with_ci: bool = True,
                  noise: "compare.levels.NoiseModel | None" = None) -> tuple[list[compare.Comparison], float]:
    """``xpubench compare PREVIOUS TONIGHT --rule RULE`` with the night's significance split over its comparisons.

    A machine's night holds dozens to hundreds of comparisons; testing each at 0.01
    raises about one false alarm per hundred from noise alone (the simulated nights
    show it). Bonferroni: each is tested at ``alpha / n`` so the whole night has at
    most ``alpha`` chance of a false "significant". The ``confident`` rule's 95% CI
    does not replace the split: without it one simulated month in seven still saw a
    noise alarm (docs/nightly.md). Returns (comparisons, alpha / n).
    """
    base = compare.latest_measurements([previous])
    new = compare.latest_measurements(tonight)
    both_ok = sum(1 for k in base.keys() & new.keys() if base[k].ok and new[k].ok)
    each = policy.alpha / max(both_ok, 1)
    comparisons = compare.compare_runs([previous], tonight, policy.threshold, alpha=each, with_ci=with_ci,
                                       rule=policy.rule, noise=noise,
                                       one_process_supported=policy.trust_rounds)
    for c in comparisons:
        # With too few rounds for the rank test to reach ``each``, compare falls back to
        # "the 95% CIs do not overlap", a test near p = 0.01 whatever alpha is: it cannot
        # carry the night's split alpha, so such a change is reported, not gated.
        if c.method == "ci-overlap" and each < FALLBACK_LEVEL and c.verdict in compare.FLAG_VERDICTS:
            c.verdict = compare.INSIGNIFICANT
            c.note = (f"too few rounds ({c.base_rounds}/{c.new_rounds}) to test at the night's "
                      f"alpha {each:.2g}: not gated")
    return comparisons, each

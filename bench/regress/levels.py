"""The evidence a verdict rests on: process-level figures, a noise model learned on this machine, or one process.

Reruns of the same build on a shared VM differ far more than the rounds of one
process do, so a verdict is only as good as its model of what a rerun shows:

- ``processes``: both sides measured in >= 2 fresh processes (``--repeat``): Yuen's
  (trimmed Welch) test on the log process medians
  (:func:`xpubench.measure.processes.compare_processes`).
- ``paired-processes``: both sides measured in the same >= 2 pairs of processes whose
  rounds took turns (the confirmation, xpubench.run.paired): the t test of the pairs'
  log ratios, leaving out pairs at a level of their own, which the verdict's note counts
  (:func:`xpubench.measure.processes.compare_paired`).
- ``processes-vs-one``: one side has >= 2 processes, the other one: the one process's
  median against the prediction interval of the repeated side (t, K - 1 dof).
- ``noise-model``: one process per side, and a between-process spread ``sigma`` of
  log step time known for the case on this machine (``xpubench calibrate`` or the
  spread of the case across the history's runs): z test of log(ratio) against
  sigma * sqrt(2).
- ``one-process``: nothing says what a rerun shows; the within-process test still
  runs, but a change it finds is *unsupported*, not a regression.

The smallest change a level can detect with 95% power at the test's alpha is
``exp((z_{1-alpha/2} + z_0.95) * se) - 1`` (t quantiles, and the spread's upper 90%
bound, where the spread comes from few processes); where that is above the threshold
the verdict says "cannot resolve < N% here" instead of passing silently.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from scipy import stats as sps

from xpubench.measure.processes import compare_paired, compare_processes
from xpubench.results.run_view import Run
from xpubench.results.view import Measurement

PROCESSES = "processes"
PAIRED = "paired-processes"
PROCESSES_VS_ONE = "processes-vs-one"
NOISE_MODEL = "noise-model"
ONE_PROCESS = "one-process"
POWER = 0.95
SPREAD_BOUND = 0.90  # confidence of the upper bound on a spread measured from few processes
HISTORY_MIN_RUNS = 3  # fewer runs of a case say little about its spread
CALIBRATION_FILE = "calibration.json"

Key = tuple[str, str, str, str, str]  # machine_id, suite, case, mode, backend


def process_medians(m: Measurement) -> list[float]:
    """The medians of a measurement's processes (``time_s.processes``); empty for one process."""
    procs = m.time_block.get("processes")
    if not isinstance(procs, list):
        return []
    return [float(p["median"]) for p in procs
            if isinstance(p, Mapping) and isinstance(p.get("median"), (int, float)) and p["median"] > 0
            and p.get("status", "ok") == "ok"]


def process_pairs(base: Measurement, new: Measurement) -> list[tuple[float, float]]:
    """(base, new) medians of the pairs whose two processes both have a median: a pair that
    lost a side (its process failed) is left out rather than the whole pairing. Empty where
    a process with a median took no turns (no pair id): the sides were not measured in pairs."""
    def by_pair(m: Measurement) -> dict[Any, float] | None:
        procs = m.time_block.get("processes")
        if not isinstance(procs, list):
            return None
        good = [p for p in procs if isinstance(p, Mapping) and isinstance(p.get("median"), (int, float))
                and p["median"] > 0 and p.get("status", "ok") == "ok"]
        if any(p.get("pair") is None for p in good):
            return None
        return {p["pair"]: float(p["median"]) for p in good}

    b, n = by_pair(base), by_pair(new)
    if not b or not n:
        return []
    return [(b[k], n[k]) for k in b if k in n]


def key_text(key: Key) -> str:
    """``suite/case:mode|backend`` (a machine's calibration file is keyed without the machine)."""
    _, suite, case, mode, backend = key
    return f"{suite}/{case}:{mode}|{backend}"


@dataclass
class NoiseModel:
    """Between-process spread (sd of log step time) per case x backend, and where it came from."""

    sigma: dict[Key, float] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)  # machine_id -> "calibration FILE" | "history of N runs"

    def for_key(self, key: Key) -> float | None:
        return self.sigma.get(key)

    def merged(self, other: "NoiseModel") -> "NoiseModel":
        """This model, with ``other``'s figures where this one has none (calibration wins over history)."""
        return NoiseModel({**other.sigma, **self.sigma}, {**other.source, **self.source})


def noise_from_history(runs: Iterable[Run | Mapping[str, Any]]) -> NoiseModel:
    """sd of log median across a machine's runs, per case x backend seen ok in >= HISTORY_MIN_RUNS runs."""
    logs: dict[Key, list[float]] = {}
    counts: dict[str, int] = {}
    for run in (Run.of(r) for r in runs):
        counts[run.machine_id] = counts.get(run.machine_id, 0) + 1
        for m in run.measurements:
            if m.ok and m.median:
                logs.setdefault((run.machine_id, *m.key), []).append(math.log(m.median))
    model = NoiseModel()
    for key, xs in logs.items():
        if len(xs) >= HISTORY_MIN_RUNS:
            mean = sum(xs) / len(xs)
            model.sigma[key] = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
            model.source[key[0]] = f"history of {counts[key[0]]} runs"
    return model


def read_calibration(path: Path) -> NoiseModel:
    """The noise model of one machine from the ``calibration.json`` that ``xpubench calibrate`` wrote."""
    from xpubench.errors import UserError

    try:
        doc = json.loads(Path(path).read_text())
        mid = str(doc["machine_id"])
        cases = doc["cases"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a calibration file written by `xpubench calibrate` ({e})") from None
    model = NoiseModel(source={mid: f"calibration {path}"})
    for text, entry in cases.items():
        head, _, backend = text.rpartition("|")
        suite, _, rest = head.partition("/")
        case, _, mode = rest.rpartition(":")
        sigma = entry.get("sigma") if isinstance(entry, Mapping) else None
        if isinstance(sigma, (int, float)) and sigma >= 0:
            model.sigma[(mid, suite, case, mode, backend)] = float(sigma)
    return model


def find_calibrations(folders: Iterable[Path]) -> NoiseModel:
    """Every ``calibration.json`` under the given folders (one per machine)."""
    model = NoiseModel()
    for folder in folders:
        folder = Path(folder)
        paths = [folder] if folder.is_file() else sorted(folder.rglob(CALIBRATION_FILE)) if folder.is_dir() else []
        for p in paths:
            if p.name == CALIBRATION_FILE:
                model = model.merged(read_calibration(p))
    return model


@dataclass(frozen=True)
class LevelTest:
    """A process-level or noise-model test of one pair: ratio new/base, its CI, p, what it can resolve."""

    level: str
    ratio: float
    ci95: tuple[float, float]
    p_value: float
    detectable: float | None  # smallest change detectable with 95% power at alpha (fraction), None if unknown
    note: str = ""  # what the test left out, in words


def detectable_change(se_log: float, alpha: float, dof: float | None = None) -> float:
    """exp((q_{1-alpha/2} + q_power) * se) - 1: the change found with 95% power (t quantiles with ``dof``)."""
    if dof is not None and dof > 0:
        q = float(sps.t.ppf(1 - alpha / 2, dof)) + float(sps.t.ppf(POWER, dof))
    else:
        q = float(sps.norm.ppf(1 - alpha / 2)) + float(sps.norm.ppf(POWER))
    return math.expm1(q * se_log)


def spread_upper_factor(dof: float) -> float:
    """The upper SPREAD_BOUND confidence bound of a spread estimated with ``dof``, over the estimate.

    A spread measured from few processes is often too small by chance (3 + 3 processes:
    half the time by more than 15%); the claim "this test could have seen N%" rests on
    the bound (chi-square), so a lucky quiet sample does not turn a blind test into a pass.
    """
    return math.sqrt(dof / float(sps.chi2.ppf(1 - SPREAD_BOUND, dof)))


def level_of(base: Measurement, new: Measurement, sigma: float | None) -> str:
    kb, kn = len(process_medians(base)), len(process_medians(new))
    if kb >= 2 and kn >= 2:
        return PAIRED if len(process_pairs(base, new)) >= 2 else PROCESSES
    if kb >= 2 or kn >= 2:
        return PROCESSES_VS_ONE
    return NOISE_MODEL if sigma is not None else ONE_PROCESS


def level_test(base: Measurement, new: Measurement, level: str, sigma: float | None, alpha: float,
               confidence: float = 0.95) -> LevelTest:
    """The test of ``level`` (not ``one-process``: that one is the within-process rank test)."""
    if level == PAIRED:
        pairs = process_pairs(base, new)
        t = compare_paired(pairs, confidence)
        note = (f"{t.left_out} of {len(pairs)} pairs left out, each at a level of its own "
                f"(its ratio > {t.far_off:.2g}x off the pairs' median)") if t.left_out else ""
        return LevelTest(level, t.ratio, t.ci95, t.p_value,
                         detectable_change(t.se_log * spread_upper_factor(t.dof), alpha, t.dof), note)
    if level == PROCESSES:
        t = compare_processes(process_medians(base), process_medians(new), confidence)
        return LevelTest(level, t.ratio, t.ci95, t.p_value,
                         detectable_change(t.se_log * spread_upper_factor(t.dof), alpha, t.dof))
    if level == PROCESSES_VS_ONE:
        many, one, sign = ((process_medians(base), new.median, 1.0) if len(process_medians(base)) >= 2
                           else (process_medians(new), base.median, -1.0))
        logs = [math.log(x) for x in many]
        k = len(logs)
        mean = sum(logs) / k
        se = math.sqrt(_var_log(many) * (1 + 1 / k))
        diff = sign * (math.log(one) - mean)  # log(new / base)
        return _from_normal_diff(level, diff, se, alpha, confidence, dof=k - 1)
    if level == NOISE_MODEL and sigma is not None:
        diff = math.log(new.median / base.median)
        return _from_normal_diff(level, diff, sigma * math.sqrt(2), alpha, confidence, dof=None)
    raise ValueError(f"no level test for {level!r}")


def _var_log(xs: list[float]) -> float:
    logs = [math.log(x) for x in xs]
    mean = sum(logs) / len(logs)
    return sum((x - mean) ** 2 for x in logs) / (len(logs) - 1)


def _from_normal_diff(level: str, diff: float, se: float, alpha: float, confidence: float,
                      dof: float | None) -> LevelTest:
    dist = sps.t(dof) if dof else sps.norm()
    if se <= 0:
        p = 0.0 if diff != 0 else 1.0
        return LevelTest(level, math.exp(diff), (math.exp(diff), math.exp(diff)), p, 0.0)
    p = float(2 * dist.sf(abs(diff) / se))
    half = float(dist.ppf(0.5 + confidence / 2)) * se
    claim = se * spread_upper_factor(dof) if dof else se  # a calibrated sigma is taken as known
    return LevelTest(level, math.exp(diff), (math.exp(diff - half), math.exp(diff + half)), p,
                     detectable_change(claim, alpha, dof))


# --------------------------------------------------------------------------- fingerprints
def _threads(run: Run) -> set[Any]:
    opts = run.meta.get("options") or {}
    seen = {m.raw.get("threads") for m in run.measurements if m.raw.get("threads") is not None}
    return seen or ({opts.get("threads")} if opts.get("threads") is not None else set())


def fingerprint_differences(base: Run, new: Run) -> list[str]:
    """What differs between two runs of one machine that changes step times: CPU model, thread count,
    framework versions. Empty when nothing that matters differs."""
    out = []
    cb, cn = (base.machine.get("cpu") or {}).get("model"), (new.machine.get("cpu") or {}).get("model")
    if cb and cn and cb != cn:
        out.append(f"CPU {cb} -> {cn}")
    tb, tn = _threads(base), _threads(new)
    if tb and tn and tb != tn:
        out.append(f"threads {','.join(map(str, sorted(tb, key=str)))} -> {','.join(map(str, sorted(tn, key=str)))}")
    sb, sn = base.machine.get("software") or {}, new.machine.get("software") or {}
    for pkg in ("torch", "jax", "jaxlib", "onnxruntime"):
        if sb.get(pkg) and sn.get(pkg) and sb[pkg] != sn[pkg]:
            out.append(f"{pkg} {sb[pkg]} -> {sn[pkg]}")
    return out

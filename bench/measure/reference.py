"""The fp32 outputs a reduced-precision case is checked against, shared within a run.

A bf16 (fp16, int8, ...) record carries its error against an fp32 twin of the same
case. Built in the reduced-precision worker, the twin costs a second model build and
compile (seconds per JAX training case). Within one pass of a run, the fp32 backend
of the same framework and device measures that very case a few seconds before or
after, in its own worker, so the outputs (``Step.check()``, deterministic for the
seed) travel through run-scoped files instead:

- the fp32 slot came first: it saves its outputs; each later reduced slot reads them
  and computes its own error;
- a reduced slot came first: it saves *its* outputs (``offer``) and its record
  waits in the parent; the fp32 slot reads them, computes their errors against its
  own outputs and returns them (``reference_errors``) for the parent to fill in.

Which slot does what comes from the pass's order (:func:`plan_references`), so no
output is computed that nobody reads. When the fp32 slot fails, the waiting record
says so; outside a run (pytest, the fixture) the twin is built as before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

REFERENCE_ERRORS = "reference_errors"  # the fp32 record's field the parent takes out


@dataclass(frozen=True)
class SharedReference:
    """One slot's part: save its own outputs to ``save``; read fp32 outputs from ``load``;
    ``judge`` (fp32 slot): backend -> the file of an earlier reduced slot's outputs."""

    save: str | None = None
    load: str | None = None
    judge: dict[str, str] = field(default_factory=dict)

    @property
    def offers(self) -> bool:
        """A reduced slot that saves its outputs for the fp32 slot to judge later."""
        return self.save is not None and self.load is None and not self.judge

    def to_message(self) -> dict[str, Any]:
        return {"save": self.save, "load": self.load, "judge": dict(self.judge)}

    @classmethod
    def from_message(cls, msg: dict[str, Any] | None) -> "SharedReference | None":
        return cls(msg.get("save"), msg.get("load"), dict(msg.get("judge") or {})) if msg else None


def plan_references(slots: Sequence[Any], folder: str | Path) -> dict[int, SharedReference]:
    """Slot index -> its part, for one pass's ordered slots (each with ``.case``, ``.spec``,
    ``.pass_index``). Only slots with a twin of the same case, framework and device
    on the other side of fp32 take part."""
    def path(slot) -> str:
        text = "|".join((str(slot.pass_index), slot.case.full_name, str(slot.spec)))
        return str(Path(folder) / f"{hashlib.sha1(text.encode()).hexdigest()[:16]}.npz")

    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, slot in enumerate(slots):
        groups.setdefault((slot.case.full_name, slot.spec.framework, slot.spec.device), []).append(i)
    out: dict[int, SharedReference] = {}
    for members in groups.values():
        fp32 = next((i for i in members if slots[i].spec.precision == "fp32"), None)
        if fp32 is None:
            continue
        before = [i for i in members if i < fp32 and i != fp32]
        after = [i for i in members if i > fp32 and slots[i].spec.precision != "fp32"]
        for i in before:
            out[i] = SharedReference(save=path(slots[i]))
        for i in after:
            out[i] = SharedReference(load=path(slots[fp32]))
        if before or after:
            out[fp32] = SharedReference(save=path(slots[fp32]) if after else None,
                                        judge={str(slots[i].spec): path(slots[i]) for i in before})
    return out


def save_outputs(path: str, outputs: dict[str, Any]) -> None:
    """Write a step's check outputs (numpy arrays or scalars) for another slot to read."""
    import numpy as np

    tmp = Path(path).with_suffix(".part.npz")
    np.savez(tmp, **{k: np.asarray(v) for k, v in outputs.items()})
    tmp.replace(path)  # readers never see half a file


def load_outputs(path: str | None) -> dict[str, Any] | None:
    """The saved outputs, or None when that slot left none (it failed or was skipped)."""
    import numpy as np

    if path is None:
        return None
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError):
        return None


class AwaitingFp32:
    """In the parent: records of reduced slots that offered their outputs, held until their
    fp32 slot has judged them (a few seconds: the backends of a case run back to back)."""

    def __init__(self, slots: Sequence[Any], plan: dict[int, SharedReference]):
        fp32_of = {(slots[j].case.full_name, spec): j for j, part in plan.items() for spec in part.judge}
        self.judged_by = {i: fp32_of[(slots[i].case.full_name, str(slots[i].spec))]
                          for i, part in plan.items() if part.offers
                          and (slots[i].case.full_name, str(slots[i].spec)) in fp32_of}
        self.waiting: dict[int, list[dict]] = {}

    def take(self, index: int, rec: dict) -> list[dict]:
        """The records to write now, in slot order: none while ``rec`` waits for its fp32 slot;
        with an fp32 slot's record, first the records that waited for it (errors filled in)."""
        if index in self.judged_by:
            self.waiting.setdefault(self.judged_by[index], []).append(rec)
            return []
        errors = rec.pop(REFERENCE_ERRORS, None) or {}
        held = self.waiting.pop(index, [])
        for r in held:
            _fill(r, errors.get(r.get("backend")), f"its fp32 slot ended {rec.get('status')}")
        return [*held, rec]

    def release(self) -> list[dict]:
        """Whatever still waits (the pass was interrupted before its fp32 slot)."""
        held = [r for rs in self.waiting.values() for r in rs]
        self.waiting.clear()
        for r in held:
            _fill(r, None, "the run stopped before its fp32 slot")
        return held


def _fill(rec: dict, figures: dict | None, why_not: str) -> None:
    if figures:
        rec.update(figures)
    elif rec.get("status") == "ok":
        rec.setdefault("warnings", []).append(f"no error vs fp32: {why_not}")

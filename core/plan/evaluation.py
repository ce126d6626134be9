"""Constraint evaluation: each organ-at-risk constraint -> value, limit, pass / warning / fail, source.

A plan without an RT Dose is a prescription-only plan: every constraint is listed with the status
``not_evaluated`` and the note "dose not computed".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from core.plan.constraints import ORGAN_ALIASES, ORGAN_LABELS, Constraint, ConstraintSet
from core.plan.dvh import DoseVolume, Dvh, compute_dvh
from core.plan.structures import PlanarStructure, StructureSet

__all__ = ["DOSE_NOT_COMPUTED", "ConstraintResult", "Status", "evaluate_constraints", "organ_structures"]

Status = Literal["pass", "warning", "fail", "not_evaluated"]
DOSE_NOT_COMPUTED = "dose not computed"
_TARGET_TYPES = {"GTV", "CTV", "PTV", "ITV"}


@dataclass(frozen=True)
class ConstraintResult:
    """The outcome of one constraint: ``value`` and ``limit`` in ``unit`` (None when not evaluated)."""

    organ: str
    structure: str
    metric: str
    comparison: str
    value: float | None
    limit: float
    warning_limit: float | None
    unit: str
    status: Status
    source: str
    note: str = ""


def organ_structures(organ: str, structures: StructureSet) -> tuple[list[PlanarStructure], list[PlanarStructure]]:
    """(ROIs that make up ``organ``, ROIs to subtract): the lungs are both lungs minus every target volume."""
    aliases = {a.lower() for a in ORGAN_ALIASES.get(organ, (organ,))}
    found = [s for name, s in structures.structures.items() if name.lower() in aliases]
    if organ == "lungs":
        whole = [s for s in found if s.name.lower() in {"lungs", "lung_total"}]
        found = whole or found
        targets = [
            s
            for s in structures.structures.values()
            if s.interpreted_type.upper() in _TARGET_TYPES or s.name.upper()[:3] in _TARGET_TYPES
        ]
        return found, targets
    return found[:1], []


def _value(constraint: Constraint, dvh: Dvh) -> float:
    if constraint.kind == "max":  # D0.03cc; a structure smaller than 0.03 cc gets its true maximum (conservative)
        return dvh.dose_at_volume_cc(0.03) if dvh.volume_cc > 0.03 else dvh.max_gy
    if constraint.kind == "mean":
        return dvh.mean_gy
    if constraint.kind == "dcc":
        return dvh.dose_at_volume_cc(constraint.parameter)
    if constraint.kind == "vgy_pct":
        return dvh.volume_at_dose_percent(constraint.parameter)
    if constraint.kind == "vgy_cc":
        return dvh.volume_at_dose_cc(constraint.parameter)
    return dvh.volume_below_dose_cc(constraint.parameter)


def _status(constraint: Constraint, value: float, limit: float) -> Status:
    warning = constraint.warning_limit
    if constraint.kind == "critical_cc":  # at least `limit` cc must stay below the dose
        return "pass" if value >= limit else ("warning" if warning is not None and value >= warning else "fail")
    if value <= limit:
        return "pass"
    return "warning" if warning is not None and value <= warning else "fail"


def evaluate_constraints(
    constraints: ConstraintSet,
    structures: StructureSet | None,
    dose: DoseVolume | None,
    *,
    prescription_gy: float,
) -> list[ConstraintResult]:
    """Evaluate every constraint of the set. Without a dose (or structures) every result is 'not_evaluated' with
    the note "dose not computed"; an organ without a matching ROI is 'not_evaluated' with the reason."""
    cache: dict[str, Dvh | str] = {}
    results = []
    for c in constraints.constraints:
        limit = c.limit_for(prescription_gy)
        label = ORGAN_LABELS.get(c.organ, c.organ)

        if dose is None or structures is None:
            results.append(_result(c, limit, label, None, "not_evaluated", DOSE_NOT_COMPUTED))
            continue
        if c.organ not in cache:
            include, exclude = organ_structures(c.organ, structures)
            if not include:
                cache[c.organ] = f"no ROI for {label} in the structure set"
            else:
                cache[c.organ] = compute_dvh(dose, include, exclude, name=_name(include, exclude))
        dvh = cache[c.organ]
        if isinstance(dvh, str):
            results.append(_result(c, limit, label, None, "not_evaluated", dvh))
            continue
        if dvh.volume_cc == 0.0:
            results.append(_result(c, limit, dvh.roi, None, "not_evaluated", "structure outside the dose grid"))
            continue
        value = _value(c, dvh)
        note = f"{dvh.outside_dose_grid_cc:.2f} cc outside the dose grid" if dvh.outside_dose_grid_cc > 0 else ""
        results.append(_result(c, limit, dvh.roi, value, _status(c, value, limit), note))
    return results


def _result(
    c: Constraint, limit: float, structure: str, value: float | None, status: Status, note: str
) -> ConstraintResult:
    comparison = ">=" if c.kind == "critical_cc" else "<="
    return ConstraintResult(
        c.organ, structure, c.metric, comparison, value, limit, c.warning_limit, c.unit, status, c.source, note
    )


def _name(include: Sequence[PlanarStructure], exclude: Sequence[PlanarStructure]) -> str:
    return " + ".join(s.name for s in include) + "".join(f" - {s.name}" for s in exclude)

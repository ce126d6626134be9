"""The plan: what it holds (identifiers, targets and organs at risk, prescription with BED/EQD2, constraint results,
DVH numbers, decision-support results at the time) and its JSON form, the payload kept in the store.

Doses are in Gy, volumes in cc, margins in mm. Statuses: draft -> reviewed (physicist) -> approved (clinician) or
rejected; an approved plan is immutable and a change makes a new version (see core/plan/repository.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from core.plan.evaluation import ConstraintResult
from core.plan.radiobiology import biological_dose

__all__ = [
    "DECISION_SUPPORT_STATEMENT",
    "PlanContent",
    "PlanStatus",
    "Prescription",
    "StructureEntry",
    "content_sha256",
]

PlanStatus = Literal["draft", "reviewed", "approved", "rejected", "superseded"]
DECISION_SUPPORT_STATEMENT = (
    "Decision support \u2014 requires clinician confirmation. This plan summary is not a diagnosis and not a "
    "treatment prescription until a qualified clinician has reviewed and signed it."
)
_INTENTS = ("curative", "palliative")


@dataclass(frozen=True)
class Prescription:
    """Total dose (Gy) in ``fractions`` equal fractions to ``target``; technique (e.g. SBRT, IMRT, VMAT, 3D-CRT),
    intent (curative or palliative) and where it came from ('manual' or 'recommendation')."""

    total_dose_gy: float
    fractions: int
    technique: str
    intent: str
    target: str = "PTV"
    source: str = "manual"

    def __post_init__(self) -> None:
        if not 0.0 < self.total_dose_gy <= 150.0:
            raise ValueError("the total dose must be within 0-150 Gy")
        if isinstance(self.fractions, bool) or int(self.fractions) != self.fractions or not 1 <= self.fractions <= 60:
            raise ValueError("fractions must be a whole number within 1-60")
        if self.intent not in _INTENTS:
            raise ValueError(f"intent must be one of {', '.join(_INTENTS)}")
        if not self.technique.strip():
            raise ValueError("the technique must be given (e.g. SBRT, IMRT, VMAT, 3D-CRT)")

    @property
    def dose_per_fraction_gy(self) -> float:
        return self.total_dose_gy / self.fractions

    def biological(self, alpha_beta_gy: float) -> dict[str, float]:
        """BED and EQD2 (Gy) of the prescription for ``alpha_beta_gy``."""
        b = biological_dose(self.total_dose_gy, self.fractions, alpha_beta_gy)
        return {"alpha_beta_gy": alpha_beta_gy, "bed_gy": b.bed_gy, "eqd2_gy": b.eqd2_gy}


@dataclass(frozen=True)
class StructureEntry:
    """A target or organ at risk: ROI name, role ('target' or 'oar'), RT ROI Interpreted Type, volume (cc),
    alpha/beta (Gy), and for derived targets the source ROI and the margins (x, y, z in mm)."""

    name: str
    role: str
    interpreted_type: str
    volume_cc: float
    alpha_beta_gy: float
    derived_from: str = ""
    margins_mm: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class PlanContent:
    """Everything a plan version holds. ``dose`` is None for a prescription-only plan ("dose not computed")."""

    patient_id: str
    patient_name: str
    study_uid: str
    study_date: str
    accession: str
    prescription: Prescription
    alpha_beta: dict[str, Any]
    structures: tuple[StructureEntry, ...]
    constraint_set: str | None
    constraint_set_name: str
    constraint_results: tuple[ConstraintResult, ...]
    dose: dict[str, Any] | None = None
    dvh: tuple[dict[str, Any], ...] = ()
    dvh_curves: dict[str, list[list[float]]] = field(default_factory=dict)
    model_scores: tuple[dict[str, Any], ...] | None = None
    rules_fired: tuple[dict[str, Any], ...] | None = None
    radiomics: tuple[dict[str, Any], ...] | None = None
    recommendation: dict[str, Any] | None = None
    notes: str = ""

    @property
    def dose_computed(self) -> bool:
        return self.dose is not None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> PlanContent:
        data: dict[str, Any] = json.loads(text)
        data["prescription"] = Prescription(**data["prescription"])
        data["structures"] = tuple(
            StructureEntry(**{**s, "margins_mm": tuple(s["margins_mm"]) if s.get("margins_mm") else None})
            for s in data["structures"]
        )
        data["constraint_results"] = tuple(ConstraintResult(**r) for r in data["constraint_results"])
        data["dvh"] = tuple(data.get("dvh", ()))
        for key in ("model_scores", "rules_fired", "radiomics"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


def content_sha256(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()

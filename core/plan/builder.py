"""Build a plan's content from a stored study: identifiers, structures (GTV from the RT Structure Set, CTV and PTV
by margin expansion), prescription with BED/EQD2, DVHs and constraint results when the study has an RT Dose.

Everything comes from the encrypted store (works offline); reading the study's objects is audited.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom import Dataset

from core.dicom.writers.rtstruct import ImageSeriesReference, rtstruct_to_masks
from core.errors import RadPlanError
from core.models.registry import SHIPPED_MODELS, ModelError, load_model
from core.plan.constraints import constraint_set, select_constraint_set
from core.plan.dose_io import dose_volume_from_rtdose
from core.plan.dvh import DoseVolume, compute_dvh
from core.plan.evaluation import evaluate_constraints
from core.plan.margins import expand_mask, mask_to_structure
from core.plan.model import PlanContent, Prescription, StructureEntry
from core.plan.radiobiology import AlphaBetaTable
from core.plan.structures import PlanarStructure, StructureSet, read_rtstruct_structures
from core.radiomics.names import IBSI_TO_PYRADIOMICS
from core.rules.decide import decide
from core.rules.recommend import bed10_gy
from core.rules.rulebase import RuleBaseError, load_rulebase
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.blobs import stored_bytes
from core.store.database import Connection
from core.store.store import Store
from core.store.users import record_access

__all__ = [
    "PLAN_TARGETS_SERIES_DESCRIPTION",
    "PlanOptions",
    "StudyObjects",
    "accepted_recommendation",
    "build_plan_content",
    "load_study_objects",
    "plan_target_masks",
    "prescription_from_recommendation",
    "recommended_prescription",
]

_TARGETS = {"GTV", "CTV", "PTV", "ITV"}


@dataclass
class StudyObjects:
    """A stored study's identifiers and the DICOM objects a plan needs (CT with pixels only when asked)."""

    study_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    accession: str
    ct: list[Dataset] = field(default_factory=list)
    rtstruct: Dataset | None = None
    rtdose: Dataset | None = None


#: Series description of the CTV/PTV structure sets RadPlan exports (core/plan/export.py); they are outputs of a plan,
#: never the clinical structure set a new plan is built on.
PLAN_TARGETS_SERIES_DESCRIPTION = "Plan targets (RadPlan)"


def load_study_objects(
    conn: Connection, study_uid: str, *, ct_pixels: bool = False, rtstruct_uid: str | None = None
) -> StudyObjects:
    """Read the study's CT, latest clinical RT Structure Set (not RadPlan's exported plan targets; ``rtstruct_uid``:
    that one instead) and latest RT Dose from the store (inside ``conn``'s transaction; the caller audits).
    ValueError when the study is not there."""
    row = conn.execute(
        "SELECT st.id, p.patient_id, p.name, st.study_date, st.accession FROM studies st "
        "JOIN patients p ON p.id = st.patient_fk WHERE st.study_uid = ?",
        (study_uid,),
    ).fetchone()
    if row is None:
        raise ValueError(f"no study {study_uid} in the store")
    objects = StudyObjects(study_uid, str(row[1]), str(row[2]), str(row[3]), str(row[4]))
    rows = conn.execute(
        "SELECT se.modality, i.blob, d.data, i.sop_uid FROM instances i JOIN series se ON se.id = i.series_fk "
        "LEFT JOIN instance_data d ON d.instance_fk = i.id WHERE se.study_fk = ? AND se.modality IN ('CT', 'RTSTRUCT', "
        "'RTDOSE') AND NOT (se.modality = 'RTSTRUCT' AND se.description = ?) ORDER BY i.id",
        (row[0], PLAN_TARGETS_SERIES_DESCRIPTION),
    ).fetchall()
    for modality, blob, inline, sop_uid in rows:
        if modality == "RTSTRUCT" and rtstruct_uid is not None and sop_uid != rtstruct_uid:
            continue
        data = stored_bytes(conn, blob, inline)
        if modality == "CT":
            objects.ct.append(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=not ct_pixels))
        elif modality == "RTSTRUCT":
            objects.rtstruct = pydicom.dcmread(io.BytesIO(data))
        else:
            objects.rtdose = pydicom.dcmread(io.BytesIO(data))
    return objects


def accepted_recommendation(conn: Connection, patient_id: str) -> dict[str, Any] | None:
    """The latest recommendation a clinician accepted for ``patient_id`` (decision_feedback, issue 6), with the rule
    ids, model versions and facts (radiomics features included) of that moment; None when there is none (or no
    decision-support table)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'decision_feedback'").fetchone():
        return None
    row = conn.execute(
        "SELECT id, created, user_name, recommendation, chosen, rule_ids, model_versions, site, facts "
        "FROM decision_feedback "
        "WHERE patient_id = ? AND decision = 'accept' ORDER BY id DESC LIMIT 1",
        (patient_id,),
    ).fetchone()
    if row is None:
        return None
    rec, chosen = json.loads(row[3]), json.loads(row[4])
    return {
        "feedback_id": int(row[0]),
        "accepted_at": str(row[1]),
        "accepted_by": str(row[2]),
        "recommendation": rec,
        "chosen": chosen,
        "rule_ids": json.loads(row[5]),
        "model_versions": json.loads(row[6]),
        "site": str(row[7] or ""),
        "facts": json.loads(row[8]) if row[8] else {},
    }


def prescription_from_recommendation(accepted: dict[str, Any], target: str = "PTV") -> Prescription:
    """The prescription of an accepted recommendation (what the clinician chose overrides what was proposed)."""
    rec = {**accepted["recommendation"], **{k: v for k, v in accepted.get("chosen", {}).items() if v is not None}}
    dose, fractions = rec.get("total_dose_gy"), rec.get("fractions")
    if not dose or not fractions:
        raise ValueError("the accepted recommendation has no dose and fractionation: enter the prescription by hand")
    return Prescription(
        float(dose),
        int(fractions),
        str(rec.get("modality") or rec.get("technique") or ""),
        str(rec.get("intent", "")),
        target=target,
        source="recommendation",
    )


def recommended_prescription(store: Store, access: Access, study_uid: str) -> Prescription:
    """The prescription of the latest accepted recommendation for the study's patient (audited); ValueError when
    there is none."""
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT p.patient_id FROM studies st JOIN patients p ON p.id = st.patient_fk WHERE st.study_uid = ?",
            (study_uid,),
        ).fetchone()
        if row is None:
            raise ValueError(f"no study {study_uid} in the store")
        accepted = accepted_recommendation(conn, str(row[0]))
        record_access(
            conn,
            access,
            "plan.recommendation",
            objects=[AuditObject("study", study_uid)],
            details={"found": accepted is not None},
        )
    if accepted is None:
        raise ValueError("no accepted recommendation for this study's patient: enter the prescription by hand")
    return prescription_from_recommendation(accepted)


@dataclass(frozen=True)
class PlanOptions:
    """CTV and PTV margins (x, y, z in mm) around the GTV, constraint set (None: chosen by fractionation),
    whether the tumour is central (RTOG 0813 for 5-fraction SBRT), alpha/beta table and free-text notes."""

    ctv_margins_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ptv_margins_mm: tuple[float, float, float] = (5.0, 5.0, 5.0)
    constraint_set: str | None = None
    central: bool = False
    alpha_beta: AlphaBetaTable = field(default_factory=AlphaBetaTable)
    notes: str = ""


def _targets(
    objects: StudyObjects, structures: StructureSet, options: PlanOptions
) -> tuple[list[PlanarStructure], list[StructureEntry]]:
    """CTV and PTV from the GTV by margins (when the CT is there and there is a GTV)."""
    gtv = next((s for s in structures.structures.values() if s.interpreted_type.upper() == "GTV"), None)
    if gtv is None or not objects.ct or objects.rtstruct is None:
        return [], []
    reference = ImageSeriesReference.from_datasets(objects.ct)
    mask = rtstruct_to_masks(objects.rtstruct, reference)[gtv.name]
    dy, dx = reference.pixel_spacing_mm
    dz = structures.slice_thickness_mm
    ctv = expand_mask(mask, (dx, dy, dz), options.ctv_margins_mm)
    ptv = expand_mask(ctv, (dx, dy, dz), options.ptv_margins_mm)
    made, entries = [], []
    for name, m, source, margins in (
        ("CTV", ctv, gtv.name, options.ctv_margins_mm),
        ("PTV", ptv, "CTV", options.ptv_margins_mm),
    ):
        s = mask_to_structure(name, m, reference, interpreted_type=name)
        made.append(s)
        entries.append(
            StructureEntry(name, "target", name, s.polygon_volume_cc(), options.alpha_beta.tumour_gy, source, margins)
        )
    return made, entries


def plan_target_masks(objects: StudyObjects, entries: Sequence[StructureEntry]) -> dict[str, NDArray[np.bool_]]:
    """The derived targets (CTV, PTV) of a plan redrawn on the CT grid from their source ROI and margins (mm),
    [slice, row, column] in the order of the CT reference; empty when the CT or structure set is missing."""
    if not objects.ct or objects.rtstruct is None:
        return {}
    reference = ImageSeriesReference.from_datasets(objects.ct)
    masks = rtstruct_to_masks(objects.rtstruct, reference)
    dy, dx = reference.pixel_spacing_mm
    zs = [sl.position_mm[2] for sl in reference.slices]
    spacing = (dx, dy, float(zs[1] - zs[0]) if len(zs) > 1 else 1.0)
    out: dict[str, NDArray[np.bool_]] = {}
    for entry in entries:  # in plan order: the CTV before the PTV made from it
        source = out.get(entry.derived_from, masks.get(entry.derived_from))
        if entry.margins_mm is not None and source is not None:
            out[entry.name] = expand_mask(source, spacing, entry.margins_mm)
    return out


def _curve(dose: DoseVolume, structure: PlanarStructure) -> tuple[dict[str, float], list[list[float]]]:
    dvh = compute_dvh(dose, [structure], name=structure.name)
    m = dvh.metrics()
    edges, volume = dvh.cumulative(0.25)
    step = max(1, len(edges) // 200)
    percent = 100.0 * volume / dvh.volume_cc
    curve = [[round(float(e), 3), round(float(v), 3)] for e, v in zip(edges[::step], percent[::step], strict=True)]
    return {k: round(float(v), 4) if isinstance(v, float) else v for k, v in vars(m).items()}, curve


#: Units of the IBSI radiomics features most often shown (others say "unit not recorded").
_RADIOMICS_UNITS = {
    "morph_volume": "mm^3", "morph_vol_approx": "mm^3", "morph_area_mesh": "mm^2", "morph_av": "1/mm",
    "morph_sphericity": "unitless", "morph_diam": "mm", "morph_pca_maj_axis": "mm", "morph_pca_min_axis": "mm",
    "morph_pca_least_axis": "mm", "morph_pca_elongation": "unitless", "morph_pca_flatness": "unitless",
    "stat_mean": "HU", "stat_median": "HU", "stat_min": "HU", "stat_max": "HU", "stat_p10": "HU", "stat_p90": "HU",
    "stat_iqr": "HU", "stat_range": "HU", "stat_mad": "HU", "stat_rmad": "HU", "stat_rms": "HU", "stat_var": "HU^2",
    "stat_skew": "unitless", "stat_kurt": "unitless", "ih_entropy": "bits", "ih_uniformity": "unitless",
}  # fmt: skip


def _rules(accepted: dict[str, Any], models: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
    """The rules fired for the accepted recommendation: its own rules first, then every other rule the site's rule
    base fires on the stored facts and model scores (flags such as an ILD warning), each with title, version and
    citation. A rule the rule base does not hold (or an unknown site) keeps the recommendation's citation only."""
    rec = accepted["recommendation"]
    try:
        rulebase = load_rulebase(accepted["site"]) if accepted.get("site") else None
    except RuleBaseError:  # an unknown site: no titles, the recommendation's citation stays
        rulebase = None
    fired: dict[str, dict[str, Any]] = {}
    if rulebase is not None and accepted.get("facts"):
        scores = {f"score_{m['outcome']}": m["probability"] for m in models if "probability" in m}
        try:
            fired = {r["id"]: r for r in decide(rulebase, accepted["facts"], scores).rules_fired}
        except (RadPlanError, KeyError, TypeError, ValueError):  # facts the current rule base cannot read
            fired = {}
    out = []
    for rule_id in [*accepted["rule_ids"], *(r for r in fired if r not in accepted["rule_ids"])]:
        entry: dict[str, Any] = {"rule": rule_id, "citation": str(rec.get("source", ""))}
        try:
            spec = rulebase.rule(rule_id) if rulebase is not None else None
        except KeyError:
            spec = None
        if spec is not None:
            entry.update(title=spec.title, version=spec.version, citation=spec.source, kind=spec.kind)
        if rule_id not in accepted["rule_ids"]:
            entry["note"] = "re-evaluated at plan build on the stored facts"
        out.append(entry)
    return tuple(out)


def _features(accepted: dict[str, Any]) -> dict[str, float]:
    """The model features of the stored facts, derived as core.rules.recommend derives them (BED10 from the accepted
    recommendation's dose and fractionation)."""
    facts = accepted.get("facts") or {}
    out = {k: float(v) for k, v in facts.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    for key in ("ild", "prior_thoracic_rt"):
        if isinstance(facts.get(key), bool):
            out[key] = 1.0 if facts[key] else 0.0
    if isinstance(facts.get("histology"), str):
        out["squamous"] = 1.0 if facts["histology"] == "squamous cell carcinoma" else 0.0
    rec = accepted["recommendation"]
    if "bed10_gy" not in out and rec.get("total_dose_gy") and rec.get("fractions"):
        out["bed10_gy"] = bed10_gy(float(rec["total_dose_gy"]), int(rec["fractions"]))
    return out


def _models(accepted: dict[str, Any], models_root: Path) -> tuple[dict[str, Any], ...]:
    """Each model of the accepted recommendation at the version it had then. When that exact version is installed
    and the stored facts hold all its features, it is re-scored (deterministic: same coefficients, same features):
    probability and per-feature contributions (log-odds). Otherwise only the name and version are kept."""
    features = _features(accepted)
    out = []
    for model_id, version in sorted(accepted["model_versions"].items()):
        entry: dict[str, Any] = {"model": model_id, "version": version, "score": "see decision support record"}
        folder = models_root / model_id / str(version)
        model, score = None, None
        try:
            model = load_model(folder) if (folder / "manifest.json").is_file() else None
            score = model.score(features) if model is not None and model.version == version else None
        except (ModelError, OSError, ValueError, KeyError):
            model, score = None, None
        if model is not None and score is not None:
            entry = {
                "model": model_id,
                "version": version,
                "title": str(model.manifest.get("title", "")),
                "outcome": score.outcome,
                "probability": score.probability,
                "unit": "probability (0-1)",
                "baseline_probability": score.baseline_probability,
                "demonstration": score.demonstration,
                "score": f"{100.0 * score.probability:.1f} %",
                "contributions": [
                    {"feature": c.feature, "value": c.value, "unit": c.unit, "log_odds": c.log_odds}
                    for c in score.contributions
                ],
                "provenance": "re-scored at plan build from the facts stored with the accepted recommendation",
            }
        out.append(entry)
    return tuple(out)


def _radiomics(accepted: dict[str, Any], models: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
    """The IBSI radiomics features among the stored facts (tag, value, unit when known)."""
    units = {c["feature"]: c["unit"] for m in models for c in m.get("contributions", ())}
    facts = accepted.get("facts") or {}
    return tuple(
        {"tag": tag, "value": float(value), "unit": _RADIOMICS_UNITS.get(tag) or units.get(tag, "")}
        for tag, value in sorted(facts.items())
        if tag in IBSI_TO_PYRADIOMICS and isinstance(value, int | float) and not isinstance(value, bool)
    )


def _decision_support(
    accepted: dict[str, Any] | None, prescription: Prescription, models_root: Path = SHIPPED_MODELS
) -> dict[str, Any]:
    """The accepted recommendation, its rules (with citations), model scores with contributions and radiomics
    features for the plan (None: not available)."""
    if accepted is None:
        return {"recommendation": None, "rules_fired": None, "model_scores": None, "radiomics": None}
    rec = accepted["recommendation"]
    how = "from it" if prescription.source == "recommendation" else "entered by hand"
    summary = (
        f"{rec.get('modality', '')} {rec.get('total_dose_gy')} Gy in {rec.get('fractions')} fractions, "
        f"{rec.get('intent', '')} (rules {', '.join(accepted['rule_ids'])}); accepted by {accepted['accepted_by']} "
        f"on {accepted['accepted_at'][:10]}; prescription {how}"
    )
    models = _models(accepted, models_root)
    return {
        "recommendation": {**accepted, "summary": summary},
        "rules_fired": _rules(accepted, models) or None,
        "model_scores": models or None,
        "radiomics": _radiomics(accepted, models) or None,
    }


def build_plan_content(
    store: Store,
    access: Access,
    study_uid: str,
    prescription: Prescription,
    options: PlanOptions,
    *,
    rtstruct_uid: str | None = None,
) -> PlanContent:
    """Everything a new plan version holds, computed from the stored study (audited as 'plan.build');
    ``rtstruct_uid``: build on that RT Structure Set (e.g. the AI one of core/pipeline) instead of the latest."""
    with store.transaction() as conn:
        objects = load_study_objects(conn, study_uid, rtstruct_uid=rtstruct_uid)
        accepted = accepted_recommendation(conn, objects.patient_id)
        details = {"rtstruct": objects.rtstruct is not None, "rtdose": objects.rtdose is not None}
        record_access(conn, access, "plan.build", objects=[AuditObject("study", study_uid)], details=details)
    structures = read_rtstruct_structures(objects.rtstruct) if objects.rtstruct is not None else None
    dose = dose_volume_from_rtdose(objects.rtdose) if objects.rtdose is not None else None
    entries: list[StructureEntry] = []
    derived: list[PlanarStructure] = []
    if structures is not None:
        derived, target_entries = _targets(objects, structures, options)
        for s in structures.structures.values():
            is_target = s.interpreted_type.upper() in _TARGETS
            role = "target" if is_target else ("external" if s.interpreted_type.upper() == "EXTERNAL" else "oar")
            ab_gy = options.alpha_beta.for_structure(s.name, s.interpreted_type)
            entries.append(StructureEntry(s.name, role, s.interpreted_type, s.polygon_volume_cc(), ab_gy))
        entries += target_entries
    chosen = (
        constraint_set(options.constraint_set)
        if options.constraint_set
        else select_constraint_set(prescription.fractions, prescription.technique, central=options.central)
    )
    results = (
        evaluate_constraints(chosen, structures, dose, prescription_gy=prescription.total_dose_gy) if chosen else []
    )
    dvh_rows: list[dict[str, float]] = []
    curves: dict[str, list[list[float]]] = {}
    dose_info = None
    if dose is not None and structures is not None and objects.rtdose is not None:
        for s in [*structures.structures.values(), *derived]:
            if s.interpreted_type.upper() == "EXTERNAL":
                continue
            row, curve = _curve(dose, s)
            dvh_rows.append(row)
            curves[s.name] = curve
        dose_info = {
            "rtdose_sop_instance_uid": str(objects.rtdose.SOPInstanceUID),
            "rtstruct_sop_instance_uid": str(objects.rtstruct.SOPInstanceUID) if objects.rtstruct else "",
            "grid_spacing_mm": list(dose.spacing_mm),
            "max_gy": round(float(np.max(dose.dose_gy)), 4),
            "end_caps": "half_slice",
        }
    ab = options.alpha_beta
    return PlanContent(
        patient_id=objects.patient_id,
        patient_name=objects.patient_name,
        study_uid=study_uid,
        study_date=objects.study_date,
        accession=objects.accession,
        prescription=prescription,
        alpha_beta={"tumour_gy": ab.tumour_gy, "normal_gy": ab.normal_gy, "overrides": dict(ab.overrides)},
        structures=tuple(entries),
        constraint_set=chosen.identifier if chosen else None,
        constraint_set_name=chosen.name
        if chosen
        else f"no validated constraint set for {prescription.fractions} fraction(s) of {prescription.technique}",
        constraint_results=tuple(results),
        dose=dose_info,
        dvh=tuple(dvh_rows),
        dvh_curves=curves,
        notes=options.notes,
        **_decision_support(accepted, prescription),
    )

"""The work behind the later pipeline steps: results rows (idempotent per run), facts from the DICOM header, the
recommendation, the draft plan, its PDF (file + Encapsulated PDF in the study) and the C-STORE back to the PACS."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.uid import UID
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from core.dicom.volumes import Volume
from core.dicom.writers.encapsulated_pdf import EncapsulatedPdfOptions, write_encapsulated_pdf
from core.pacs.association import open_association
from core.pipeline.context import PipelineContext, StepError
from core.pipeline.dicom_io import deterministic_uid, instance_bytes, sr_texts, store_dataset
from core.security.roles import Permission
from core.store.audit import AuditObject
from core.store.blobs import stored_bytes
from core.store.store import utc_now
from core.store.users import record_access

__all__ = [
    "header_facts",
    "longest_diameter_cm",
    "note_text",
    "plan_step",
    "run_recommend",
    "save_result",
    "send_instances",
    "tumour_location",
    "write_pdf",
]


def _producer(ctx: PipelineContext) -> str:
    return f"radplan-pipeline run {ctx.run_id}"


def save_result(ctx: PipelineContext, kind: str, payload: Mapping[str, Any]) -> int:
    """A results row of ``kind`` for the study (version = latest + 1), or the one this run already wrote."""
    access = ctx.access(Permission.RUN_ANALYSIS)
    with ctx.store.transaction() as conn:
        study_fk = conn.execute("SELECT id FROM studies WHERE study_uid = ?", (ctx.study_uid,)).fetchone()[0]
        row = conn.execute(
            "SELECT id FROM results WHERE kind = ? AND study_fk = ? AND producer = ?", (kind, study_fk, _producer(ctx))
        ).fetchone()
        if row is not None:
            return int(row[0])
        version = conn.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM results WHERE kind = ? AND study_fk = ?", (kind, study_fk)
        ).fetchone()[0]
        cur = conn.execute(
            "INSERT INTO results (kind, study_fk, series_fk, version, producer, payload, created_by, created) "
            "VALUES (?, ?, NULL, ?, ?, ?, ?, ?)",
            (
                kind,
                study_fk,
                version,
                _producer(ctx),
                json.dumps(payload, sort_keys=True, default=str).encode(),
                access.user.name,
                utc_now(),
            ),
        )
        record_access(
            conn,
            access,
            "pipeline.result",
            objects=[AuditObject("study", ctx.study_uid)],
            details={"kind": kind, "version": version, "run": ctx.run_id},
        )
        return int(cur.lastrowid or 0)


def longest_diameter_cm(mask: NDArray[np.bool_], volume: Volume) -> float:
    """Longest 3D diameter (cm) of the mask: the largest distance between surface voxel centres (convex hull)."""
    surface = mask & ~ndimage.binary_erosion(mask)
    kji = np.argwhere(surface).astype(np.float64)
    if len(kji) < 2:
        return 0.0
    scaled = kji[:, ::-1] * np.asarray(volume.spacing_mm)  # (x=c, y=r, z=k) in mm along the image axes
    points = scaled @ np.asarray(volume.direction, dtype=np.float64).reshape(3, 3).T
    with contextlib.suppress(QhullError, ValueError):  # flat or tiny: all points
        points = points[ConvexHull(points).vertices]
    return round(float(pdist(points).max()) / 10.0, 2)


def _mediastinum(left: NDArray[np.bool_], right: NDArray[np.bool_], gtv: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Per axial slice with both lungs: their convex hull minus the lungs (holes filled) and the GTV."""
    from skimage.morphology import convex_hull_image

    out = np.zeros_like(gtv)
    for k in range(gtv.shape[0]):
        if left[k].any() and right[k].any():
            # a hole inside a lung (the tumour, a vessel the segmentation left out) is not mediastinum
            lungs = ndimage.binary_fill_holes(left[k]) | ndimage.binary_fill_holes(right[k])
            hull = convex_hull_image(lungs)  # type: ignore[no-untyped-call]
            out[k] = hull & ~lungs & ~gtv[k]
    return out


def tumour_location(
    masks: Mapping[str, NDArray[np.bool_]], spacing_mm: tuple[float, float, float], ptv_margin_mm: float = 5.0
) -> tuple[str | None, float | None]:
    """Image-derived RTOG 0813 location of the GTV and its distance (mm) to the mediastinum, or (None, None) when
    the structures needed are missing. The mediastinum is approximated per axial slice as the convex hull of both
    lungs minus the lungs (their holes filled) and the GTV (the proximal bronchial tree lies inside it, so the
    distance is a lower bound and the call errs towards 'central', the more cautious fractionation): ultra-central
    when the PTV (GTV + margin) overlaps the oesophagus, central when the GTV is within 20 mm of the mediastinum,
    else peripheral. Computed on a grid of about 2 mm in-plane (every n-th row and column)."""
    step = max(1, round(2.0 / max(min(spacing_mm[0], spacing_mm[1]), 1e-6)))
    by_name = {n.upper(): m[:, ::step, ::step] for n, m in masks.items()}
    gtv, left, right = by_name.get("GTV"), by_name.get("LUNG_L"), by_name.get("LUNG_R")
    if gtv is None or left is None or right is None or not gtv.any():
        return None, None
    sampling = (spacing_mm[2], spacing_mm[1] * step, spacing_mm[0] * step)
    # Only the slices within `reach` of the GTV's are looked at (convex hulls cost ~20 ms a slice): mediastinum
    # farther along z cannot be nearer than `reach`; when the nearest found is farther, look again that far.
    ks = np.flatnonzero(gtv.reshape(gtv.shape[0], -1).any(axis=1))
    reach = 20.0 + ptv_margin_mm
    while True:
        pad = int(np.ceil(reach / spacing_mm[2]))
        lo, hi = max(0, int(ks[0]) - pad), min(gtv.shape[0], int(ks[-1]) + pad + 1)
        mediastinum = _mediastinum(left[lo:hi], right[lo:hi], gtv[lo:hi])
        distance = (
            float(ndimage.distance_transform_edt(~mediastinum, sampling=sampling)[gtv[lo:hi]].min())
            if mediastinum.any()
            else float("inf")
        )
        whole = lo == 0 and hi == gtv.shape[0]
        if distance <= reach or whole:
            break
        reach = distance if np.isfinite(distance) else float(gtv.shape[0] * spacing_mm[2])
    if not np.isfinite(distance):
        return None, None
    eso = by_name.get("ESOPHAGUS")
    if eso is not None and eso[lo:hi].any():  # the slab reaches >= 25 mm past the GTV: any PTV overlap is in it
        to_gtv = ndimage.distance_transform_edt(~gtv[lo:hi], sampling=sampling)
        if bool((to_gtv[eso[lo:hi]] <= ptv_margin_mm).any()):
            return "ultracentral", round(distance, 1)
    return ("central" if distance <= 20.0 else "peripheral"), round(distance, 1)


def _first_header(ctx: PipelineContext, study_uid: str) -> pydicom.Dataset:
    with ctx.store.transaction() as conn:
        row = conn.execute(
            "SELECT i.blob, d.data FROM instances i "
            "LEFT JOIN instance_data d ON d.instance_fk = i.id JOIN series se ON "
            "se.id = i.series_fk JOIN studies st ON st.id = se.study_fk WHERE st.study_uid = ? AND se.modality = 'CT' "
            "ORDER BY i.id LIMIT 1",
            (study_uid,),
        ).fetchone()
        data = stored_bytes(conn, row[0], row[1])
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def header_facts(ctx: PipelineContext, study_uid: str) -> dict[str, Any]:
    """Age (years) and sex from the CT header when stated."""
    ds = _first_header(ctx, study_uid)
    out: dict[str, Any] = {}
    age = str(ds.get("PatientAge", ""))
    if len(age) == 4 and age[:3].isdigit() and age[3] == "Y":
        out["age"] = int(age[:3])
    if str(ds.get("PatientSex", "")) in ("M", "F", "O"):
        out["sex"] = str(ds.PatientSex)
    return out


def note_text(ctx: PipelineContext, sop_uid: str | None) -> str | None:
    if not sop_uid:
        return None
    with ctx.store.transaction() as conn:
        data = instance_bytes(conn, sop_uid)
    return None if data is None else "\n".join(sr_texts(pydicom.dcmread(io.BytesIO(data)).get("ContentSequence", [])))


def run_recommend(ctx: PipelineContext, facts: dict[str, Any], note: str | None, features_csv: str) -> dict[str, Any]:
    """core.rules.recommend on the facts, the note and the radiomics features; JSON-ready."""
    from core.models.registry import SHIPPED_MODELS
    from core.rules.recommend import read_radiomics_csv, recommend
    from core.rules.rulebase import load_rulebase

    rulebase = load_rulebase(ctx.options.site)
    features = read_radiomics_csv(Path(features_csv).read_text(encoding="utf-8"))
    radiomics = {k: v for k, v in features.items() if k not in rulebase.facts}
    roots = ctx.model_roots or (SHIPPED_MODELS,)
    result = recommend(rulebase, facts, note, model_roots=roots, radiomics=radiomics)
    loaded: dict[str, Any] = json.loads(json.dumps(result, default=str))
    return loaded


def _existing_plan(ctx: PipelineContext, marker: str) -> int | None:
    with ctx.store.transaction() as conn:
        rows = conn.execute(
            "SELECT p.id, p.payload FROM plans p JOIN studies st ON st.id = p.study_fk WHERE st.study_uid = ? "
            "ORDER BY p.id DESC",
            (ctx.study_uid,),
        ).fetchall()
    return next((int(r[0]) for r in rows if json.loads(r[1]).get("notes") == marker), None)


def plan_step(ctx: PipelineContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The draft plan of the recommendation on the AI structures (reused when this run already made it)."""
    from core.plan.builder import PlanOptions, build_plan_content
    from core.plan.model import Prescription
    from core.plan.repository import create_plan, get_plan

    rec = inputs["recommendation"]
    if not rec or not rec.get("total_dose_gy") or not rec.get("fractions"):
        return {
            "plan_id": None,
            "dose_computed": False,
            "reason": "the recommendation has no radiotherapy dose (e.g. surgery): no plan drafted",
        }
    marker = f"Draft made by the RadPlan pipeline (run {ctx.run_id}); not yet reviewed or approved."
    access = ctx.access(Permission.EDIT_PLANS)
    existing = _existing_plan(ctx, marker)
    if existing is not None:
        record = get_plan(ctx.store, ctx.access(Permission.READ_PATIENT_DATA), existing)
        return {"plan_id": existing, "dose_computed": record.content.dose_computed, "reused": True}
    result = inputs["recommend_result"]
    facts = {k: v["value"] for k, v in result["facts"].items()}
    modality = str(rec.get("modality") or "")
    technique = "SBRT" if modality.upper() == "SBRT" else (modality or "conventional")
    prescription = Prescription(
        float(rec["total_dose_gy"]), int(rec["fractions"]), technique, str(rec["intent"]), source="recommendation"
    )
    m = ctx.options.ptv_margin_mm
    options = PlanOptions(
        ptv_margins_mm=(m, m, m), central=facts.get("location") in ("central", "ultracentral"), notes=marker
    )
    content = build_plan_content(
        ctx.store, access, ctx.study_uid, prescription, options, rtstruct_uid=inputs["rtstruct_sop_instance_uid"]
    )
    content = replace(content, **_decision_support(ctx, rec, result, facts))
    record = create_plan(ctx.store, access, content)
    return {"plan_id": record.plan_id, "dose_computed": content.dose_computed}


def _decision_support(
    ctx: PipelineContext, rec: Mapping[str, Any], result: Mapping[str, Any], facts: Mapping[str, Any]
) -> dict[str, Any]:
    dose = f"{rec.get('total_dose_gy'):g} Gy in {rec.get('fractions')} fractions"
    summary = (
        f"{rec.get('modality', '')} {dose}, {rec.get('intent', '')} (rules {', '.join(rec['rule_ids'])}); "
        f"proposed by the RadPlan pipeline (run {ctx.run_id}), not yet accepted by a clinician"
    )
    scores = tuple(
        {
            "model": s["model"],
            "version": s["model_version"],
            "title": s.get("title", ""),
            "outcome": s["outcome"],
            "probability": s["probability"],
            "unit": s.get("unit", ""),
            "baseline_probability": s.get("baseline_probability"),
            "demonstration": s.get("demonstration", False),
            "score": f"{100.0 * s['probability']:.1f} %",
            "contributions": [
                {k: c.get(k) for k in ("feature", "value", "unit", "log_odds")} for c in s["contributions"]
            ],
            "provenance": f"computed by the RadPlan pipeline (run {ctx.run_id})",
        }
        for s in result["scores"]
    )
    rules = tuple(
        {
            "rule": r["id"],
            "title": r.get("title", ""),
            "version": r.get("version", ""),
            "citation": r.get("source", ""),
            "kind": r.get("kind", ""),
        }
        for r in result["rules_fired"]
    )
    radiomics = tuple(
        {"tag": k, "value": float(v["value"]), "unit": ""}
        for k, v in sorted(result["facts"].items())
        if v.get("source") == "radiomics"
    )
    return {
        "recommendation": {
            "recommendation": dict(rec),
            "rule_ids": list(rec["rule_ids"]),
            "summary": summary,
            "site": result.get("site", ""),
            "facts": dict(facts),
            "accepted_by": None,
            "source": f"pipeline run {ctx.run_id}",
        },
        "model_scores": scores or None,
        "rules_fired": rules or None,
        "radiomics": radiomics or None,
    }


def write_pdf(ctx: PipelineContext, plan_id: int) -> dict[str, Any]:
    """The plan PDF as a file in the output folder and as an Encapsulated PDF in the study (for the send-back)."""
    from core.plan.report import render_plan_pdf, write_plan_pdf
    from core.plan.repository import get_plan

    reader = ctx.access(Permission.READ_PATIENT_DATA)
    path = ctx.out_dir / f"plan-{plan_id}.pdf"
    pages = write_plan_pdf(ctx.store, reader, plan_id, path)
    record = get_plan(ctx.store, reader, plan_id)
    uid = deterministic_uid("plan pdf", ctx.study_uid, str(plan_id), record.payload_sha256)
    with ctx.store.transaction() as conn:
        known = conn.execute("SELECT 1 FROM instances WHERE sop_uid = ?", (uid,)).fetchone() is not None
    if not known:
        pdf = path.read_bytes() if path.is_file() else render_plan_pdf(record, None)
        options = EncapsulatedPdfOptions(
            title=f"Draft treatment plan {plan_id} v{record.version} (decision support, not approved)",
            date=utc_now()[:10].replace("-", ""),
            time=utc_now()[11:19].replace(":", ""),
            sop_instance_uid=uid,
            series_instance_uid=deterministic_uid("plan pdf series", ctx.study_uid),
            series_number=903,
            series_description="RadPlan draft plan (PDF)",
            instance_number=record.version,
        )
        ds = write_encapsulated_pdf(pdf, _first_header(ctx, ctx.study_uid), options)
        store_dataset(ctx.store, ctx.access(Permission.IMPORT_STUDIES), ds, action="pipeline.pdf.store")
    return {"pdf": str(path), "pages": pages, "pdf_sop_instance_uid": uid}


def send_instances(ctx: PipelineContext, uids: Mapping[str, str]) -> dict[str, str]:
    """C-STORE exactly these stored instances (kind -> SOP Instance UID) to the run's PACS node (audited)."""
    assert ctx.node is not None and ctx.local is not None
    access = ctx.access(Permission.READ_PATIENT_DATA)
    with ctx.store.transaction() as conn:
        data = {kind: instance_bytes(conn, uid) for kind, uid in uids.items()}
        record_access(
            conn,
            access,
            "pacs.send",
            objects=[AuditObject("pacs_node", ctx.node.name), AuditObject("study", ctx.study_uid)],
            details={"what": sorted(uids), "instances": len(uids), "by": "pipeline"},
        )
    missing = [k for k, v in data.items() if v is None]
    if missing:
        raise StepError("send", f"{', '.join(missing)} not in the store: run again to remake them")
    datasets = {k: pydicom.dcmread(io.BytesIO(v)) for k, v in data.items() if v is not None}
    sent: dict[str, str] = {}
    classes = sorted({UID(str(ds.SOPClassUID)) for ds in datasets.values()})
    with open_association(ctx.local, ctx.node, storage_scu=classes) as assoc:
        for kind, ds in datasets.items():
            status = assoc.send_c_store(ds)
            code = int(status.Status) if status is not None and "Status" in status else None
            if code not in (0x0000, 0xB000, 0xB007, 0xB006):
                raise StepError(
                    "send",
                    f"{ctx.node.name} refused the {kind} ({'no answer' if code is None else hex(code)})"
                    "; run again to retry the send",
                )
            sent[kind] = str(ds.SOPInstanceUID)
    return sent

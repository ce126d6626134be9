"""The pipeline's typed steps. Each is a small class with a name, the outputs of earlier steps it reads
(``inputs``) and the outputs it makes (``outputs``, JSON values kept in the store for resume); ``run(ctx, inputs)``
does the work through the existing core services. Steps know nothing of each other: graph.py wires them.

Idempotent results: instances the steps store (AI RT Structure Set, plan PDF, note) get SOP Instance UIDs derived
from their sources, results rows are looked up by the run that made them before a new one is written, and the
plan step reuses the plan its run already created, so a step that is re-run after a crash never duplicates.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pydicom
import SimpleITK as sitk  # noqa: N813

from core.dicom.importer import import_paths
from core.dicom.volumes import series_to_volume
from core.pacs.retrieve import RetrieveProgress, retrieve_study
from core.pipeline.context import PipelineContext, StepError
from core.pipeline.dicom_io import (
    find_ai_seg,
    find_note,
    load_ct_and_masks,
    note_to_sr,
    store_dataset,
    write_ai_rtstruct,
)
from core.pipeline.results import (
    longest_diameter_cm,
    plan_step,
    save_result,
    send_instances,
    tumour_location,
    write_pdf,
)
from core.radiomics.extract import read_features_csv
from core.radiomics.service import extract_to_csv
from core.security.roles import Permission
from core.store.audit import AuditObject
from core.store.blobs import stored_bytes
from core.store.users import record_access

__all__ = [
    "STEPS",
    "NlpStep",
    "PdfStep",
    "PlanStep",
    "RadiomicsStep",
    "RetrieveStep",
    "RulesStep",
    "ScoresStep",
    "SegmentStep",
    "SelectCtStep",
    "SendStep",
    "Step",
    "StructuresStep",
]

Outputs = dict[str, Any]


class Step:
    """Base of every step: ``name``, ``title`` (shown as progress), ``inputs`` (names of earlier outputs it reads)
    and ``outputs`` (names it returns)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ()

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> Outputs:
        raise NotImplementedError

    def fail(self, message: str) -> StepError:
        return StepError(self.name, message)


class RetrieveStep(Step):
    name, title = "retrieve", "retrieve the study into the encrypted store"
    outputs = ("study_uid", "instances")

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> Outputs:
        access = ctx.access(Permission.IMPORT_STUDIES)
        if ctx.node is not None and ctx.local is not None:

            def progress(p: RetrieveProgress) -> None:
                ctx.progress(self.name, p.done / p.total if p.total else 0.0, f"{p.done}/{p.total} instances")

            report = retrieve_study(ctx.store, access, ctx.local, ctx.node, ctx.study_uid, progress=progress)
            counts = {"instances": report.total, "stored": report.stored, "already_present": report.already_present}
        elif ctx.input_dir is not None:
            imported = import_paths(
                ctx.store,
                access,
                [ctx.input_dir],
                progress=lambda i, n: ctx.progress(self.name, i / max(n, 1), f"{i}/{n} files"),
            )
            if ctx.study_uid not in imported.studies:
                raise self.fail(f"no instance of study {ctx.study_uid} was found under {ctx.input_dir}")
            counts = {
                "instances": imported.stored + imported.already_present,
                "stored": imported.stored,
                "already_present": imported.already_present,
            }
            note = ctx.options.note_file or ctx.input_dir / "note.txt"
            if note.is_file():
                counts["note_attached"] = self._attach(ctx, note.read_text(encoding="utf-8"))
        else:
            raise self.fail("no source: give a PACS node and a study UID, or an input folder")
        return {"study_uid": ctx.study_uid, **counts}

    def _attach(self, ctx: PipelineContext, text: str) -> bool:
        """The folder's note.txt as the study's clinical note (a structured report; the same text, the same UID)."""
        with ctx.store.transaction() as conn:
            row = conn.execute(
                "SELECT i.blob, d.data FROM instances i "
                "LEFT JOIN instance_data d ON d.instance_fk = i.id JOIN series se ON "
                "se.id = i.series_fk JOIN studies st ON st.id = se.study_fk WHERE st.study_uid = ? LIMIT 1",
                (ctx.study_uid,),
            ).fetchone()
            data = stored_bytes(conn, row[0], row[1])
        study = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        return store_dataset(
            ctx.store, ctx.access(Permission.IMPORT_STUDIES), note_to_sr(text, study), action="pipeline.note.attach"
        )


class SelectCtStep(Step):
    name, title = "select_ct", "select the CT series"
    inputs = ("study_uid",)
    outputs = ("ct_series_uid", "n_slices")

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> Outputs:
        access = ctx.access(Permission.READ_PATIENT_DATA)
        with ctx.store.transaction() as conn:
            rows = conn.execute(
                "SELECT se.series_uid, count(i.id), se.description FROM series se JOIN studies st ON st.id = "
                "se.study_fk JOIN instances i ON i.series_fk = se.id WHERE st.study_uid = ? AND se.modality = 'CT' "
                "GROUP BY se.id ORDER BY count(i.id) DESC, se.id",
                (inputs["study_uid"],),
            ).fetchall()
            record_access(
                conn,
                access,
                "pipeline.select_ct",
                objects=[AuditObject("study", inputs["study_uid"])],
                details={"ct_series": len(rows)},
            )
        if not rows or int(rows[0][1]) < 8:
            raise self.fail(f"study {inputs['study_uid']} has no CT series of at least 8 slices to segment")
        return {"ct_series_uid": str(rows[0][0]), "n_slices": int(rows[0][1])}


class SegmentStep(Step):
    name, title = "segment", "AI segmentation in the engine worker"
    inputs = ("study_uid", "ct_series_uid")
    outputs = ("seg_sop_instance_uid",)

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> Outputs:
        with ctx.store.transaction() as conn:
            existing = find_ai_seg(conn, inputs["study_uid"], inputs["ct_series_uid"])
        if existing is not None:  # made by an earlier run, or by a job that finished after its run failed
            return {"seg_sop_instance_uid": existing, "reused": True}
        result = dict(ctx.segmenter.segment(ctx, inputs["study_uid"], inputs["ct_series_uid"]))
        if not result.get("seg_sop_instance_uid"):
            raise self.fail("the segmentation finished without a stored SEG: see 'radplan jobs' and the worker log")
        return result


class StructuresStep(Step):
    name, title = "structures", "AI structures: RT Structure Set, volumes, tumour size"
    inputs = ("study_uid", "ct_series_uid", "seg_sop_instance_uid")
    outputs = ("rtstruct_sop_instance_uid", "volumes_cc", "gtv_diameter_cm", "location", "ct_image", "gtv_mask")

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> Outputs:
        ct, masks = load_ct_and_masks(
            ctx.store,
            ctx.access(Permission.READ_PATIENT_DATA),
            inputs["study_uid"],
            inputs["ct_series_uid"],
            inputs["seg_sop_instance_uid"],
        )
        gtv_name = next((n for n in masks if n.upper() == "GTV"), None)
        if gtv_name is None or not masks[gtv_name].any():
            raise self.fail("the AI segmentation found no tumour (GTV): review the study; nothing to plan")
        rtstruct = write_ai_rtstruct(masks, ct, inputs["seg_sop_instance_uid"])
        store_dataset(ctx.store, ctx.access(Permission.IMPORT_STUDIES), rtstruct, action="pipeline.rtstruct.store")
        volume = series_to_volume(ct)
        location, distance = tumour_location(masks, volume.spacing_mm, ctx.options.ptv_margin_mm)
        image: Any = volume.to_sitk()
        voxel_cc = float(np.prod(volume.spacing_mm)) / 1000.0
        work = ctx.out_dir / "work"
        work.mkdir(parents=True, exist_ok=True)
        mask: Any = sitk.GetImageFromArray(masks[gtv_name].astype(np.uint8))
        mask.CopyInformation(image)
        image, mask = _crop(image, mask, masks[gtv_name], volume.spacing_mm, margin_mm=30.0)
        sitk.WriteImage(image, str(work / "ct.nii.gz"))
        sitk.WriteImage(mask, str(work / "gtv.nii.gz"))
        return {
            "rtstruct_sop_instance_uid": str(rtstruct.SOPInstanceUID),
            "volumes_cc": {n: round(float(m.sum()) * voxel_cc, 3) for n, m in masks.items()},
            "gtv_diameter_cm": longest_diameter_cm(masks[gtv_name], volume),
            "location": location,
            "gtv_to_mediastinum_mm": distance,
            "ct_image": str(work / "ct.nii.gz"),
            "gtv_mask": str(work / "gtv.nii.gz"),
        }


def _crop(image: Any, mask: Any, roi: Any, spacing_mm: tuple[float, float, float], margin_mm: float) -> tuple[Any, Any]:
    """Image and mask cropped to the ROI's bounding box plus ``margin_mm`` (radiomics looks no further)."""
    kji = np.argwhere(roi)
    pad = [int(np.ceil(margin_mm / s)) for s in (spacing_mm[2], spacing_mm[1], spacing_mm[0])]
    low = [max(0, int(v) - p) for v, p in zip(kji.min(axis=0), pad, strict=True)]
    high = [min(n, int(v) + p + 1) for v, p, n in zip(kji.max(axis=0), pad, roi.shape, strict=True)]
    index, size = [low[2], low[1], low[0]], [high[2] - low[2], high[1] - low[1], high[0] - low[0]]
    itk: Any = sitk  # SimpleITK is not annotated
    return itk.RegionOfInterest(image, size, index), itk.RegionOfInterest(mask, size, index)


class RadiomicsStep(Step):
    name, title = "radiomics", "radiomics of the GTV"
    inputs = ("study_uid", "ct_image", "gtv_mask")
    outputs = ("features_csv", "n_features")

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> Outputs:
        out = ctx.out_dir / "radiomics.csv"
        access = ctx.access(Permission.RUN_ANALYSIS)
        report = extract_to_csv(
            ctx.store,
            access,
            Path(inputs["ct_image"]),
            Path(inputs["gtv_mask"]),
            ctx.options.radiomics_config,
            out,
            label=1,
        )
        features = {f.ibsi_tag: f.value for f in read_features_csv(out) if f.ibsi_tag and np.isfinite(f.value)}
        result_id = save_result(ctx, "features", {"config": report.config, "features": features})
        return {"features_csv": str(out), "n_features": report.n_features, "result_id": result_id}


class NlpStep(Step):
    name, title = "nlp", "NLP of the clinical note"
    inputs = ("study_uid",)
    outputs = ("note_sop_instance_uid", "note_facts")

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> Outputs:
        from core.nlp.pipeline import extract_note_facts

        with ctx.store.transaction() as conn:
            found = find_note(conn, inputs["study_uid"])
            record_access(
                conn,
                ctx.access(Permission.READ_PATIENT_DATA),
                "pipeline.note.read",
                objects=[AuditObject("study", inputs["study_uid"])],
                details={"found": found is not None},
            )
        if found is None:
            return {"note_sop_instance_uid": None, "note_facts": {}}
        facts = {k: v for k, v in extract_note_facts(found[1]).facts.items() if isinstance(v, str | int | float | bool)}
        result_id = save_result(ctx, "nlp", {"note_sop_instance_uid": found[0], "facts": facts})
        return {"note_sop_instance_uid": found[0], "note_facts": facts, "result_id": result_id}


class ScoresStep(Step):
    """Facts (note, DICOM header, image) and the risk-model scores. The models need the BED10 of the leading
    recommendation, so this is core.rules.recommend's first rule pass plus scoring, as that module defines it."""

    name, title = "scores", "facts and risk-model scores"
    inputs = ("study_uid", "note_sop_instance_uid", "note_facts", "gtv_diameter_cm", "location", "features_csv")
    outputs = ("facts", "scores", "recommend_result")

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> Outputs:
        from core.pipeline.results import header_facts, note_text, run_recommend

        facts = {k: v for k, v in header_facts(ctx, inputs["study_uid"]).items() if k not in inputs["note_facts"]}
        if "tumor_diameter_cm" not in inputs["note_facts"] and inputs["gtv_diameter_cm"]:
            facts["tumor_diameter_cm"] = inputs["gtv_diameter_cm"]
        if "location" not in inputs["note_facts"] and inputs["location"]:
            facts["location"] = inputs["location"]
        text = note_text(ctx, inputs["note_sop_instance_uid"])
        result = run_recommend(ctx, facts, text, inputs["features_csv"])
        result_id = save_result(ctx, "scores", {"scores": result["scores"]})
        return {"facts": facts, "scores": result["scores"], "recommend_result": result, "result_id": result_id}


class RulesStep(Step):
    name, title = "rules", "rule base: recommendation"
    inputs = ("recommend_result",)
    outputs = ("recommendation", "flags", "questions")

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> Outputs:
        from core.rules.decide import decide
        from core.rules.rulebase import load_rulebase

        result = dict(inputs["recommend_result"])
        facts = {k: v["value"] for k, v in result["facts"].items()}
        scores = {f"score_{s['outcome']}": s["probability"] for s in result["scores"]}
        decision = decide(load_rulebase(ctx.options.site), {k: v for k, v in facts.items() if k not in scores}, scores)
        if [r["rule_ids"] for r in decision.recommendations] != [r["rule_ids"] for r in result["recommendations"]]:
            raise self.fail("the rule base gave a different recommendation on the final facts: report this as a bug")
        top = decision.recommendations[0] if decision.recommendations else None
        result_id = save_result(ctx, "recommendation", result)
        return {"recommendation": top, "flags": decision.flags, "questions": decision.questions, "result_id": result_id}


class PlanStep(Step):
    name, title = "plan", "draft plan (DVH when an RT Dose is present)"
    inputs = ("study_uid", "recommendation", "recommend_result", "rtstruct_sop_instance_uid")
    outputs = ("plan_id", "dose_computed")

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> Outputs:
        try:
            return plan_step(ctx, inputs)
        except ValueError as exc:
            raise self.fail(f"the draft plan cannot be made: {exc}") from exc


class PdfStep(Step):
    name, title = "pdf", "plan PDF"
    inputs = ("plan_id",)
    outputs = ("pdf", "pdf_sop_instance_uid")

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> Outputs:
        if inputs["plan_id"] is None:
            return {"pdf": None, "pdf_sop_instance_uid": None}
        return write_pdf(ctx, int(inputs["plan_id"]))


class SendStep(Step):
    name, title = "send", "C-STORE of SEG, RT Structure Set and PDF to the PACS"
    inputs = ("seg_sop_instance_uid", "rtstruct_sop_instance_uid", "pdf_sop_instance_uid")
    outputs = ("sent",)

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> Outputs:
        if not ctx.options.send_back:
            return {"sent": {}, "skipped": "not asked (--send-back)"}
        if ctx.node is None or ctx.local is None:
            return {"sent": {}, "skipped": "no PACS node (the study came from a folder)"}
        uids = {
            "seg": inputs["seg_sop_instance_uid"],
            "rtstruct": inputs["rtstruct_sop_instance_uid"],
            "pdf": inputs["pdf_sop_instance_uid"],
        }
        return {"sent": send_instances(ctx, {k: v for k, v in uids.items() if v})}


#: Every step class, in no particular order (graph.py orders them).
STEPS: tuple[type[Step], ...] = (
    RetrieveStep,
    SelectCtStep,
    SegmentStep,
    StructuresStep,
    RadiomicsStep,
    NlpStep,
    ScoresStep,
    RulesStep,
    PlanStep,
    PdfStep,
    SendStep,
)

"""DICOM export of an approved plan, ready for `radplan pacs send`: the plan PDF as Encapsulated PDF Storage and
the derived targets (CTV, PTV by margin expansion) as an RT Structure Set on the study's CT."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydicom.uid import generate_uid

from core.dicom.importer import ImportReport, parse_instance, store_instances
from core.dicom.writers.encapsulated_pdf import EncapsulatedPdfOptions, write_encapsulated_pdf
from core.dicom.writers.rtstruct import ImageSeriesReference, RoiSpec, StructureSetOptions, write_rtstruct
from core.plan.builder import PLAN_TARGETS_SERIES_DESCRIPTION, load_study_objects, plan_target_masks
from core.plan.figures import plan_key_images
from core.plan.report import render_plan_pdf
from core.plan.repository import PlanWorkflowError, get_plan
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.store import Store
from core.store.users import record_access

__all__ = ["export_plan_dicom"]


def export_plan_dicom(
    store: Store, access: Access, plan_id: int, out_dir: Path, *, store_as: Access | None = None
) -> list[Path]:
    """Write the approved plan ``plan_id`` into ``out_dir`` (audited 'plan.export'): the Encapsulated PDF, and the
    CTV/PTV RT Structure Set when the plan has margin-derived targets. Refuses plans that are not approved: only a
    signed plan leaves the workstation. With ``store_as`` (an import_studies access) the written instances are also
    kept in the store with the study (audited 'plan.export.store'), where `radplan pacs send --what pdf|rtstruct`
    finds them. Returns the files written."""
    record = get_plan(store, access, plan_id)
    if record.status != "approved":
        raise PlanWorkflowError(f"plan {plan_id} is {record.status}: only an approved plan can be exported")
    pdf = render_plan_pdf(record, plan_key_images(store, access, record))
    with store.transaction() as conn:
        objects = load_study_objects(conn, record.study_uid)
    source = objects.rtstruct or (objects.ct[0] if objects.ct else objects.rtdose)
    if source is None:
        raise PlanWorkflowError("the study has no CT, RT Structure Set or RT Dose to take the patient data from")
    now = datetime.now(UTC)
    uid = str(generate_uid(entropy_srcs=["RadPlan plan", record.study_uid, str(plan_id), record.payload_sha256]))
    options = EncapsulatedPdfOptions(
        title=f"Treatment plan {plan_id} v{record.version} (approved)",
        date=now.strftime("%Y%m%d"),
        time=now.strftime("%H%M%S"),
        sop_instance_uid=uid,
        instance_number=record.version,
    )
    ds = write_encapsulated_pdf(pdf, source, options)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"plan-{plan_id}-v{record.version}.dcm"
    ds.save_as(path, enforce_file_format=True)
    paths = [path]
    targets = plan_target_masks(objects, record.content.structures)
    if targets:
        reference = ImageSeriesReference.from_datasets(objects.ct)
        entries = {e.name: e for e in record.content.structures}
        rois = {
            name: RoiSpec(
                mask,
                interpreted_type=name if name in ("CTV", "PTV") else "CTV",
                color=(255, 160, 0) if name == "CTV" else (200, 0, 255),
                generation_algorithm="SEMIAUTOMATIC",
                description=f"{entries[name].derived_from} + margins x,y,z {entries[name].margins_mm} mm",
            )
            for name, mask in targets.items()
        }
        rs_uid = str(
            generate_uid(entropy_srcs=["RadPlan plan RTSTRUCT", record.study_uid, str(plan_id), record.payload_sha256])
        )
        rs_options = StructureSetOptions(
            date=options.date,
            time=options.time,
            label=f"PLAN{plan_id}V{record.version}"[:16],
            name="Plan targets",
            description="CTV/PTV by margin expansion (RadPlan)",
            sop_instance_uid=rs_uid,
            series_number=901,
            series_description=PLAN_TARGETS_SERIES_DESCRIPTION,
        )
        rs_path = out_dir / f"plan-{plan_id}-v{record.version}-targets.dcm"
        write_rtstruct(rois, reference, rs_options).save_as(rs_path, enforce_file_format=True)
        paths.append(rs_path)
    with store.transaction() as conn:
        record_access(
            conn,
            access,
            "plan.export",
            objects=[AuditObject("plan", str(plan_id)), AuditObject("instance", uid, "Encapsulated PDF")],
            details={"bytes": len(pdf), "files": [p.name for p in paths]},
        )
    if store_as is not None:
        # A re-export keeps the first stored copy of each SOP Instance UID (same UID, new PDF timestamp).
        parsed = [parse_instance(str(path), path.read_bytes()) for path in paths]
        store_instances(store, store_as, parsed, ImportReport(), action="plan.export.store")
    return paths

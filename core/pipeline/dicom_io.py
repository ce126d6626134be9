"""DICOM in and out of the store for the pipeline: the CT series and the AI SEG as masks, the clinical note attached
to a study (a Comprehensive SR with one TEXT item), the AI RT Structure Set and the draft plan PDF, each stored with a
deterministic SOP Instance UID so a re-run finds (never duplicates) them."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, SegmentationStorage, generate_uid

from core.dicom.importer import ImportReport, parse_instance, store_instances
from core.dicom.writers.rtstruct import ImageSeriesReference, RoiSpec, StructureSetOptions, write_rtstruct
from core.dicom.writers.seg import read_seg
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.blobs import stored_bytes
from core.store.database import Connection
from core.store.store import Store
from core.store.users import record_access

__all__ = [
    "AI_RTSTRUCT_DESCRIPTION",
    "AI_SEG_DESCRIPTION",
    "NOTE_SERIES_DESCRIPTION",
    "NOTE_SR_CLASS",
    "deterministic_uid",
    "find_ai_seg",
    "find_note",
    "instance_bytes",
    "load_ct_and_masks",
    "note_to_sr",
    "sr_texts",
    "store_dataset",
    "write_ai_rtstruct",
]

NOTE_SR_CLASS = UID("1.2.840.10008.5.1.4.1.1.88.33")  # Comprehensive SR: every retrieve negotiates it
NOTE_SERIES_DESCRIPTION = "Clinical note"
AI_SEG_DESCRIPTION = "RadPlan AI segmentation"
AI_RTSTRUCT_DESCRIPTION = "RadPlan AI structures"
_INTERPRETED = {"GTV": "GTV", "BODY": "EXTERNAL", "EXTERNAL": "EXTERNAL"}


def deterministic_uid(*parts: str) -> str:
    return str(generate_uid(entropy_srcs=["RadPlan pipeline", *parts]))


def instance_bytes(conn: Connection, sop_uid: str) -> bytes | None:
    row = conn.execute(
        "SELECT i.blob, d.data FROM instances i LEFT JOIN instance_data d ON d.instance_fk = i.id WHERE i.sop_uid = ?",
        (sop_uid,),
    ).fetchone()
    return stored_bytes(conn, row[0], row[1]) if row is not None else None


def store_dataset(store: Store, access: Access, ds: Dataset, *, action: str) -> bool:
    """Store one dataset (importer path, audited as ``action``); False when its SOP Instance UID was there."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    report = ImportReport()
    store_instances(store, access, [parse_instance(f"{action}.dcm", buffer.getvalue())], report, action=action)
    return report.stored == 1


def find_ai_seg(conn: Connection, study_uid: str, ct_series_uid: str) -> str | None:
    """The latest stored SEG of the study that references ``ct_series_uid`` (the AI segmentation), or None."""
    rows = conn.execute(
        "SELECT i.sop_uid, i.blob, d.data FROM instances i LEFT JOIN instance_data d ON d.instance_fk = i.id "
        "JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk "
        "WHERE st.study_uid = ? AND i.sop_class_uid = ? ORDER BY i.id DESC",
        (study_uid, str(SegmentationStorage)),
    ).fetchall()
    for sop_uid, blob, inline in rows:
        ds = pydicom.dcmread(io.BytesIO(stored_bytes(conn, blob, inline)), stop_before_pixels=True)
        refs = [str(item.SeriesInstanceUID) for item in ds.get("ReferencedSeriesSequence", [])]
        if ct_series_uid in refs or not refs:
            return str(sop_uid)
    return None


def load_ct_and_masks(
    store: Store, access: Access, study_uid: str, ct_series_uid: str, seg_uid: str
) -> tuple[list[Dataset], dict[str, NDArray[np.bool_]]]:
    """The CT series (with pixels, sorted as stored) and the SEG's masks on it, by segment label (audited read)."""
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT i.blob, d.data FROM instances i LEFT JOIN instance_data d ON d.instance_fk = i.id "
            "JOIN series se ON se.id = i.series_fk WHERE se.series_uid = ? ORDER BY i.id",
            (ct_series_uid,),
        ).fetchall()
        seg_data = instance_bytes(conn, seg_uid)
        ct_bytes = [stored_bytes(conn, blob, inline) for blob, inline in rows]
        record_access(
            conn,
            access,
            "pipeline.read_segmentation",
            objects=[AuditObject("study", study_uid), AuditObject("instance", seg_uid, "SEG")],
            details={"ct_instances": len(rows)},
        )
    if seg_data is None:
        raise ValueError(f"the segmentation {seg_uid} is not in the store")
    ct: list[Dataset] = [pydicom.dcmread(io.BytesIO(data)) for data in ct_bytes]
    masks = read_seg(pydicom.dcmread(io.BytesIO(seg_data)), ct)
    return ct, masks


def note_to_sr(text: str, study: Dataset, *, when: datetime | None = None) -> Dataset:
    """A Comprehensive SR holding ``text`` as one TEXT item, in the patient and study of ``study`` (UIDs derived from
    the study UID and the text, so attaching the same note twice gives the same instance)."""
    when = when or datetime.now(UTC)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = NOTE_SR_CLASS
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = NOTE_SR_CLASS
    uid = deterministic_uid("note", str(study.StudyInstanceUID), text)
    ds.SOPInstanceUID = UID(uid)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyDescription",
    ):
        setattr(ds, keyword, study.get(keyword, ""))
    ds.Modality = "SR"
    ds.SeriesInstanceUID = deterministic_uid("note series", str(study.StudyInstanceUID))
    ds.SeriesNumber = 800
    ds.SeriesDescription = NOTE_SERIES_DESCRIPTION
    ds.InstanceNumber = 1
    ds.Manufacturer = "RadPlan"
    ds.ContentDate, ds.ContentTime = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = DicomSequence([_code("11488-4", "LN", "Consult note")])
    item = Dataset()
    item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", text
    item.ConceptNameCodeSequence = DicomSequence([_code("121070", "DCM", "Findings")])
    ds.ContentSequence = DicomSequence([item])
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def sr_texts(items: Sequence[Dataset]) -> list[str]:
    out = []
    for item in items:
        if item.get("ValueType") == "TEXT" and "TextValue" in item:
            out.append(str(item.TextValue))
        out += sr_texts(item.get("ContentSequence", []))
    return out


def find_note(conn: Connection, study_uid: str) -> tuple[str, str] | None:
    """(SOP Instance UID, text) of the latest structured report of the study that holds text (the clinical note)."""
    rows = conn.execute(
        "SELECT i.sop_uid, i.blob, d.data FROM instances i LEFT JOIN instance_data d ON d.instance_fk = i.id "
        "JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk "
        "WHERE st.study_uid = ? AND se.modality = 'SR' ORDER BY i.id DESC",
        (study_uid,),
    ).fetchall()
    for sop_uid, blob, inline in rows:
        ds = pydicom.dcmread(io.BytesIO(stored_bytes(conn, blob, inline)))
        text = "\n".join(sr_texts(ds.get("ContentSequence", [])))
        if text.strip():
            return str(sop_uid), text
    return None


def write_ai_rtstruct(masks: Mapping[str, NDArray[np.bool_]], ct: Sequence[Dataset], seg_uid: str) -> Dataset:
    """The AI segmentation as an RT Structure Set on the CT (UIDs derived from the SEG's UID). Contour vertices
    within 0.8 mm (at most one pixel) of the traced boundary are dropped: 8x fewer points to rasterise and sample
    at 0.8 mm pixels, for a segmentation that is not finer than that."""
    reference = ImageSeriesReference.from_datasets(ct)
    rois = {
        name: RoiSpec(
            mask,
            interpreted_type=_INTERPRETED.get(name.upper(), "ORGAN"),
            generation_algorithm="AUTOMATIC",
            description="AI segmentation (RadPlan), not reviewed",
        )
        for name, mask in masks.items()
        if mask.any()
    }
    now = datetime.now(UTC)
    options = StructureSetOptions(
        date=now.strftime("%Y%m%d"),
        time=now.strftime("%H%M%S"),
        label="RADPLAN-AI",
        name="AI structures",
        description="AI segmentation (decision support)",
        sop_instance_uid=deterministic_uid("rtstruct", seg_uid),
        series_instance_uid=deterministic_uid("rtstruct series", seg_uid),
        series_number=902,
        series_description=AI_RTSTRUCT_DESCRIPTION,
        simplify_tolerance_px=min(1.0, 0.8 / min(reference.pixel_spacing_mm)),
    )
    return write_rtstruct(rois, reference, options)

"""Encapsulated PDF Storage (PS3.3 A.45.1) writer and reader, built with pydicom.

Modules: Patient and General Study (copied from a dataset of the study), Encapsulated Document Series
(Modality DOC), General Equipment, SC Equipment (Conversion Type WSD: workstation), Encapsulated Document and
SOP Common. The PDF bytes go into Encapsulated Document unchanged (padded to an even length with one NUL, as the
standard requires); Encapsulated Document Length holds the true length so that a reader gets the exact bytes back.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, EncapsulatedPDFStorage, ExplicitVRLittleEndian, generate_uid

from core.dicom.writers.rtstruct import copy_patient_study

__all__ = ["EncapsulatedPdfOptions", "read_encapsulated_pdf", "write_encapsulated_pdf"]


@dataclass(frozen=True)
class EncapsulatedPdfOptions:
    """Identity of the document. UIDs left None are generated; ``date`` YYYYMMDD and ``time`` HHMMSS."""

    title: str
    date: str
    time: str
    series_description: str = "Treatment plan (PDF)"
    series_number: int = 900
    instance_number: int = 1
    sop_instance_uid: str | None = None
    series_instance_uid: str | None = None
    manufacturer: str = "RadPlan"
    software_version: str = ""
    referenced_sop: tuple[tuple[str, str], ...] = ()


def write_encapsulated_pdf(pdf: bytes, study: Dataset, options: EncapsulatedPdfOptions) -> Dataset:
    """An Encapsulated PDF instance (with file meta) of ``pdf`` in the patient and study of ``study``."""
    if not pdf.startswith(b"%PDF-"):
        raise ValueError("the document is not a PDF (it does not start with %PDF-)")
    if "StudyInstanceUID" not in study or "PatientID" not in study:
        raise ValueError("the study dataset needs at least Patient ID and Study Instance UID")
    ds = Dataset()
    sop_uid = UID(options.sop_instance_uid) if options.sop_instance_uid else generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = EncapsulatedPDFStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = sop_uid
    copy_patient_study(study, ds)
    for keyword in (
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
    ):
        if keyword not in ds:
            setattr(ds, keyword, "")  # Type 2 attributes of the Patient and General Study modules
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = options.series_instance_uid or generate_uid()
    ds.SeriesNumber = options.series_number
    ds.SeriesDescription = options.series_description
    ds.Manufacturer = options.manufacturer
    if options.software_version:
        ds.SoftwareVersions = options.software_version
    ds.ConversionType = "WSD"
    ds.InstanceNumber = options.instance_number
    ds.ContentDate = options.date
    ds.ContentTime = options.time
    ds.AcquisitionDateTime = options.date + options.time
    ds.BurnedInAnnotation = "YES"  # the document carries patient identifiers
    ds.DocumentTitle = options.title[:64]
    ds.ConceptNameCodeSequence = Sequence()
    if options.referenced_sop:
        refs = Sequence()
        for class_uid, instance_uid in options.referenced_sop:
            item = Dataset()
            item.ReferencedSOPClassUID = class_uid
            item.ReferencedSOPInstanceUID = instance_uid
            refs.append(item)
        ds.SourceInstanceSequence = refs
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    return ds


def read_encapsulated_pdf(ds: Dataset) -> bytes:
    """The PDF bytes of an Encapsulated PDF instance (trailing padding removed)."""
    if str(ds.get("SOPClassUID", "")) != EncapsulatedPDFStorage:
        raise ValueError("not an Encapsulated PDF Storage instance")
    data = bytes(ds.EncapsulatedDocument)
    length = ds.get("EncapsulatedDocumentLength")
    if length is not None:
        return data[: int(length)]
    return data[:-1] if data.endswith(b"\x00") else data

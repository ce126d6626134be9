"""De-identification: PS3.15 Annex E Basic Application Level Confidentiality Profile with the Retain Longitudinal
Temporal Information with Modified Dates option and the Clean Descriptors option.

What is implemented (action codes of PS3.15 Table E.1-1, with the two options applied):
- X (remove): the attributes of `REMOVE`, every private attribute, every remaining Person Name (PN) attribute;
- Z (zero length, or a pseudonym where one is needed to keep studies apart): `EMPTY`; Patient's Name and Patient ID
  get a pseudonym derived from the original ID and the secret (same patient -> same pseudonym);
- U (new UID, consistent): every UID that identifies an instance, series, study, frame of reference or a
  reference to one (`_UID_KEYWORDS` and any keyword ending in "InstanceUID"), mapped with an HMAC of the secret,
  so the same input UID always gives the same new UID (2.25.<128-bit integer>) within and across studies;
- Retain Longitudinal Temporal Information with Modified Dates: every DA and DT value is shifted by the same
  number of days for a patient (derived from the secret and the patient ID, 30 to 3650 days back); times kept;
  (0028,0303) Longitudinal Temporal Information Modified = MODIFIED;
- Clean Descriptors (C): the descriptions in `CLEAN` are kept with every identifying value found in the data set
  (names, IDs, accession, institution) removed;
- (0012,0062) Patient Identity Removed = YES, (0012,0063) De-identification Method (text) and (0012,0064)
  De-identification Method Code Sequence (DCM 113100, 113107, 113105).
Burned-in annotation is not looked for (Burned In Annotation must be NO or absent; otherwise the data set is refused).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import io
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from core.errors import PermissionDeniedError
from core.security.roles import Permission
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.blobs import stored_bytes
from core.store.store import Store
from core.store.users import record_access

__all__ = [
    "CLEAN",
    "EMPTY",
    "METHOD_CODES",
    "REMOVE",
    "DeidentificationError",
    "Deidentifier",
    "ExportReport",
    "export_study",
]

#: X: removed.
REMOVE = frozenset({
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "IssuerOfPatientID",
    "PatientBirthTime", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientAge", "PatientSize",
    "PatientWeight", "PatientAddress", "PatientTelephoneNumbers", "EthnicGroup", "Occupation", "MilitaryRank",
    "PatientMotherBirthName", "MedicalRecordLocator", "DeviceSerialNumber", "RequestAttributesSequence",
    "ReferencedPatientSequence", "ReferencedStudySequence", "PerformedProcedureStepID", "ScheduledProcedureStepID",
    "RequestedProcedureID", "PhysiciansOfRecord", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
    "OperatorsName", "InstitutionCodeSequence", "CountryOfResidence", "RegionOfResidence",
    "PatientInsurancePlanCodeSequence", "ResponsibleOrganization", "ResponsiblePerson", "PatientBirthName",
    "CurrentPatientLocation",
})  # fmt: skip
#: Z: kept with zero length (Patient's Name and ID get a pseudonym instead of zero length).
EMPTY = frozenset({
    "AccessionNumber", "ReferringPhysicianName", "PatientBirthDate", "PatientSex", "StudyID", "ContentCreatorName",
})  # fmt: skip
#: C under the Clean Descriptors option (otherwise X): kept, cleaned of identifying values.
CLEAN = frozenset({
    "StudyDescription", "SeriesDescription", "AdmittingDiagnosesDescription", "DerivationDescription",
    "ProtocolName", "ImageComments", "AdditionalPatientHistory", "PatientComments", "PerformedProcedureStepDescription",
    "RequestedProcedureDescription", "StructureSetLabel", "StructureSetName", "StructureSetDescription", "ROIName",
    "ROIDescription", "RTPlanLabel", "RTPlanName", "RTPlanDescription", "ContentDescription", "ContentLabel",
})  # fmt: skip
_UID_KEYWORDS = frozenset({
    "FrameOfReferenceUID", "ReferencedFrameOfReferenceUID", "RelatedFrameOfReferenceUID",
    "SynchronizationFrameOfReferenceUID", "ReferencedSOPInstanceUID", "StorageMediaFileSetUID",
    "IrradiationEventUID", "ConcatenationUID", "DimensionOrganizationUID", "MediaStorageSOPInstanceUID",
    "UID", "TrackingUID",
})  # fmt: skip
_NOT_REMAPPED = frozenset({"SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID"})
#: (code value, meaning) of the methods applied, DCM scheme (CID 7050).
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113105", "Clean Descriptors Option"),
)


class DeidentificationError(ValueError):
    """The data set cannot be de-identified safely (e.g. burned-in annotation)."""


@dataclass(frozen=True)
class Deidentifier:
    """De-identifies data sets consistently for one export (one secret: same inputs, same outputs)."""

    secret: bytes
    pseudonym_prefix: str = "ANON"

    def _digest(self, *parts: str) -> bytes:
        return hmac.new(self.secret, "\x1f".join(parts).encode(), hashlib.sha256).digest()

    def new_uid(self, uid: str) -> str:
        return "2.25." + str(int.from_bytes(self._digest("uid", uid)[:16], "big"))

    def pseudonym(self, patient_id: str) -> str:
        return f"{self.pseudonym_prefix}-{self._digest('patient', patient_id)[:5].hex().upper()}"

    def shift_days(self, patient_id: str) -> int:
        """Days subtracted from every date of this patient (30 to 3650)."""
        return 30 + int.from_bytes(self._digest("dates", patient_id)[:4], "big") % 3621

    def deidentify(self, ds: Dataset) -> Dataset:
        """A de-identified copy of ds (pixel data untouched; file meta updated)."""
        if str(ds.get("BurnedInAnnotation", "NO")).upper() == "YES":
            raise DeidentificationError(
                f"instance {ds.get('SOPInstanceUID', '?')} has burned-in annotation: not exported"
            )
        out = copy.deepcopy(ds)
        patient_id = str(ds.get("PatientID", ""))
        identifiers = _identifiers(ds)
        days = self.shift_days(patient_id)
        self._walk(out, identifiers, days)
        out.PatientName = self.pseudonym(patient_id)
        out.PatientID = self.pseudonym(patient_id)
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = [  # LO, 64 characters per value
            "PS3.15 Annex E Basic Appl. Level Confidentiality Profile",
            "Retain Longitudinal Temporal Info. with Modified Dates",
            "Clean Descriptors option",
            "UIDs remapped consistently",
        ]
        codes = []
        for value, meaning in METHOD_CODES:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            codes.append(item)
        out.DeidentificationMethodCodeSequence = Sequence(codes)
        out.LongitudinalTemporalInformationModified = "MODIFIED"
        if hasattr(out, "file_meta") and "SOPInstanceUID" in out:
            out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
        return out

    def _walk(self, ds: Dataset, identifiers: list[str], days: int) -> None:
        for elem in list(ds):
            keyword = elem.keyword
            if elem.tag.is_private or keyword in REMOVE:
                del ds[elem.tag]
            elif keyword in ("PatientName", "PatientID"):
                continue
            elif keyword in EMPTY:
                elem.value = ""
            elif elem.VR == "SQ":
                for item in elem.value:
                    self._walk(item, identifiers, days)
            elif elem.VR == "PN":
                del ds[elem.tag]
            elif (
                elem.VR == "UI"
                and keyword not in _NOT_REMAPPED
                and (keyword in _UID_KEYWORDS or keyword.endswith("InstanceUID"))
            ):
                elem.value = _map(elem, self.new_uid)
            elif elem.VR in ("DA", "DT") and elem.value:
                elem.value = _map(elem, lambda v: _shift(v, days))
            elif keyword in CLEAN and elem.value:
                elem.value = _map(elem, lambda v: _clean(v, identifiers))


def _map(elem: DataElement, fn: object) -> object:
    from pydicom.multival import MultiValue

    if isinstance(elem.value, MultiValue | list):
        return [fn(str(v)) for v in elem.value]  # type: ignore[operator]
    return fn(str(elem.value))  # type: ignore[operator]


def _shift(value: str, days: int) -> str:
    """A DA (YYYYMMDD) or the date part of a DT shifted back by `days`; the rest of a DT is kept."""
    text = value.strip()
    if len(text) < 8 or not text[:8].isdigit():
        return ""  # unparsable: removed rather than kept
    try:
        date = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8])) - dt.timedelta(days=days)
    except ValueError:
        return ""
    return date.strftime("%Y%m%d") + text[8:]


def _identifiers(ds: Dataset) -> list[str]:
    """Identifying strings found in the data set (names and their parts, IDs, accession, institution)."""
    found: set[str] = set()
    for elem in _all_elements(ds):
        if elem.VR == "PN" or elem.keyword in (
            "PatientID",
            "AccessionNumber",
            "InstitutionName",
            "OtherPatientIDs",
            "StationName",
            "InstitutionalDepartmentName",
            "StudyID",
        ):
            text = str(elem.value or "")
            found.update(p for p in {text, *re.split(r"[\^= ]+", text)} if len(p) >= 3)
    return sorted(found, key=len, reverse=True)


def _all_elements(ds: Dataset) -> Iterable[DataElement]:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _all_elements(item)
        else:
            yield elem


def _clean(value: str, identifiers: list[str]) -> str:
    for ident in identifiers:
        value = re.sub(re.escape(ident), "", value, flags=re.IGNORECASE)
    return re.sub(r"\s{2,}", " ", value).strip(" ,;:-^")


@dataclass(frozen=True)
class ExportReport:
    folder: Path
    files: int
    study_uid: str
    #: The new (remapped) Study Instance UID in the exported files.
    new_study_uid: str


def export_study(store: Store, access: Access, study_uid: str, out: Path) -> ExportReport:
    """Write the study's instances de-identified into `out` (created; must be empty) as <series>/<instance>.dcm.

    One random secret per export: UIDs, pseudonym and date shift are consistent within the export and cannot be
    linked back without it (it is not kept). Audited as study.export_deidentified. A data set that cannot be
    de-identified (burned-in annotation) stops the export before anything is written.
    """
    if access.permission is not Permission.READ_PATIENT_DATA:
        raise PermissionDeniedError("exporting a study needs the 'read_patient_data' permission")
    if out.exists() and any(out.iterdir()):
        raise DeidentificationError(f"{out} is not empty: export into a new or empty folder")
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT i.blob, d.data FROM instances i LEFT JOIN instance_data d ON d.instance_fk = i.id JOIN series se "
            "ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk WHERE st.study_uid = ? ORDER BY i.id",
            (study_uid,),
        ).fetchall()
        if rows:
            record_access(
                conn,
                access,
                "study.export_deidentified",
                objects=[AuditObject("study", study_uid)],
                details={"instances": len(rows), "profile": [code for code, _ in METHOD_CODES]},
            )
    if not rows:
        raise DeidentificationError(f"study {study_uid} is not in the store")
    deid = Deidentifier(secrets.token_bytes(32))
    done = [deid.deidentify(pydicom.dcmread(io.BytesIO(stored_bytes(store.conn, *r)))) for r in rows]  # all or nothing
    for ds in done:
        target = out / str(ds.SeriesInstanceUID) / f"{ds.SOPInstanceUID}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
    return ExportReport(out, len(done), study_uid, str(done[0].StudyInstanceUID))

"""De-identification row by row against DICOM PS3.15 Table E.1-1 (Basic Application Level Confidentiality Profile)
for every attribute core.dicom.deid acts on, with the two options we apply: Retain Longitudinal Temporal Information
with Modified Dates ("Rtn. Long. Modif. Dates") and Clean Descriptors ("Clean Desc.").

Each row: keyword, tag, the Basic Profile action, the option column that overrides it (or ""), and the action
RadPlan takes. Where the table leaves a choice (X/Z, X/D, X/Z/D) RadPlan removes (X), which the profile allows for
Type 3 attributes; Patient's Name and Patient ID (Z) get a pseudonym so studies of different patients stay apart
(a dummy value, D, allowed where the table says Z "or a dummy value consistent with the VR"). Dates are shifted by
whole days, so under the Modified Dates option (C) times stay as they were.
"""

from __future__ import annotations

import pydicom.datadict as dd
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from core.dicom.deid import CLEAN, EMPTY, REMOVE, Deidentifier

SECRET = b"table-secret-0123456789abcdef"
PID, NAME = "PID-40417", "WAINWRIGHT^ODALYS"

# keyword, tag, basic profile action, option override ("" = none; "C" of the named option), RadPlan's action:
#   X removed, Z zero length, P pseudonym (Z/D), U new UID, CD date shifted, CT time kept (whole-day shift),
#   CC descriptor kept and cleaned of identifying values.
TABLE: list[tuple[str, str, str, str, str]] = [
    ("AccessionNumber", "(0008,0050)", "Z", "", "Z"),
    ("InstanceCreationDate", "(0008,0012)", "X/D", "C Rtn. Long. Modif. Dates", "CD"),
    ("SOPInstanceUID", "(0008,0018)", "U", "", "U"),
    ("StudyDate", "(0008,0020)", "Z", "C Rtn. Long. Modif. Dates", "CD"),
    ("SeriesDate", "(0008,0021)", "X/D", "C Rtn. Long. Modif. Dates", "CD"),
    ("AcquisitionDate", "(0008,0022)", "X/Z", "C Rtn. Long. Modif. Dates", "CD"),
    ("ContentDate", "(0008,0023)", "Z/D", "C Rtn. Long. Modif. Dates", "CD"),
    ("AcquisitionDateTime", "(0008,002A)", "X/Z/D", "C Rtn. Long. Modif. Dates", "CD"),
    ("StudyTime", "(0008,0030)", "Z", "C Rtn. Long. Modif. Dates", "CT"),
    ("ContentTime", "(0008,0033)", "Z/D", "C Rtn. Long. Modif. Dates", "CT"),
    ("InstitutionName", "(0008,0080)", "X/Z/D", "", "X"),
    ("InstitutionAddress", "(0008,0081)", "X", "", "X"),
    ("InstitutionCodeSequence", "(0008,0082)", "X/Z/D", "", "X"),
    ("ReferringPhysicianName", "(0008,0090)", "Z", "", "Z"),
    ("StationName", "(0008,1010)", "X/Z/D", "", "X"),
    ("StudyDescription", "(0008,1030)", "X", "C Clean Desc.", "CC"),
    ("SeriesDescription", "(0008,103E)", "X", "C Clean Desc.", "CC"),
    ("InstitutionalDepartmentName", "(0008,1040)", "X", "", "X"),
    ("PhysiciansOfRecord", "(0008,1048)", "X", "", "X"),
    ("PerformingPhysicianName", "(0008,1050)", "X", "", "X"),
    ("NameOfPhysiciansReadingStudy", "(0008,1060)", "X", "", "X"),
    ("OperatorsName", "(0008,1070)", "X/Z/D", "", "X"),
    ("AdmittingDiagnosesDescription", "(0008,1080)", "X", "C Clean Desc.", "CC"),
    ("ReferencedStudySequence", "(0008,1110)", "X/Z", "", "X"),
    ("ReferencedPatientSequence", "(0008,1120)", "X", "", "X"),
    ("ReferencedSOPInstanceUID", "(0008,1155)", "U", "", "U"),
    ("DerivationDescription", "(0008,2111)", "X", "C Clean Desc.", "CC"),
    ("IrradiationEventUID", "(0008,3010)", "U", "", "U"),
    ("PatientName", "(0010,0010)", "Z", "", "P"),
    ("PatientID", "(0010,0020)", "Z", "", "P"),
    ("IssuerOfPatientID", "(0010,0021)", "X", "", "X"),
    ("PatientBirthDate", "(0010,0030)", "Z", "", "Z"),
    ("PatientBirthTime", "(0010,0032)", "X", "", "X"),
    ("PatientSex", "(0010,0040)", "Z", "", "Z"),
    ("PatientInsurancePlanCodeSequence", "(0010,0050)", "X", "", "X"),
    ("OtherPatientIDs", "(0010,1000)", "X", "", "X"),
    ("OtherPatientNames", "(0010,1001)", "X", "", "X"),
    ("OtherPatientIDsSequence", "(0010,1002)", "X", "", "X"),
    ("PatientBirthName", "(0010,1005)", "X", "", "X"),
    ("PatientAge", "(0010,1010)", "X", "", "X"),
    ("PatientSize", "(0010,1020)", "X", "", "X"),
    ("PatientWeight", "(0010,1030)", "X", "", "X"),
    ("PatientAddress", "(0010,1040)", "X", "", "X"),
    ("PatientMotherBirthName", "(0010,1060)", "X", "", "X"),
    ("MilitaryRank", "(0010,1080)", "X", "", "X"),
    ("MedicalRecordLocator", "(0010,1090)", "X", "", "X"),
    ("CountryOfResidence", "(0010,2150)", "X", "", "X"),
    ("RegionOfResidence", "(0010,2152)", "X", "", "X"),
    ("PatientTelephoneNumbers", "(0010,2154)", "X", "", "X"),
    ("EthnicGroup", "(0010,2160)", "X", "", "X"),
    ("Occupation", "(0010,2180)", "X", "", "X"),
    ("AdditionalPatientHistory", "(0010,21B0)", "X", "C Clean Desc.", "CC"),
    ("ResponsiblePerson", "(0010,2297)", "X", "", "X"),
    ("ResponsibleOrganization", "(0010,2299)", "X", "", "X"),
    ("PatientComments", "(0010,4000)", "X", "C Clean Desc.", "CC"),
    ("DeviceSerialNumber", "(0018,1000)", "X/Z/D", "", "X"),
    ("ProtocolName", "(0018,1030)", "X/D", "C Clean Desc.", "CC"),
    ("StudyInstanceUID", "(0020,000D)", "U", "", "U"),
    ("SeriesInstanceUID", "(0020,000E)", "U", "", "U"),
    ("StudyID", "(0020,0010)", "Z", "", "Z"),
    ("FrameOfReferenceUID", "(0020,0052)", "U", "", "U"),
    ("SynchronizationFrameOfReferenceUID", "(0020,0200)", "U", "", "U"),
    ("ImageComments", "(0020,4000)", "X", "C Clean Desc.", "CC"),
    ("ConcatenationUID", "(0020,9161)", "U", "", "U"),
    ("DimensionOrganizationUID", "(0020,9164)", "U", "", "U"),
    ("RequestedProcedureDescription", "(0032,1060)", "X/Z", "C Clean Desc.", "CC"),
    ("CurrentPatientLocation", "(0038,0300)", "X", "", "X"),
    ("ScheduledProcedureStepID", "(0040,0009)", "X", "", "X"),
    ("PerformedProcedureStepID", "(0040,0253)", "X", "", "X"),
    ("PerformedProcedureStepDescription", "(0040,0254)", "X", "C Clean Desc.", "CC"),
    ("RequestAttributesSequence", "(0040,0275)", "X", "", "X"),
    ("RequestedProcedureID", "(0040,1001)", "X", "", "X"),
    ("UID", "(0040,A124)", "U", "", "U"),
    ("TrackingUID", "(0062,0021)", "U", "", "U"),
    ("ContentDescription", "(0070,0081)", "X", "C Clean Desc.", "CC"),
    ("ContentCreatorName", "(0070,0084)", "Z", "", "Z"),
    ("StorageMediaFileSetUID", "(0088,0140)", "U", "", "U"),
    ("StructureSetLabel", "(3006,0002)", "D", "C Clean Desc.", "CC"),
    ("StructureSetName", "(3006,0004)", "X", "C Clean Desc.", "CC"),
    ("StructureSetDescription", "(3006,0006)", "X", "C Clean Desc.", "CC"),
    ("ReferencedFrameOfReferenceUID", "(3006,0024)", "U", "", "U"),
    ("ROIName", "(3006,0026)", "X", "C Clean Desc.", "CC"),
    ("ROIDescription", "(3006,0028)", "X", "C Clean Desc.", "CC"),
    ("RelatedFrameOfReferenceUID", "(3006,00C2)", "U", "", "U"),
    ("RTPlanLabel", "(300A,0002)", "D", "C Clean Desc.", "CC"),
    ("RTPlanName", "(300A,0003)", "X", "C Clean Desc.", "CC"),
    ("RTPlanDescription", "(300A,0004)", "X", "C Clean Desc.", "CC"),
]


def _value(keyword: str) -> object:
    """An identifying value of the attribute's VR."""
    vr = dd.dictionary_VR(Tag(keyword))
    if vr == "SQ":
        item = Dataset()
        item.CodeMeaning = f"plan of {NAME}"
        return Sequence([item])
    return {
        "PN": NAME, "DA": "20240315", "DT": "20240315101500.000000", "TM": "101500", "UI": generate_uid(),
        "AS": "067Y", "DS": "71.5", "CS": "WHITE", "IS": "12", "SH": "Lung WAINWRIGHT",
    }.get(vr, f"Lung of WAINWRIGHT {PID} ACC-31337")  # fmt: skip


def _base() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.AccessionNumber, ds.Modality = NAME, PID, "ACC-31337", "CT"
    return ds


def test_the_table_covers_every_attribute_the_module_names() -> None:
    keywords = {row[0] for row in TABLE}
    assert keywords >= REMOVE | EMPTY
    assert CLEAN - keywords == {"ContentLabel"}  # Content Label is not in Table E.1-1: cleaned, not required
    for keyword, tag, *_ in TABLE:
        assert str(Tag(keyword)).replace(" ", "") == tag.replace(" ", ""), keyword  # the row names the right tag


@pytest.mark.parametrize(("keyword", "tag", "basic", "option", "ours"), TABLE, ids=[r[0] for r in TABLE])
def test_row(keyword: str, tag: str, basic: str, option: str, ours: str) -> None:
    ds = _base()
    value = ds[keyword].value if keyword in ("PatientName", "PatientID") else _value(keyword)
    setattr(ds, keyword, value)
    deid = Deidentifier(SECRET)
    out = deid.deidentify(ds)
    # the action taken is one the table allows for this row
    allowed = set(basic.split("/")) | ({"C"} if option else set())
    assert {"CD": "C", "CT": "C", "CC": "C", "P": "Z"}.get(ours, ours) in allowed | ({"X"} if "X" in basic else set())
    if ours == "X":
        assert keyword not in out
    elif ours == "Z":
        assert keyword in out and out[keyword].value in ("", None)
    elif ours == "P":
        assert str(out[keyword].value) == deid.pseudonym(PID) and PID not in str(out[keyword].value)
    elif ours == "U":
        new = str(out[keyword].value)
        assert new == deid.new_uid(str(value)) and new.startswith("2.25.") and len(new) <= 64
    elif ours == "CD":
        text = str(out[keyword].value)
        assert text[:8] != str(value)[:8] and text[8:] == str(value)[8:]  # date part moved, time part kept
        assert int(str(value)[:8]) - int(text[:8]) > 0
    elif ours == "CT":
        assert out[keyword].value == value
    elif ours == "CC":
        text = str(out[keyword].value).upper()
        assert "WAINWRIGHT" not in text and PID not in text and "ACC-31337" not in text and "LUNG" in text
    else:
        raise AssertionError(f"unknown action {ours}")


def test_private_attributes_and_remaining_person_names_are_removed() -> None:
    ds = _base()
    ds.add_new(0x00111001, "LO", f"vendor note {PID}")
    ds.add_new(0x00111000, "LO", "ACME private creator")
    ds.ReviewerName = NAME  # a PN the lists do not name: removed as a remaining person name
    out = Deidentifier(SECRET).deidentify(ds)
    assert not any(e.tag.is_private for e in out) and "ReviewerName" not in out

"""De-identification, attribute by attribute against the actions implemented from PS3.15 Table E.1-1."""

from __future__ import annotations

import copy
import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from core.dicom.deid import CLEAN, EMPTY, REMOVE, DeidentificationError, Deidentifier

SECRET = b"test-secret-0123456789abcdef"
PID, NAME = "PID-77321", "SMITHERSON^JOHANNA^Q"


def identifiable(study: str, series: str, frame: str, *, number: int = 1) -> Dataset:
    """A CT data set with every attribute the profile acts on set to an identifying value."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.PatientName, ds.PatientID, ds.IssuerOfPatientID = NAME, PID, "ST-MARY-HOSP"
    ds.PatientBirthDate, ds.PatientSex, ds.PatientAge, ds.PatientWeight = "19560704", "F", "067Y", "71.5"
    ds.PatientAddress, ds.OtherPatientIDs, ds.EthnicGroup = "12 Elm Street", "OLD-991", "X"
    ds.PatientComments = f"Patient {NAME} ({PID}) prefers mornings"
    ds.AccessionNumber, ds.StudyID = "ACC-55512", "S-9912"
    ds.StudyDate, ds.SeriesDate, ds.AcquisitionDate, ds.ContentDate = "20240315", "20240315", "20240316", "20240316"
    ds.StudyTime, ds.AcquisitionDateTime = "093000", "20240316101500.000000"
    ds.InstitutionName, ds.InstitutionAddress, ds.StationName = "St Mary Hospital", "1 Hospital Road", "CT-ROOM-2"
    ds.InstitutionalDepartmentName, ds.DeviceSerialNumber = "Radiology West", "SN-4432"
    ds.ReferringPhysicianName, ds.PerformingPhysicianName, ds.OperatorsName = "DOC^REFER", "DOC^PERFORM", "TECH^OPS"
    ds.PhysiciansOfRecord, ds.NameOfPhysiciansReadingStudy = "DOC^RECORD", "DOC^READ"
    ds.StudyDescription = f"CT THORAX for SMITHERSON {PID} at St Mary Hospital"
    ds.SeriesDescription, ds.ProtocolName = "Thorax 1.0 SMITHERSON", "Lung protocol"
    ds.ImageComments = f"acc ACC-55512 {NAME}"
    ds.Modality, ds.InstanceNumber, ds.BurnedInAnnotation = "CT", number, "NO"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CTImageStorage, generate_uid()
    ds.ReferencedImageSequence = Sequence([ref])
    ds.RequestAttributesSequence = Sequence([Dataset()])
    ds.RequestAttributesSequence[0].RequestedProcedureID = "RP-1"
    ds.add_new(0x00091001, "LO", "private vendor note about SMITHERSON")
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = np.arange(16, dtype=np.int16).tobytes()
    return ds


@pytest.fixture
def pair() -> tuple[Dataset, Dataset]:
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    return identifiable(study, series, frame, number=1), identifiable(study, series, frame, number=2)


def test_removed_attributes(pair: tuple[Dataset, Dataset]) -> None:
    src = pair[0]
    out = Deidentifier(SECRET).deidentify(src)
    present_before = [kw for kw in REMOVE if kw in src]
    assert len(present_before) >= 15  # the fixture exercises most of the table
    for keyword in present_before:
        assert keyword not in out, keyword
    assert not any(elem.tag.is_private for elem in out)
    # no person name is left except the pseudonym and emptied (Z) ones
    assert not [e for e in out.iterall() if e.VR == "PN" and e.keyword != "PatientName" and e.value]


def test_emptied_attributes_and_pseudonyms(pair: tuple[Dataset, Dataset]) -> None:
    deid = Deidentifier(SECRET)
    out = deid.deidentify(pair[0])
    for keyword in EMPTY & set(pair[0].dir()):
        assert keyword in out and out[keyword].value in ("", None), keyword
    assert str(out.PatientName) == str(out.PatientID) == deid.pseudonym(PID)
    assert PID not in str(out.PatientID) and deid.pseudonym(PID) != deid.pseudonym("OTHER")


def test_uids_remapped_consistently(pair: tuple[Dataset, Dataset]) -> None:
    deid = Deidentifier(SECRET)
    a, b = (deid.deidentify(ds) for ds in pair)
    src = pair[0]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "SOPInstanceUID"):
        assert a[keyword].value != src[keyword].value and a[keyword].value.startswith("2.25."), keyword
        assert len(a[keyword].value) <= 64
    assert (a.StudyInstanceUID, a.SeriesInstanceUID, a.FrameOfReferenceUID) == (
        b.StudyInstanceUID, b.SeriesInstanceUID, b.FrameOfReferenceUID)  # fmt: skip
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    ref_in, ref_out = src.ReferencedImageSequence[0], a.ReferencedImageSequence[0]
    assert ref_out.ReferencedSOPInstanceUID == deid.new_uid(ref_in.ReferencedSOPInstanceUID)
    assert ref_out.ReferencedSOPClassUID == CTImageStorage and a.SOPClassUID == CTImageStorage  # classes kept
    assert Deidentifier(b"another-secret-xxxxxxxx").deidentify(src).StudyInstanceUID != a.StudyInstanceUID


def test_dates_shifted_by_the_same_days_times_kept(pair: tuple[Dataset, Dataset]) -> None:
    deid = Deidentifier(SECRET)
    out = deid.deidentify(pair[0])
    days = deid.shift_days(PID)
    assert 30 <= days <= 3650
    import datetime as dt

    def back(value: str) -> str:
        return (dt.date(int(value[:4]), int(value[4:6]), int(value[6:8])) - dt.timedelta(days=days)).strftime("%Y%m%d")

    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        assert out[keyword].value == back(pair[0][keyword].value), keyword
    assert out.AcquisitionDateTime == back("20240316") + "101500.000000"
    assert out.StudyTime == "093000"
    assert out.PatientBirthDate == ""  # Z in the basic profile
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_descriptors_cleaned(pair: tuple[Dataset, Dataset]) -> None:
    out = Deidentifier(SECRET).deidentify(pair[0])
    for keyword in CLEAN & set(pair[0].dir()):
        text = str(out[keyword].value).upper()
        for ident in ("SMITHERSON", "JOHANNA", PID, "ACC-55512", "ST MARY HOSPITAL"):
            assert ident not in text, (keyword, text)
    assert out.StudyDescription.startswith("CT THORAX for")
    assert out.ProtocolName == "Lung protocol"


def test_method_recorded(pair: tuple[Dataset, Dataset]) -> None:
    out = Deidentifier(SECRET).deidentify(pair[0])
    assert out.PatientIdentityRemoved == "YES"
    assert "PS3.15 Annex E Basic Appl. Level Confidentiality Profile" in out.DeidentificationMethod
    assert all(len(v) <= 64 for v in out.DeidentificationMethod)
    codes = {(c.CodingSchemeDesignator, c.CodeValue) for c in out.DeidentificationMethodCodeSequence}
    assert codes == {("DCM", "113100"), ("DCM", "113107"), ("DCM", "113105")}


def test_pixels_and_source_untouched_and_file_valid(pair: tuple[Dataset, Dataset]) -> None:
    src = pair[0]
    before = copy.deepcopy(src)
    out = Deidentifier(SECRET).deidentify(src)
    assert src == before  # the input is not modified
    assert out.PixelData == src.PixelData
    buf = io.BytesIO()
    out.save_as(buf, enforce_file_format=True)
    again = pydicom.dcmread(io.BytesIO(buf.getvalue()))
    assert again.PatientIdentityRemoved == "YES" and NAME.split("^")[0] not in buf.getvalue().decode("latin-1")
    assert PID.encode() not in buf.getvalue()


def test_burned_in_annotation_is_refused(pair: tuple[Dataset, Dataset]) -> None:
    pair[0].BurnedInAnnotation = "YES"
    with pytest.raises(DeidentificationError, match="burned-in annotation"):
        Deidentifier(SECRET).deidentify(pair[0])

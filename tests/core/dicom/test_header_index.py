"""The fast index reader (core.dicom.header_index) gives exactly what pydicom gives, or hands over to pydicom."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from core.demo import generate_demo_study
from core.dicom.header_index import read_index
from core.dicom.importer import DamagedFileError, ParsedInstance, parse_instance


def fields(parsed: ParsedInstance) -> dict[str, object]:
    out = dataclasses.asdict(parsed)
    del out["source"], out["data"]
    return out


def part10(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True)
    return buffer.getvalue()


def ct(**attributes: object) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "PAT-IDX-1", "INDEX^TEST", "CT"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20260102", "101112.5", "ACC42"
    ds.SeriesNumber, ds.InstanceNumber, ds.StudyDescription = 3, 17, "Thorax"
    ds.PatientSex, ds.PatientBirthDate, ds.SeriesDescription = "F", "19500101", "CT 1 mm"
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = b"\x00" * 8
    for keyword, value in attributes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def assert_same_as_pydicom(data: bytes, *, fast: bool) -> None:
    """header_only parsing (fast path when `fast`) equals the full pydicom parse, field by field."""
    assert (read_index(data) is not None) is fast
    assert fields(parse_instance("x.dcm", data, header_only=True)) == fields(parse_instance("x.dcm", data))


def test_every_object_of_a_demo_study(tmp_path: Path) -> None:
    generate_demo_study(tmp_path / "demo", seed=3, shape=(96, 96, 12), spacing_mm=(4.0, 4.0, 5.0))
    files = sorted((tmp_path / "demo").rglob("*.dcm"))
    modalities = set()
    for path in files:
        data = path.read_bytes()
        modalities.add(str(pydicom.dcmread(path, stop_before_pixels=True).Modality))
        if read_index(data) is not None:
            assert_same_as_pydicom(data, fast=True)
        else:
            assert_same_as_pydicom(data, fast=False)
    assert {"CT", "RTSTRUCT"} <= modalities
    assert sum(read_index(p.read_bytes()) is not None for p in files) >= len(files) - 3  # the images go fast


@pytest.mark.parametrize(
    ("charset", "name"),
    [(None, "PLAIN^ASCII"), ("ISO_IR 100", "Müller^Jürgen"), ("ISO_IR 192", "Ünal^Çağrı^李"), ("ISO_IR 6", "A^B")],
)
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_character_sets_and_syntaxes_on_the_fast_path(charset: str | None, name: str, syntax: str) -> None:
    ds = ct(PatientName=name, StudyDescription=f"Étude {name}" if charset else "Study", SpecificCharacterSet=charset)
    data = part10(ds, syntax)
    assert_same_as_pydicom(data, fast=True)
    assert parse_instance("x.dcm", data, header_only=True).patient_name == name


def test_defined_length_sequences_and_missing_optional_attributes_stay_fast() -> None:
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = CTImageStorage, generate_uid()
    ds = ct(ReferencedImageSequence=Sequence([item]), AccessionNumber=None, SeriesDescription=None, InstanceNumber=None)
    data = part10(ds)
    assert_same_as_pydicom(data, fast=True)
    parsed = parse_instance("x.dcm", data, header_only=True)
    assert (parsed.accession, parsed.instance_number, parsed.series_number) == ("", None, 3)


@pytest.mark.parametrize(
    "attributes",
    [
        {"SpecificCharacterSet": ["", "ISO 2022 IR 87"], "PatientName": "YAMADA^TARO"},  # code extensions
        {"SpecificCharacterSet": "ISO_IR 144", "PatientName": "Иванов^Иван"},  # Cyrillic: not a fast charset
        {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "Yamada^Tarou=山田^太郎"},  # name component groups
        {"StudyDescription": ["A", "B"]},  # several values
        {"AccessionNumber": " ACC"},  # leading blank
    ],
)
def test_anything_unusual_goes_to_pydicom_with_the_same_result(attributes: dict[str, object]) -> None:
    assert_same_as_pydicom(part10(ct(**attributes)), fast=False)


def test_undefined_length_sequence_goes_to_pydicom() -> None:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "CT", "DCM", "CT"
    ds = ct(ProcedureCodeSequence=Sequence([item]))
    ds["ProcedureCodeSequence"].is_undefined_length = True
    assert_same_as_pydicom(part10(ds), fast=False)


def test_a_missing_required_attribute_is_refused_on_both_paths() -> None:
    data = part10(ct(PatientID=None))
    assert read_index(data) is not None
    for header_only in (True, False):
        with pytest.raises(DamagedFileError, match="PatientID"):
            parse_instance("x.dcm", data, header_only=header_only)


def test_cut_off_headers_go_to_pydicom() -> None:
    data = part10(ct())
    cut = data[: data.index(b"INDEX^TEST") + 3]
    assert read_index(cut) is None
    with pytest.raises(DamagedFileError):
        parse_instance("x.dcm", cut)

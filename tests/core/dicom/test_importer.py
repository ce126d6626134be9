"""Importing DICOM into the encrypted store: good files, junk, damaged files, duplicates, zip archives."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from core.dicom.importer import import_paths
from core.errors import PermissionDeniedError
from core.security.roles import Permission, Role
from core.security.session import Access, User
from core.store.blobs import stored_bytes
from core.store.store import Store

RADIOLOGIST = Access(User(2, "rad1", Role.RADIOLOGIST), Permission.IMPORT_STUDIES)


def ct_bytes(
    *,
    patient_id: str = "PAT-IMPORT-01",
    study: str,
    series: str,
    sop: str | None = None,
    number: int = 1,
    value: int = 0,
    size: int = 16,
) -> bytes:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop or generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName, ds.Modality = patient_id, "IMPORTTEST^ROSALIND", "CT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, number
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = np.full((size, size), value, dtype=np.int16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture
def store(passphrase_store: Store) -> Store:
    return passphrase_store


def write_series(folder: Path, n: int, **kw: str) -> tuple[str, str]:
    study, series = kw.get("study", generate_uid()), kw.get("series", generate_uid())
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"IM{i:04d}.dcm").write_bytes(ct_bytes(study=study, series=series, number=i + 1, value=i))
    return study, series


def count(store: Store, table: str) -> int:
    return int(store.query(f"SELECT count(*) FROM {table}")[0][0])


def test_import_stores_received_bytes(store: Store, tmp_path: Path) -> None:
    study, _ = write_series(tmp_path / "in", 5)
    report = import_paths(store, RADIOLOGIST, [tmp_path / "in"])
    assert (report.stored, report.already_present, report.ok) == (5, 0, True)
    assert report.studies == [study]
    stored = {
        row[0]: stored_bytes(store.conn, row[1], row[2])
        for row in store.query(
            "SELECT i.sha256, i.blob, d.data FROM instances i LEFT JOIN instance_data d ON d.instance_fk = i.id"
        )
    }
    on_disk = {hashlib.sha256(p.read_bytes()).hexdigest(): p.read_bytes() for p in (tmp_path / "in").iterdir()}
    assert stored == on_disk
    assert store.query("SELECT status FROM studies")[0][0] == "complete"
    audit = store.query("SELECT actor, action, objects FROM audit WHERE action = 'dicom.import'")
    assert audit and audit[0][0] == "rad1" and study in audit[0][2]


def test_reimport_adds_nothing(store: Store, tmp_path: Path) -> None:
    write_series(tmp_path / "in", 4)
    import_paths(store, RADIOLOGIST, [tmp_path / "in"])
    again = import_paths(store, RADIOLOGIST, [tmp_path / "in"])
    assert (again.stored, again.already_present) == (0, 4)
    assert count(store, "instances") == 4
    assert len(list(store.paths.instances.glob("*/*"))) == 4  # one encrypted file each, none written twice


def test_junk_and_damaged_files_are_reported_and_not_stored(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    study, series = write_series(folder, 3)
    (folder / "README.txt").write_text("not dicom")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(500))
    good = ct_bytes(study=study, series=series, number=9)
    (folder / "truncated.dcm").write_bytes(good[: len(good) - 200])
    (folder / "nometa.dcm").write_bytes(good[132:])
    no_pid = pydicom.dcmread(io.BytesIO(ct_bytes(study=study, series=series)))
    del no_pid.PatientID
    no_pid.save_as(folder / "nopid.dcm")
    report = import_paths(store, RADIOLOGIST, [folder])
    assert report.stored == 3
    assert report.skipped_non_dicom == 2
    damaged = {Path(name).name: why for name, why in report.damaged}
    assert set(damaged) == {"truncated.dcm", "nometa.dcm", "nopid.dcm"}
    assert "truncated" in damaged["truncated.dcm"] or "parsed" in damaged["truncated.dcm"]
    assert "meta header" in damaged["nometa.dcm"]
    assert "PatientID" in damaged["nopid.dcm"]
    assert not report.ok
    assert count(store, "instances") == 3


def test_same_uid_different_content_is_a_conflict_and_keeps_the_first(store: Store, tmp_path: Path) -> None:
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ct_bytes(study=study, series=series, sop=sop, value=1)
    (tmp_path / "a" / "x.dcm").write_bytes(first)
    (tmp_path / "b" / "x.dcm").write_bytes(ct_bytes(study=study, series=series, sop=sop, value=2))
    import_paths(store, RADIOLOGIST, [tmp_path / "a"])
    report = import_paths(store, RADIOLOGIST, [tmp_path / "b"])
    assert report.stored == 0 and len(report.conflicts) == 1 and sop in report.conflicts[0]
    (blob,) = store.query("SELECT blob FROM instances")[0]
    assert store.blobs.read(str(blob)) == first


def test_zip_archive(store: Store, tmp_path: Path) -> None:
    write_series(tmp_path / "in", 3)
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted((tmp_path / "in").iterdir()):
            zf.write(p, f"DICOM/{p.name}")
        zf.writestr("notes.txt", "hello")
    report = import_paths(store, RADIOLOGIST, [archive])
    assert (report.stored, report.skipped_non_dicom) == (3, 1)


def test_import_needs_the_import_permission(store: Store, tmp_path: Path) -> None:
    write_series(tmp_path / "in", 1)
    physicist = Access(User(3, "phys1", Role.PHYSICIST), Permission.READ_PATIENT_DATA)
    with pytest.raises(PermissionDeniedError):
        import_paths(store, physicist, [tmp_path / "in"])
    assert count(store, "instances") == 0


def test_missing_path_is_a_clear_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        import_paths(store, RADIOLOGIST, [tmp_path / "absent"])


def with_transfer_syntax(data: bytes, tsuid: str) -> bytes:
    """The same data set bytes under a file meta header that names another transfer syntax."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import _read_file_meta_info
    from pydicom.filewriter import write_file_meta_info

    fp = io.BytesIO(data[132:])
    meta = _read_file_meta_info(fp)
    meta.TransferSyntaxUID = tsuid
    out = DicomBytesIO()
    write_file_meta_info(out, meta, enforce_standard=True)
    return data[:132] + out.getvalue() + data[132 + fp.tell() :]


@pytest.mark.parametrize(
    ("tsuid", "message"),
    [
        ("1.2.3.4.5.6", "unsupported transfer syntax 1.2.3.4.5.6"),
        ("1.2.840.10008.1.2", "says 1.2.840.10008.1.2 (Implicit VR Little Endian) but the data set is encoded"),
        ("1.2.840.10008.1.2.4.90", "(compressed) but the pixel data is not encapsulated"),
        ("1.2.840.10008.1.2.1.99", "cannot be parsed with its transfer syntax 1.2.840.10008.1.2.1.99 (Deflated"),
    ],
)
def test_wrong_or_unsupported_transfer_syntax_is_refused_and_loses_nothing(
    store: Store, tmp_path: Path, tsuid: str, message: str
) -> None:
    folder = tmp_path / "in"
    study, series = write_series(folder, 3)
    bad = with_transfer_syntax(ct_bytes(study=study, series=series, number=7), tsuid)
    (folder / "bad.dcm").write_bytes(bad)
    report = import_paths(store, RADIOLOGIST, [folder])
    assert report.stored == 3 and count(store, "instances") == 3  # the rest of the import is kept
    assert [Path(n).name for n, _ in report.damaged] == ["bad.dcm"] and not report.ok
    assert message in report.damaged[0][1]
    assert (folder / "bad.dcm").read_bytes() == bad  # the source file is untouched
    again = import_paths(store, RADIOLOGIST, [folder])  # nothing half-stored: a re-run adds nothing, refuses again
    assert again.stored == 0 and again.already_present == 3 and len(again.damaged) == 1

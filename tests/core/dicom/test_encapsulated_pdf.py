"""Encapsulated PDF Storage writer: write, save, read back the exact bytes, and dciodvfy finds nothing to report."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import EncapsulatedPDFStorage
from reportlab.pdfgen.canvas import Canvas

from core.dicom.writers.encapsulated_pdf import EncapsulatedPdfOptions, read_encapsulated_pdf, write_encapsulated_pdf


def study() -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "TEST^PDF", "P-1", "19500101", "F"
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = "1.2.826.0.1.3680043.8.498.1", "20240101", "120000"
    ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "A1", "", "1"
    return ds


def make_pdf(path: Path, text: str) -> bytes:
    canvas = Canvas(str(path))
    canvas.drawString(100, 750, text)
    canvas.save()
    return path.read_bytes()


@pytest.mark.parametrize("pad", ["", "x"])
def test_write_then_read_gives_the_exact_pdf(tmp_path: Path, pad: str) -> None:
    pdf = make_pdf(tmp_path / "in.pdf", "RadPlan test" + pad)
    options = EncapsulatedPdfOptions(title="Plan 1", date="20240102", time="101500", sop_instance_uid="1.2.3.4")
    ds = write_encapsulated_pdf(pdf, study(), options)
    path = tmp_path / "doc.dcm"
    ds.save_as(path, enforce_file_format=True)
    back = pydicom.dcmread(path)
    assert back.SOPClassUID == EncapsulatedPDFStorage and back.Modality == "DOC"
    assert (back.PatientID, back.StudyInstanceUID, back.SOPInstanceUID) == (
        "P-1",
        "1.2.826.0.1.3680043.8.498.1",
        "1.2.3.4",
    )
    assert back.MIMETypeOfEncapsulatedDocument == "application/pdf" and back.DocumentTitle == "Plan 1"
    assert len(back.EncapsulatedDocument) % 2 == 0
    assert read_encapsulated_pdf(back) == pdf


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools' dciodvfy is not installed")
def test_dciodvfy_reports_no_errors_or_warnings(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "in.pdf", "RadPlan dciodvfy")
    ds = write_encapsulated_pdf(pdf, study(), EncapsulatedPdfOptions(title="Plan", date="20240102", time="101500"))
    ds.save_as(tmp_path / "doc.dcm", enforce_file_format=True)
    out = subprocess.run(["dciodvfy", str(tmp_path / "doc.dcm")], capture_output=True, text=True, check=False)
    report = out.stdout + out.stderr
    assert "EncapsulatedPDF" in report
    assert "Error" not in report and "Warning" not in report, report


def test_bad_input_is_refused(tmp_path: Path) -> None:
    options = EncapsulatedPdfOptions(title="Plan", date="20240102", time="101500")
    with pytest.raises(ValueError, match="not a PDF"):
        write_encapsulated_pdf(b"hello", study(), options)
    with pytest.raises(ValueError, match="Patient ID and Study Instance UID"):
        write_encapsulated_pdf(make_pdf(tmp_path / "a.pdf", "x"), pydicom.Dataset(), options)
    with pytest.raises(ValueError, match="not an Encapsulated PDF"):
        read_encapsulated_pdf(study())

"""RT Structure Set and RT Dose writers: write, read back with pydicom, compare with what went in."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from pydicom.uid import CTImageStorage, generate_uid
from skimage.draw import polygon

from core.demo import DemoManifest, generate_demo_study
from core.dicom.writers.rtdose import DoseGrid, RtDoseOptions, read_rtdose, write_rtdose
from core.dicom.writers.rtstruct import (
    ImageSeriesReference,
    RoiSpec,
    StructureSetOptions,
    rtstruct_to_masks,
    write_rtstruct,
)

SMALL = {"shape": (96, 96, 24), "spacing_mm": (4.0, 4.0, 10.0)}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoManifest]:
    out = tmp_path_factory.mktemp("writers") / "study"
    return out, generate_demo_study(out, seed=11, **SMALL)


def ct_headers(rows: int = 40, cols: int = 50, slices: int = 6, spacing: tuple[float, float, float] = (1.5, 2.0, 1.25)):
    """Minimal CT headers (x spacing, y spacing, z spacing in mm), returned in a shuffled order."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    headers = []
    for k in range(slices):
        ds = pydicom.Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "TEST^WRITER", "W-1", "19600101", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = (
            "20240101", "120000", "1", "", ""
        )  # fmt: skip
        ds.Rows, ds.Columns = rows, cols
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-30.0, -40.0, -7.625 + k * spacing[2]]  # 3-decimal positions
        headers.append(ds)
    rng = np.random.default_rng(0)
    return [headers[i] for i in rng.permutation(slices)]


def rasterise(ds: pydicom.Dataset, reference: ImageSeriesReference, roi_name: str) -> np.ndarray:
    """Independent reader: even-odd fill of each contour with skimage.draw.polygon on its slice."""
    number = next(r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == roi_name)
    roi = next(r for r in ds.ROIContourSequence if r.ReferencedROINumber == number)
    z = [s.position_mm[2] for s in reference.slices]
    origin_x, origin_y = reference.slices[0].position_mm[:2]
    dy, dx = reference.pixel_spacing_mm
    mask = np.zeros(reference.shape, dtype=bool)
    for contour in roi.ContourSequence:
        assert contour.ContourGeometricType == "CLOSED_PLANAR"
        pts = np.array(contour.ContourData, dtype=float).reshape(-1, 3)
        assert len(pts) == contour.NumberOfContourPoints
        assert np.ptp(pts[:, 2]) == 0.0  # planar, on one slice
        k = z.index(pts[0, 2])
        rr, cc = polygon((pts[:, 1] - origin_y) / dy, (pts[:, 0] - origin_x) / dx, shape=mask.shape[1:])
        mask[k, rr, cc] ^= True
    return mask


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_reference_sorts_slices_and_keeps_identity() -> None:
    headers = ct_headers()
    ref = ImageSeriesReference.from_datasets(headers)
    z = [s.position_mm[2] for s in ref.slices]
    assert z == sorted(z) and len(z) == 6
    assert ref.shape == (6, 40, 50) and ref.pixel_spacing_mm == (2.0, 1.5)
    assert ref.patient_study.PatientID == "W-1"
    bad = ct_headers()
    bad[0].SeriesInstanceUID = generate_uid()
    with pytest.raises(ValueError, match="more than one series"):
        ImageSeriesReference.from_datasets(bad)


def test_rtstruct_holes_and_islands_roundtrip_exactly(tmp_path: Path) -> None:
    ref = ImageSeriesReference.from_datasets(ct_headers())
    k, r, c = np.ogrid[:6, :40, :50]
    ring = ((r - 20) ** 2 + (c - 20) ** 2 <= 14**2) & ((r - 20) ** 2 + (c - 20) ** 2 > 6**2) & (k >= 1) & (k <= 4)
    island = (np.abs(r - 20) <= 3) & (np.abs(c - 44) <= 2) & (k == 2)
    mask = ring | island
    ds = write_rtstruct(
        {"Ring": RoiSpec(mask, interpreted_type="ORGAN", color=(1, 2, 3)), "Empty": np.zeros(ref.shape, np.uint8)},
        ref,
        StructureSetOptions(date="20240101", time="120000", label="T", sop_instance_uid=generate_uid()),
    )
    ds.save_as(tmp_path / "rs.dcm", enforce_file_format=True)
    back = pydicom.dcmread(tmp_path / "rs.dcm")
    assert back.SOPClassUID == pydicom.uid.RTStructureSetStorage and back.Modality == "RTSTRUCT"
    np.testing.assert_array_equal(rasterise(back, ref, "Ring"), mask)
    np.testing.assert_array_equal(rtstruct_to_masks(back, ref)["Ring"], mask)
    ring_roi = back.ROIContourSequence[0]
    assert list(ring_roi.ROIDisplayColor) == [1, 2, 3]
    assert len(ring_roi.ContourSequence) == 4 * 2 + 1  # outer + hole on 4 slices, the island once
    assert "ContourSequence" not in back.ROIContourSequence[1] or len(back.ROIContourSequence[1].ContourSequence) == 0
    assert [o.RTROIInterpretedType for o in back.RTROIObservationsSequence] == ["ORGAN", "ORGAN"]


def test_rtstruct_rejects_bad_input() -> None:
    ref = ImageSeriesReference.from_datasets(ct_headers())
    options = StructureSetOptions(date="20240101", time="120000")
    with pytest.raises(ValueError, match="shape"):
        write_rtstruct({"X": np.zeros((6, 40, 49), bool)}, ref, options)
    with pytest.raises(ValueError, match="Interpreted Type"):
        write_rtstruct({"X": RoiSpec(np.zeros(ref.shape, bool), interpreted_type="TUMOUR")}, ref, options)


def test_demo_rtstruct_reproduces_truth_masks(study: tuple[Path, DemoManifest]) -> None:
    out, manifest = study
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((out / "ct").glob("*.dcm"))]
    ref = ImageSeriesReference.from_datasets(headers)
    ds = pydicom.dcmread(out / "rtstruct.dcm")
    assert ds.SOPInstanceUID == manifest.rtstruct_sop_instance_uid
    names = {r.ROIName for r in ds.StructureSetROISequence}
    assert names == {"Body", "Lung_L", "Lung_R", "Heart", "SpinalCord", "Esophagus", "GTV"}
    types = {
        r.ROIName: o.RTROIInterpretedType
        for r in ds.StructureSetROISequence
        for o in ds.RTROIObservationsSequence
        if o.ReferencedROINumber == r.ROINumber
    }
    assert types["Body"] == "EXTERNAL" and types["GTV"] == "GTV" and types["Heart"] == "ORGAN"
    for key, roi in manifest.roi_names.items():
        expected = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "truth" / f"{key}.nii.gz"))).astype(bool)
        score = dice(rasterise(ds, ref, roi), expected)
        assert score >= (0.95 if key in ("body", "lung_left", "lung_right", "heart") else 0.8), (roi, score)


def test_demo_rtstruct_references_existing_ct_images(study: tuple[Path, DemoManifest]) -> None:
    out, manifest = study
    ct = {d.SOPInstanceUID: d for d in (pydicom.dcmread(p, stop_before_pixels=True) for p in (out / "ct").glob("*"))}
    ds = pydicom.dcmread(out / "rtstruct.dcm")
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == manifest.frame_of_reference_uid
    study_ref = frame.RTReferencedStudySequence[0]
    assert study_ref.ReferencedSOPInstanceUID == manifest.study_instance_uid
    series = study_ref.RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == manifest.ct_series_instance_uid
    assert {i.ReferencedSOPInstanceUID for i in series.ContourImageSequence} == set(ct)
    count = 0
    for roi in ds.ROIContourSequence:
        for contour in roi.ContourSequence:
            (image,) = contour.ContourImageSequence
            assert image.ReferencedSOPInstanceUID in ct
            assert image.ReferencedSOPClassUID == CTImageStorage
            assert float(ct[image.ReferencedSOPInstanceUID].ImagePositionPatient[2]) == float(contour.ContourData[2])
            count += 1
    assert count > 50


def analytic_dose(points: np.ndarray, model: dict[str, float], centre: tuple[float, float, float]) -> np.ndarray:
    """The dose formula of the manifest, written out independently of core.demo."""
    r = np.sqrt(((points - np.asarray(centre)) ** 2).sum(axis=-1))
    big_r, w = model["radius_mm"], model["falloff_mm"]
    s = (1.0 + math.exp(-big_r / w)) / (1.0 + np.exp((r - big_r) / w))
    low = model["low_dose_gy"] * np.exp(-(r**2) / (2.0 * model["low_dose_sigma_mm"] ** 2))
    return model["prescription_gy"] * s + low * (1.0 - s)


def test_demo_rtdose_matches_analytic_model(study: tuple[Path, DemoManifest]) -> None:
    out, manifest = study
    ds = pydicom.dcmread(out / "rtdose.dcm")
    assert ds.SOPInstanceUID == manifest.rtdose_sop_instance_uid
    assert (ds.DoseUnits, ds.DoseType, ds.DoseSummationType) == ("GY", "PHYSICAL", "PLAN")
    assert ds.FrameOfReferenceUID == pydicom.dcmread(out / "rtstruct.dcm").FrameOfReferenceUID
    assert ds.BitsAllocated == 32 and ds.PixelRepresentation == 0
    assert ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == manifest.rtplan_sop_instance_uid
    scaling = float(ds.DoseGridScaling)
    dose = ds.pixel_array.astype(np.float64) * scaling  # (frames, rows, cols)
    offsets = np.array([float(v) for v in ds.GridFrameOffsetVector])
    assert offsets[0] == 0.0 and len(offsets) == ds.NumberOfFrames == dose.shape[0]
    x0, y0, z0 = (float(v) for v in ds.ImagePositionPatient)
    dy, dx = (float(v) for v in ds.PixelSpacing)
    assert dx >= manifest.spacing_mm[0] and dy >= manifest.spacing_mm[1]  # coarser than (or as fine as) the CT
    model = {
        k: getattr(manifest.dose_model, k)
        for k in ("radius_mm", "falloff_mm", "prescription_gy", "low_dose_gy", "low_dose_sigma_mm")
    }
    rng = np.random.default_rng(1)
    idx = np.stack([rng.integers(0, n, 200) for n in dose.shape], axis=1)
    points = np.stack([x0 + idx[:, 2] * dx, y0 + idx[:, 1] * dy, z0 + offsets[idx[:, 0]]], axis=1)
    expected = analytic_dose(points, model, manifest.dose_model.centre_mm)
    np.testing.assert_allclose(dose[idx[:, 0], idx[:, 1], idx[:, 2]], expected, rtol=0, atol=scaling / 2 + 1e-9)
    peak = np.unravel_index(np.argmax(dose), dose.shape)
    peak_pt = np.array([x0 + peak[2] * dx, y0 + peak[1] * dy, z0 + offsets[peak[0]]])
    assert np.linalg.norm(peak_pt - manifest.dose_model.centre_mm) <= math.sqrt(dx**2 + dy**2 + offsets[1] ** 2)
    assert dose.max() <= model["prescription_gy"] + scaling
    assert dose.max() == pytest.approx(model["prescription_gy"], rel=0.05)
    assert analytic_dose(np.array([manifest.dose_model.centre_mm]), model, manifest.dose_model.centre_mm)[0] == 60.0


def test_rtdose_roundtrip_and_validation(tmp_path: Path) -> None:
    ref = ImageSeriesReference.from_datasets(ct_headers())
    grid = DoseGrid(shape=(7, 5, 4), spacing_mm=(3.0, 2.5, 4.0), origin_mm=(-20.0, -30.5, -7.5))
    dose = np.random.default_rng(2).uniform(0.0, 72.0, grid.array_shape)
    options = RtDoseOptions(date="20240101", time="120000", referenced_plan_uid=generate_uid())
    write_rtdose(dose, grid, ref, options).save_as(tmp_path / "rd.dcm", enforce_file_format=True)
    back = pydicom.dcmread(tmp_path / "rd.dcm")
    scaling = float(back.DoseGridScaling)
    assert scaling == 1e-7
    np.testing.assert_allclose(back.pixel_array * scaling, dose, rtol=0, atol=scaling / 2 + 1e-12)
    read, read_grid = read_rtdose(back)
    assert read_grid == grid
    np.testing.assert_allclose(read, dose, rtol=0, atol=scaling / 2 + 1e-12)
    assert [float(v) for v in back.GridFrameOffsetVector] == [0.0, 4.0, 8.0, 12.0]
    assert back.FrameOfReferenceUID == ref.frame_of_reference_uid and back.PatientID == "W-1"
    np.testing.assert_allclose(grid.points_mm(np.array([[1, 2, 3]])), [[-11.0, -25.5, -3.5]])
    with pytest.raises(ValueError, match="RT Plan"):
        write_rtdose(dose, grid, ref, RtDoseOptions(date="20240101", time="120000"))
    with pytest.raises(ValueError, match="non-negative"):
        write_rtdose(-dose, grid, ref, options)
    with pytest.raises(ValueError, match="shape"):
        write_rtdose(dose[:-1], grid, ref, options)


def _dciodvfy_errors(path: Path) -> tuple[str, list[str]]:
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False, timeout=120)
    output = run.stdout + run.stderr
    return output, [line for line in output.splitlines() if line.startswith("Error")]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) is not installed")
def test_dciodvfy_accepts_ct_rtstruct_and_rtdose(study: tuple[Path, DemoManifest], tmp_path: Path) -> None:
    out, _ = study
    for name, iod in (("ct/CT_0001.dcm", "CTImage"), ("rtstruct.dcm", "RTStructureSet")):
        output, errors = _dciodvfy_errors(out / name)
        assert errors == [], output
        assert output.splitlines()[0].strip() == iod, output
    output, errors = _dciodvfy_errors(out / "rtdose.dcm")
    assert errors == [], output
    if "Proposal14EncodingRules" in output:
        # dicom3tools 1.00 (Debian 2022) aborts on any 32-bit OW Pixel Data (bitsallocated <= bytesinword*8
        # assertion), before checking the IOD. Check every other attribute on a 16-bit copy of the same file.
        ds = pydicom.dcmread(out / "rtdose.dcm")
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelData = (np.frombuffer(ds.PixelData, "<u4") >> 16).astype("<u2").tobytes()
        ds.save_as(tmp_path / "rtdose16.dcm", enforce_file_format=True)
        output, errors = _dciodvfy_errors(tmp_path / "rtdose16.dcm")
        assert errors == [], output
    assert output.splitlines()[0].strip() == "RTDose", output

"""The synthetic thorax demo study: determinism, CT validity and realism, truth masks, manifest and note."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from scipy import ndimage
from scipy.spatial import cKDTree

from core.demo import DemoManifest, generate_demo_study
from core.demo.note import LOBE_NAMES, draw_note_facts, stage_group, t_category
from core.demo.phantom import STRUCTURES, VolumeGeometry, build_phantom, stream_rng

SMALL = {"shape": (96, 96, 24), "spacing_mm": (4.0, 4.0, 10.0)}
SEED = 7


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoManifest]:
    out = tmp_path_factory.mktemp("demo") / "study"
    return out, generate_demo_study(out, seed=SEED, **SMALL)


@pytest.fixture(scope="module")
def ct(study: tuple[Path, DemoManifest]) -> tuple[list[pydicom.Dataset], np.ndarray]:
    """CT datasets sorted by z and the HU volume [z, y, x] read back from the files."""
    out, _ = study
    datasets = sorted(
        (pydicom.dcmread(p) for p in (out / "ct").glob("*.dcm")), key=lambda d: float(d.ImagePositionPatient[2])
    )
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets])
    return datasets, hu


def truth(out: Path, name: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(out / "truth" / f"{name}.nii.gz"))).astype(bool)


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_manifest_and_bytes(tmp_path: Path, study: tuple[Path, DemoManifest]) -> None:
    first_dir, first = study
    second = generate_demo_study(tmp_path / "again", seed=SEED, **SMALL)
    assert second == first
    assert (tmp_path / "again" / "manifest.json").read_text() == (first_dir / "manifest.json").read_text()
    a, b = all_files(first_dir), all_files(tmp_path / "again")
    assert sorted(a) == sorted(b) == sorted(first.files)
    different = [name for name in a if a[name] != b[name]]
    assert different == []


def test_different_seeds_differ(tmp_path: Path, study: tuple[Path, DemoManifest]) -> None:
    first_dir, first = study
    other = generate_demo_study(tmp_path / "other", seed=SEED + 1, **SMALL)
    assert other.tumour_centre_mm != first.tumour_centre_mm
    assert other.tumour_diameter_mm != first.tumour_diameter_mm
    assert other.patient_id != first.patient_id
    assert other.study_instance_uid != first.study_instance_uid
    assert not set(other.ct_sop_instance_uids) & set(first.ct_sop_instance_uids)
    slice_a = pydicom.dcmread(first_dir / "ct" / "CT_0012.dcm").PixelData
    slice_b = pydicom.dcmread(tmp_path / "other" / "ct" / "CT_0012.dcm").PixelData
    assert slice_a != slice_b


def test_patient_identity_is_distinctive(study: tuple[Path, DemoManifest]) -> None:
    out, manifest = study
    assert re.fullmatch(r"RPD-\d{5}", manifest.patient_id)
    assert re.fullmatch(r"DEMOPATIENT\^[A-Z]{4,}", manifest.patient_name)
    raw = (out / "ct" / "CT_0001.dcm").read_bytes()
    assert manifest.patient_id.encode() in raw
    assert manifest.patient_name.encode() in raw
    for name in ("rtstruct.dcm", "rtdose.dcm"):
        ds = pydicom.dcmread(out / name)
        assert (ds.PatientID, str(ds.PatientName)) == (manifest.patient_id, manifest.patient_name)
        assert ds.StudyInstanceUID == manifest.study_instance_uid
        assert ds.FrameOfReferenceUID == manifest.frame_of_reference_uid
    assert manifest.patient_id in (out / "note.txt").read_text()


def test_manifest_json_roundtrip_and_paths(study: tuple[Path, DemoManifest]) -> None:
    out, manifest = study
    text = (out / "manifest.json").read_text()
    assert DemoManifest.from_json(text) == manifest
    assert DemoManifest.from_json(manifest.to_json()).to_json() == text
    assert manifest.n_ct_instances == SMALL["shape"][2] == len(manifest.ct_sop_instance_uids)
    assert all((out / f).is_file() and not Path(f).is_absolute() for f in manifest.files)
    expected = {f"truth/{s}.nii.gz" for s in STRUCTURES} | {"rtstruct.dcm", "rtdose.dcm", "note.txt", "manifest.json"}
    assert expected <= set(manifest.files)


def test_ct_series_geometry(study: tuple[Path, DemoManifest], ct: tuple[list[pydicom.Dataset], np.ndarray]) -> None:
    _, manifest = study
    datasets, hu = ct
    cols, rows, slices = manifest.shape
    dx, dy, dz = manifest.spacing_mm
    assert len(datasets) == slices
    z = np.array([float(d.ImagePositionPatient[2]) for d in datasets])
    np.testing.assert_allclose(np.diff(z), dz, rtol=0, atol=1e-9)
    for d in datasets:
        assert d.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert d.SOPClassUID == pydicom.uid.CTImageStorage
        assert (d.Rows, d.Columns) == (rows, cols)
        assert [float(v) for v in d.PixelSpacing] == [dy, dx]
        assert float(d.SliceThickness) == dz
        assert [float(v) for v in d.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert d.PatientPosition == "HFS"
        assert d.SeriesInstanceUID == manifest.ct_series_instance_uid
        assert [float(v) for v in d.ImagePositionPatient[:2]] == list(manifest.origin_mm[:2])
    assert [d.SOPInstanceUID for d in datasets] == list(manifest.ct_sop_instance_uids)
    assert hu.shape == (slices, rows, cols)
    image = sitk.ReadImage(str(study[0] / "truth" / "gtv.nii.gz"))
    np.testing.assert_allclose(image.GetOrigin(), [*manifest.origin_mm[:2], z[0]], atol=1e-4)
    np.testing.assert_allclose(image.GetSpacing(), manifest.spacing_mm, atol=1e-6)
    np.testing.assert_allclose(image.GetDirection(), np.eye(3).ravel(), atol=1e-9)
    assert image.GetSize() == manifest.shape


def test_ct_equals_phantom(study: tuple[Path, DemoManifest], ct: tuple[list[pydicom.Dataset], np.ndarray]) -> None:
    out, manifest = study
    phantom = build_phantom(VolumeGeometry.centred(manifest.shape, manifest.spacing_mm), SEED)
    np.testing.assert_array_equal(ct[1], phantom.hu)
    for name in STRUCTURES:
        np.testing.assert_array_equal(truth(out, name), phantom.masks[name].astype(bool))


def _core_median(hu: np.ndarray, mask: np.ndarray) -> float:
    """Median HU inside the mask eroded in-plane by one voxel (the whole mask if erosion empties it)."""
    inner = ndimage.binary_erosion(mask, structure=np.array([np.zeros((3, 3)), np.ones((3, 3)), np.zeros((3, 3))]))
    return float(np.median(hu[inner if inner.any() else mask]))


def test_hu_statistics_in_truth_masks(
    study: tuple[Path, DemoManifest], ct: tuple[list[pydicom.Dataset], np.ndarray]
) -> None:
    out, manifest = study
    hu = ct[1]
    for lung in ("lung_left", "lung_right"):
        assert abs(hu[truth(out, lung)].mean() - (-850.0)) <= 60.0
    for soft in ("heart", "spinal_cord", "gtv", "esophagus"):
        assert -30.0 <= _core_median(hu, truth(out, soft)) <= 90.0, soft
    body = truth(out, "body")
    assert np.median(hu[~body]) < -950.0
    assert (hu[~body] < -900).mean() > 0.99
    phantom = build_phantom(VolumeGeometry.centred(manifest.shape, manifest.spacing_mm), SEED)
    assert phantom.bone.any() and hu[phantom.bone].mean() > 300.0
    noise = hu[~body & (np.abs(hu + 1000) < 100)]
    assert 8.0 < noise.std() < 16.0  # Gaussian noise, sigma ~12 HU (air is clipped only at -1024)


@pytest.mark.parametrize("seed", range(6))
def test_tumour_inside_one_lung_and_away_from_cord(seed: int) -> None:
    geometry = VolumeGeometry.centred(SMALL["shape"], SMALL["spacing_mm"])
    phantom = build_phantom(geometry, seed)
    gtv = phantom.masks["gtv"].astype(bool)
    assert gtv.any()
    left = phantom.tumour.centre_mm[0] > 0
    lung = phantom.masks["lung_left" if left else "lung_right"].astype(bool)
    other = phantom.masks["lung_right" if left else "lung_left"].astype(bool)
    assert not (gtv & lung).any() and not (gtv & other).any()  # lungs are contoured without the GTV
    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[1] = True
    rim = ndimage.binary_dilation(gtv, in_plane) & ~gtv
    assert rim.any() and np.array_equal(rim & lung, rim)  # surrounded by its lung in every slice
    axes = [geometry.axis_mm(a) for a in range(3)]
    z, y, x = np.nonzero(gtv)
    cz, cy, cx = np.nonzero(phantom.masks["spinal_cord"])
    tumour_pts = np.stack([axes[0][x], axes[1][y], axes[2][z]], axis=1)
    cord_pts = np.stack([axes[0][cx], axes[1][cy], axes[2][cz]], axis=1)
    assert cKDTree(cord_pts).query(tumour_pts)[0].min() > 10.0


def test_different_seeds_vary_anatomy() -> None:
    geometry = VolumeGeometry.centred(SMALL["shape"], SMALL["spacing_mm"])
    phantoms = [build_phantom(geometry, seed) for seed in (0, 1, 2)]
    body_sizes = {int(p.masks["body"].sum()) for p in phantoms}
    diameters = {round(p.tumour.longest_diameter_mm(), 1) for p in phantoms}
    assert len(body_sizes) == 3 and len(diameters) == 3
    assert all(10.0 <= d <= 60.0 for d in diameters)


def test_manifest_volumes_match_masks(study: tuple[Path, DemoManifest]) -> None:
    out, manifest = study
    voxel_cc = float(np.prod(manifest.spacing_mm)) / 1000.0
    for name in STRUCTURES:
        assert manifest.structure_volumes_cc[name] == pytest.approx(truth(out, name).sum() * voxel_cc, rel=1e-12)
    lungs = manifest.structure_volumes_cc["lung_left"] + manifest.structure_volumes_cc["lung_right"]
    for lung in ("lung_left", "lung_right"):
        assert 500.0 < manifest.structure_volumes_cc[lung] < 4000.0
    assert 0.1 < lungs / manifest.structure_volumes_cc["body"] < 0.4
    assert 200.0 < manifest.structure_volumes_cc["heart"] < 1200.0
    gtv_cc = manifest.structure_volumes_cc["gtv"]
    assert gtv_cc < np.pi / 6.0 * (manifest.tumour_diameter_mm / 10.0) ** 3  # within its longest-diameter sphere


def test_note_states_the_facts(study: tuple[Path, DemoManifest]) -> None:
    out, manifest = study
    note = (out / "note.txt").read_text()
    facts = manifest.note_facts
    assert facts.laterality == manifest.laterality == ("left" if manifest.tumour_centre_mm[0] > 0 else "right")
    assert facts.lobe == manifest.lobe and facts.lobe_name == LOBE_NAMES[manifest.lobe]
    assert facts.tumour_size_cm == round(manifest.tumour_diameter_mm / 10.0, 1)
    assert facts.t_stage == t_category(facts.tumour_size_cm)
    for text in (
        facts.histology, facts.lobe_name, f"{facts.tumour_size_cm:.1f} cm", f"ECOG performance status {facts.ecog}",
        f"FEV1 {facts.fev1_pct}% predicted", f"DLCO {facts.dlco_pct}% predicted", f"EGFR {facts.egfr}",
        f"c{facts.t_stage} {facts.n_stage} {facts.m_stage}", f"stage {facts.stage_group}", facts.prescription,
    ):  # fmt: skip
        assert text in note, text
    assert ("no evidence of distant metastatic disease" in note) == facts.states_no_distant_metastases
    assert ("inoperable" in note) == (not facts.operable)


def test_note_facts_are_consistent_across_seeds() -> None:
    seen_t, seen_hist = set(), set()
    for seed in range(200):
        diameter = 10.0 + seed % 50
        facts = draw_note_facts(stream_rng(seed, 5), age_years=60, sex="F", longest_diameter_mm=diameter, lobe="RLL")
        assert facts.t_stage == t_category(round(diameter / 10.0, 1))
        assert facts.stage_group == stage_group(facts.t_stage, facts.n_stage, facts.m_stage)
        assert (facts.pack_years == 0) == (facts.smoking_status == "never")
        assert facts.operable == (facts.ecog <= 1 and facts.fev1_pct >= 60 and facts.dlco_pct >= 60)
        assert not (facts.states_no_distant_metastases and facts.m_stage != "M0")
        assert facts.ecog in (0, 1, 2) and 0 <= facts.pdl1_tps_pct <= 100
        seen_t.add(facts.t_stage)
        seen_hist.add(facts.histology)
    assert {"T1a", "T1b", "T1c", "T2a", "T2b", "T3"} <= seen_t
    assert seen_hist == {"adenocarcinoma", "squamous cell carcinoma"}
    assert (t_category(1.0), t_category(1.1), t_category(3.0), t_category(5.1)) == ("T1a", "T1b", "T1c", "T3")
    assert (stage_group("T1a", "N0", "M0"), stage_group("T3", "N2", "M0"), stage_group("T1b", "N1", "M1b")) == (
        "IA1", "IIIB", "IVA"
    )  # fmt: skip


@pytest.mark.slow
def test_full_size_study(tmp_path: Path) -> None:
    start = time.perf_counter()
    manifest = generate_demo_study(tmp_path / "full", seed=3)
    elapsed = time.perf_counter() - start
    print(f"full-size demo study generated in {elapsed:.1f} s")
    assert manifest.shape == (512, 512, 150) and manifest.n_ct_instances == 150
    files = sorted((tmp_path / "full" / "ct").glob("CT_*.dcm"))
    assert len(files) == 150
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert (first.Rows, first.Columns) == (512, 512)
    assert sitk.ReadImage(str(tmp_path / "full" / "truth" / "body.nii.gz")).GetSize() == (512, 512, 150)
    assert elapsed < 30.0

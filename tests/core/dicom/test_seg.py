"""DICOM SEG writer: write, read back (highdicom and pydicom), dciodvfy without errors, import into the store."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from pydicom.dataset import Dataset

from core.demo import DemoManifest, generate_demo_study
from core.dicom.importer import import_paths
from core.dicom.writers.seg import SegmentSpec, read_seg, sort_along_normal, write_seg
from core.security.roles import Permission, Role
from core.security.session import Access, User
from core.store.store import Store

IMPORTER = Access(User(2, "rad1", Role.RADIOLOGIST), Permission.IMPORT_STUDIES)
LABELS = ("Heart", "Lung_L", "Lung_R", "GTV")  # later labels win where structures overlap
TRUTH = {"Heart": "heart", "Lung_L": "lung_left", "Lung_R": "lung_right", "GTV": "gtv"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoManifest]:
    out = tmp_path_factory.mktemp("seg-demo")
    return out, generate_demo_study(out, seed=11, shape=(64, 56, 16), spacing_mm=(4.0, 4.0, 5.0))


@pytest.fixture(scope="module")
def images(demo: tuple[Path, DemoManifest]) -> list[Dataset]:
    return [pydicom.dcmread(p) for p in sorted((demo[0] / "ct").glob("*.dcm"))]


@pytest.fixture(scope="module")
def label_map(demo: tuple[Path, DemoManifest]) -> np.ndarray:
    out = None
    for n, label in enumerate(LABELS, start=1):
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(demo[0] / "truth" / f"{TRUTH[label]}.nii.gz"))) > 0
        out = np.zeros(mask.shape, np.uint8) if out is None else out
        out[mask] = n
    assert out is not None
    return out


@pytest.fixture(scope="module")
def seg_file(images: list[Dataset], label_map: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    seg = write_seg(images, label_map, [SegmentSpec(label) for label in LABELS])
    path = tmp_path_factory.mktemp("seg") / "seg.dcm"
    seg.save_as(path, enforce_file_format=True)
    return path


def test_round_trip(
    seg_file: Path, images: list[Dataset], label_map: np.ndarray, demo: tuple[Path, DemoManifest]
) -> None:
    ds = pydicom.dcmread(seg_file)
    manifest = demo[1]
    assert ds.Modality == "SEG" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert (ds.StudyInstanceUID, ds.PatientID) == (manifest.study_instance_uid, manifest.patient_id)
    assert ds.FrameOfReferenceUID == manifest.frame_of_reference_uid
    assert [s.SegmentLabel for s in ds.SegmentSequence] == list(LABELS)
    assert ds.SegmentSequence[3].SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
    masks = read_seg(ds, images)
    assert set(masks) == set(LABELS)
    for n, label in enumerate(LABELS, start=1):
        np.testing.assert_array_equal(masks[label], label_map == n, err_msg=label)
        assert masks[label].sum() > 0
    referenced = {
        ref.ReferencedSOPInstanceUID
        for frame in ds.PerFrameFunctionalGroupsSequence
        for ref in frame.DerivationImageSequence[0].SourceImageSequence
    }
    assert referenced <= set(manifest.ct_sop_instance_uids) and referenced  # frames point at the CT slices


def test_order_of_source_images_does_not_matter(images: list[Dataset], label_map: np.ndarray) -> None:
    seg = write_seg(list(reversed(images)), label_map, [SegmentSpec(label) for label in LABELS])
    masks = read_seg(seg, images[::2] + images[1::2])
    np.testing.assert_array_equal(masks["GTV"], label_map == 4)
    assert [d.SOPInstanceUID for d in sort_along_normal(images[::-1])] == [d.SOPInstanceUID for d in images]


def test_bad_input_is_refused(images: list[Dataset], label_map: np.ndarray) -> None:
    with pytest.raises(ValueError, match="does not match the series"):
        write_seg(images, label_map[:-1], [SegmentSpec(label) for label in LABELS])
    with pytest.raises(ValueError, match=r"label values must be 0\.\.2"):
        write_seg(images, label_map, [SegmentSpec("Heart"), SegmentSpec("GTV")])
    with pytest.raises(ValueError, match="has no codes"):
        write_seg(images, (label_map > 0).astype(np.uint8), [SegmentSpec("Spleenish")])


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools (dciodvfy) not installed")
def test_dciodvfy_finds_no_errors(seg_file: Path) -> None:
    result = subprocess.run(["dciodvfy", str(seg_file)], capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert errors == [], output
    assert "Segmentation" in output


def test_seg_is_imported_into_the_study(
    passphrase_store: Store, seg_file: Path, demo: tuple[Path, DemoManifest]
) -> None:
    report = import_paths(passphrase_store, IMPORTER, [demo[0] / "ct", seg_file])
    assert report.ok and report.stored == demo[1].n_ct_instances + 1
    rows = passphrase_store.query(
        "SELECT se.modality, st.study_uid FROM series se JOIN studies st ON st.id = se.study_fk"
    )
    assert ("SEG", demo[1].study_instance_uid) in rows

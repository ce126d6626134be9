"""Radiomics from a DICOM SEG file and from a stored study + stored segmentation; features stored and read back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813

from core.demo import generate_demo_study
from core.dicom.importer import import_paths
from core.dicom.writers.seg import SegmentSpec, write_seg
from core.errors import PermissionDeniedError
from core.radiomics.extract import extract_files, read_images
from core.radiomics.preprocess import RadiomicsInputError
from core.radiomics.stored import extract_stored, load_features, read_stored_input
from core.security.roles import Permission, Role
from core.security.session import Access, User
from core.store.store import Store

RAD = User(2, "rad1", Role.RADIOLOGIST)
IMPORTER = Access(RAD, Permission.IMPORT_STUDIES)
ANALYST = Access(RAD, Permission.RUN_ANALYSIS)
READER = Access(RAD, Permission.READ_PATIENT_DATA)


def _truth(study: Path, name: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(study / "truth" / f"{name}.nii.gz"))) > 0


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate_demo_study(out, seed=4, shape=(96, 96, 24), spacing_mm=(3.0, 3.0, 5.0))
    images = [pydicom.dcmread(p) for p in sorted((out / "ct").glob("*.dcm"))]
    labels = np.zeros(_truth(out, "gtv").shape, np.uint8)
    labels[_truth(out, "esophagus")] = 1
    labels[_truth(out, "gtv")] = 2  # the demo CT is axial, z increasing: array order = order along the normal
    seg = write_seg(images, labels, [SegmentSpec("Esophagus"), SegmentSpec("GTV")])
    (out / "seg").mkdir()
    seg.save_as(out / "seg" / "seg.dcm", enforce_file_format=True)
    return out


@pytest.fixture(scope="module")
def store(study: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    s = Store.create(tmp_path_factory.mktemp("store") / "d", key_mode="passphrase", passphrase=lambda _p: "phrase-1")
    report = import_paths(s, IMPORTER, [study / "ct", study / "rtstruct.dcm", study / "seg"])
    assert report.ok and report.stored == 24 + 2
    return s


def _values(rows: object) -> dict[str, float]:
    return {f.ibsi_tag: f.value for f in rows}  # type: ignore[attr-defined]


def test_seg_file_gives_the_truth_mask(study: Path) -> None:
    image, mask = read_images(study / "ct", study / "seg" / "seg.dcm", roi="GTV")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask) > 0, _truth(study, "gtv"))
    assert mask.GetOrigin() == image.GetOrigin()
    a = _values(extract_files(study / "ct", study / "seg" / "seg.dcm", "ibsi-c", roi="GTV"))
    b = _values(extract_files(study / "ct", study / "truth" / "gtv.nii.gz", "ibsi-c"))
    assert a == b and len(a) > 100


def test_seg_file_errors(study: Path) -> None:
    with pytest.raises(RadiomicsInputError, match=r"no segment 'Heart' .*segments: Esophagus, GTV"):
        read_images(study / "ct", study / "seg" / "seg.dcm", roi="Heart")
    with pytest.raises(RadiomicsInputError, match="choose one with --roi"):
        read_images(study / "ct", study / "seg" / "seg.dcm")
    with pytest.raises(RadiomicsInputError, match="needs a DICOM series folder"):
        read_images(study / "truth" / "gtv.nii.gz", study / "seg" / "seg.dcm", roi="GTV")


def test_stored_study_features_equal_file_features_and_are_versioned(study: Path, store: Store) -> None:
    inp = read_stored_input(store, ANALYST, _study_uid(store), "GTV")
    assert inp.source_modality == "SEG"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(inp.mask) > 0, _truth(study, "gtv"))
    first = extract_stored(store, ANALYST, _study_uid(store), "GTV", "ibsi-c")
    files = _values(extract_files(study / "ct", study / "seg" / "seg.dcm", "ibsi-c", roi="GTV"))
    assert _values(first.features) == files
    assert first.version == 1 and "pyradiomics 3.1" in first.producer and "config=ibsi-c sha256:" in first.producer
    second = extract_stored(store, ANALYST, _study_uid(store), "GTV", "ibsi-c")
    assert second.version == 2
    back = load_features(store, READER, _study_uid(store), roi="GTV", config="ibsi-c")
    assert [r.version for r in back] == [2, 1]
    assert _values(back[0].features) == files and back[0].created_by == "rad1"
    assert back[0].source_sop_uid == pydicom.dcmread(study / "seg" / "seg.dcm").SOPInstanceUID
    rows = store.query("SELECT kind, version, producer FROM results WHERE kind = 'features' ORDER BY version")
    assert [(r[0], r[1]) for r in rows[-2:]] == [("features", 1), ("features", 2)]
    audit = store.query("SELECT action, outcome, details FROM audit ORDER BY seq DESC LIMIT 4")
    assert audit[0][0] == "radiomics.read_features"
    assert audit[1][0] == "radiomics.extract" and json.loads(str(audit[1][2]))["version"] == 2
    assert audit[2][0] == "study.read_images"


def test_rtstruct_fallback_and_errors(study: Path, store: Store) -> None:
    heart = extract_stored(store, ANALYST, _study_uid(store), "Heart", "ibsi-a")  # not in the SEG: the RTSTRUCT
    assert heart.source_modality == "RTSTRUCT" and load_features(store, ANALYST, _study_uid(store), roi="Heart")
    with pytest.raises(RadiomicsInputError, match=r"no ROI named 'Liver' .*Esophagus, GTV, Body"):
        extract_stored(store, ANALYST, _study_uid(store), "Liver", "ibsi-a")
    assert store.query("SELECT outcome FROM audit ORDER BY seq DESC LIMIT 1")[0][0] == "minor_failure"
    with pytest.raises(RadiomicsInputError, match="not in the store"):
        extract_stored(store, ANALYST, "1.2.3.4", "GTV", "ibsi-a")
    with pytest.raises(PermissionDeniedError):
        extract_stored(store, READER, _study_uid(store), "GTV", "ibsi-a")
    with pytest.raises(PermissionDeniedError):
        load_features(store, IMPORTER, _study_uid(store))


@pytest.mark.slow
def test_stored_clinical_equals_file_clinical(study: Path, store: Store) -> None:
    stored = extract_stored(store, ANALYST, _study_uid(store), "GTV", "clinical", workers=1)
    files = extract_files(study / "ct", study / "seg" / "seg.dcm", "clinical", roi="GTV", workers=1)
    ours, theirs = {f.pyradiomics: f.value for f in stored.features}, {f.pyradiomics: f.value for f in files}
    assert len(ours) == 1130 and ours == theirs


def _study_uid(store: Store) -> str:
    return str(store.query("SELECT study_uid FROM studies")[0][0])


def test_cli_study_roi_stores_features(study: Path, initialised: object, tmp_path: Path) -> None:
    from tests.conftest import RAD as RAD_NAME
    from tests.conftest import RAD_PW

    cli = initialised
    env = {"RADPLAN_USER": RAD_NAME, "RADPLAN_PASSWORD": RAD_PW, "RADPLAN_PASSPHRASE": "store-passphrase-1"}
    cli("import", str(study / "ct"), str(study / "seg"), **env)  # type: ignore[operator]
    uid = str(pydicom.dcmread(study / "seg" / "seg.dcm").StudyInstanceUID)
    out = tmp_path / "f.csv"
    done = cli("radiomics", "--study", uid, "--roi", "GTV", "--config", "ibsi-a", "--out", str(out), **env)  # type: ignore[operator]
    assert "stored with the study as version 1" in done.stdout and "from the stored SEG" in done.stdout
    assert out.read_text().startswith("ibsi_tag,feature,value")
    usage = cli("radiomics", "--study", uid, "--config", "ibsi-a", check=False, **env)  # type: ignore[operator]
    assert usage.returncode == 2 and "--study needs --roi" in usage.stderr
    missing = cli("radiomics", "--study", uid, "--roi", "Liver", check=False, **env)  # type: ignore[operator]
    assert missing.returncode == 1 and "no ROI named 'Liver'" in missing.stderr

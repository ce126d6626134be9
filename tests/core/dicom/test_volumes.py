"""Series -> volume on the demo CT: sorting, geometry, rescale, and each refusal with its message."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from core.demo import DemoManifest, generate_demo_study
from core.dicom.importer import import_paths
from core.dicom.volumes import VolumeError, series_to_volume, study_volumes
from core.errors import PermissionDeniedError
from core.security.roles import Permission, Role
from core.security.session import Access, User
from core.store.store import Store

IMPORTER = Access(User(2, "rad1", Role.RADIOLOGIST), Permission.IMPORT_STUDIES)
READER = Access(User(2, "rad1", Role.RADIOLOGIST), Permission.READ_PATIENT_DATA)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoManifest]:
    out = tmp_path_factory.mktemp("vol-demo")
    return out, generate_demo_study(out, seed=5, shape=(48, 40, 12), spacing_mm=(3.0, 2.5, 5.0))


@pytest.fixture
def ct(demo: tuple[Path, DemoManifest]) -> list[Dataset]:
    return [pydicom.dcmread(p) for p in sorted((demo[0] / "ct").glob("*.dcm"))]


def expected_hu(ds: Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_volume_geometry_and_values(ct: list[Dataset], demo: tuple[Path, DemoManifest]) -> None:
    manifest = demo[1]
    shuffled = ct[:]
    random.Random(1).shuffle(shuffled)
    vol = series_to_volume(shuffled)
    assert vol.array.shape == (12, 40, 48) and vol.array.dtype == np.float32
    assert vol.spacing_mm == pytest.approx(manifest.spacing_mm)
    assert vol.origin_mm == pytest.approx(manifest.origin_mm)
    assert vol.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert vol.units == "HU" and vol.modality == "CT"
    assert list(vol.sop_uids) == list(manifest.ct_sop_instance_uids)  # sorted along the normal
    for k, ds in enumerate(ct):
        np.testing.assert_array_equal(vol.array[k], expected_hu(ds))
    image = vol.to_sitk()
    assert image.GetSize() == (48, 40, 12) and image.GetSpacing() == pytest.approx(manifest.spacing_mm)  # type: ignore[attr-defined]


def test_per_slice_rescale(ct: list[Dataset]) -> None:
    ct[3].RescaleSlope, ct[3].RescaleIntercept = "2", "-2048"
    vol = series_to_volume(ct)
    np.testing.assert_array_equal(vol.array[3], ct[3].pixel_array.astype(np.float64) * 2 - 2048)


def test_missing_slice_names_the_gap(ct: list[Dataset]) -> None:
    gone = ct.pop(5)
    z_before, z_after = float(ct[4].ImagePositionPatient[2]), float(ct[5].ImagePositionPatient[2])
    with pytest.raises(VolumeError) as exc:
        series_to_volume(ct)
    message = str(exc.value)
    assert "1 missing slice(s)" in message and "gap of 10.00 mm" in message
    assert f"{z_before:.2f} mm and {z_after:.2f} mm" in message and "instance numbers 5 and 7" in message
    assert gone.InstanceNumber == 6


def test_non_uniform_spacing(ct: list[Dataset]) -> None:
    for ds in ct[6:]:
        ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + 1.5]
    with pytest.raises(VolumeError, match=r"non-uniform spacing: gap of 6\.50 mm"):
        series_to_volume(ct)


def test_duplicate_position(ct: list[Dataset]) -> None:
    ct[4].ImagePositionPatient = ct[3].ImagePositionPatient
    with pytest.raises(VolumeError, match="same position"):
        series_to_volume(ct)


def test_missing_image_position_names_the_instance(ct: list[Dataset]) -> None:
    del ct[2].ImagePositionPatient
    with pytest.raises(VolumeError, match=f"instance {ct[2].SOPInstanceUID} has no valid Image Position"):
        series_to_volume(ct)


def test_inconsistent_orientation(ct: list[Dataset]) -> None:
    ct[7].ImageOrientationPatient = [0, 1, 0, 1, 0, 0]
    with pytest.raises(VolumeError, match="different orientation"):
        series_to_volume(ct)


def test_mixed_series(ct: list[Dataset]) -> None:
    ct[0].SeriesInstanceUID = generate_uid()
    with pytest.raises(VolumeError, match="2 series"):
        series_to_volume(ct)


def test_gantry_tilt_is_refused_with_its_angle(ct: list[Dataset]) -> None:
    for k, ds in enumerate(ct):  # slices shift in y by tan(10 deg) * 5 mm each: a 10-degree tilt
        ds.ImagePositionPatient = [
            ds.ImagePositionPatient[0],
            float(ds.ImagePositionPatient[1]) + k * 5 * np.tan(np.radians(10)),
            ds.ImagePositionPatient[2],
        ]
    with pytest.raises(VolumeError, match=r"gantry tilt of 10\.00 degrees"):
        series_to_volume(ct)


def test_gantry_tilt_resampled_on_request(ct: list[Dataset]) -> None:
    straight = series_to_volume(ct)
    for k, ds in enumerate(ct):  # 2.5 mm (one row) in y per 5 mm slice: a 26.57-degree tilt, whole-pixel shifts
        pos = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [pos[0], pos[1] + k * 2.5, pos[2]]
    with pytest.raises(VolumeError, match=r"gantry tilt of 26\.57 degrees .* not resampled"):
        series_to_volume(ct)
    vol = series_to_volume(ct, resample_tilt=True)
    assert vol.array.shape == straight.array.shape and vol.spacing_mm == pytest.approx(straight.spacing_mm)
    assert vol.origin_mm == pytest.approx(straight.origin_mm) and vol.sop_uids == straight.sop_uids
    assert "gantry tilt of 26.57 degrees resampled" in vol.notes[0]
    for k in range(vol.array.shape[0]):  # slice k's row r is now at row r + k: the same physical point
        np.testing.assert_allclose(vol.array[k, k:], straight.array[k, : straight.array.shape[1] - k], atol=1e-3)
        assert (vol.array[k, :k] == straight.array.min()).all()  # not scanned: the series minimum


def test_localizers_are_excluded(ct: list[Dataset]) -> None:
    scout = copy.deepcopy(ct[0])
    scout.SOPInstanceUID = generate_uid()
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    vol = series_to_volume([scout, *ct])
    assert vol.array.shape[0] == len(ct) and vol.excluded_localizers == 1
    with pytest.raises(VolumeError, match="only localizer"):
        series_to_volume([scout])


def test_non_image_objects_are_not_volumes(demo: tuple[Path, DemoManifest]) -> None:
    for name in ("rtstruct.dcm", "rtdose.dcm"):
        with pytest.raises(VolumeError, match="holds no images: not a volume"):
            series_to_volume([pydicom.dcmread(demo[0] / name)])


def test_enhanced_multiframe_ct_gives_the_same_volume(ct: list[Dataset]) -> None:
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    enhanced = LegacyConvertedEnhancedCTImage(
        ct, series_instance_uid=generate_uid(), series_number=99, sop_instance_uid=generate_uid(), instance_number=1
    )
    vol = series_to_volume([pydicom.dcmread(_roundtrip(enhanced))])
    classic = series_to_volume(ct)
    np.testing.assert_array_equal(vol.array, classic.array)
    assert vol.spacing_mm == pytest.approx(classic.spacing_mm) and vol.origin_mm == pytest.approx(classic.origin_mm)


def _roundtrip(ds: Dataset) -> object:
    import io

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    buf.seek(0)
    return buf


def test_study_volumes_from_the_store(passphrase_store: Store, demo: tuple[Path, DemoManifest]) -> None:
    folder, manifest = demo
    import_paths(passphrase_store, IMPORTER, [folder])
    result = study_volumes(passphrase_store, READER, manifest.study_instance_uid)
    assert [v.series_uid for v in result.volumes] == [manifest.ct_series_instance_uid]
    assert result.volumes[0].array.shape == (12, 40, 48)
    assert set(result.skipped) == {manifest.rtstruct_series_instance_uid, manifest.rtdose_series_instance_uid}
    assert "RTSTRUCT: not an image series" in result.skipped[manifest.rtstruct_series_instance_uid]
    assert passphrase_store.query("SELECT count(*) FROM audit WHERE action = 'study.read_images'")[0][0] == 1
    with pytest.raises(PermissionDeniedError):
        study_volumes(passphrase_store, IMPORTER, manifest.study_instance_uid)
    with pytest.raises(VolumeError, match="not in the store"):
        study_volumes(passphrase_store, READER, "1.2.3")

"""What the workstation viewer draws over a stored study, core side (no Qt): the newest RT Structure Set and RT Dose
read from the encrypted store, a damaged one as a sentence, the engine's stored SEG when no mask version was saved
from the workstation, and ROI statistics of masks and RTSTRUCT ROIs with their units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from core.dicom.importer import import_paths
from core.dicom.volumes import Volume
from core.plan.structures import PlanarStructure, read_rtstruct_structures
from core.security.roles import Permission
from core.security.session import Session
from core.store.users import UserRepository
from core.viewer.measure import roi_statistics
from core.workstation.demo import RADIOLOGIST, DemoWorkspace, build_demo_workspace
from core.workstation.overlays import engine_segmentation, load_study_overlays
from core.workstation.roi import contour_mask, structure_statistics
from core.workstation.study import load_open_study, save_mask_version

SMALL = {"shape": (64, 64, 20), "spacing_mm": (6.0, 6.0, 8.0)}


def _access(ws: DemoWorkspace, permission: Permission):  # type: ignore[no-untyped-def]
    user = UserRepository(ws.store).authenticate(RADIOLOGIST, ws.passwords[RADIOLOGIST])
    return Session(user).authorize(permission)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> DemoWorkspace:
    workspace = build_demo_workspace(tmp_path_factory.mktemp("overlays"), seed=5, **SMALL)  # type: ignore[arg-type]
    yield workspace
    workspace.store.close()


def test_newest_rtstruct_and_rtdose_are_read_from_the_store(ws: DemoWorkspace) -> None:
    read = _access(ws, Permission.READ_PATIENT_DATA)
    overlays = load_study_overlays(ws.store, read, ws.study_uid)
    truth = read_rtstruct_structures(pydicom.dcmread(ws.demo_folder / "rtstruct.dcm"))
    assert overlays.structures is not None and set(overlays.structures.structures) == set(truth.structures)
    assert overlays.structures.structures["GTV"].color == truth.structures["GTV"].color
    assert overlays.dose is not None and float(overlays.dose.dose_gy.max()) > 10.0
    assert overlays.notes == () and overlays.found[0].startswith("RT Structure Set")
    with ws.store.transaction() as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY seq").fetchall()]
    assert "study.read_rt_objects" in actions


def test_reading_needs_the_read_permission(ws: DemoWorkspace) -> None:
    from core.errors import PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        load_study_overlays(ws.store, _access(ws, Permission.RUN_ANALYSIS), ws.study_uid)


def test_damaged_rtstruct_gives_a_sentence_and_the_dose_is_still_read(tmp_path: Path) -> None:
    ws = build_demo_workspace(tmp_path / "ws", seed=6, **SMALL)  # type: ignore[arg-type]
    try:
        damaged = pydicom.dcmread(ws.demo_folder / "rtstruct.dcm")
        damaged.SOPInstanceUID = damaged.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        damaged.SeriesInstanceUID = generate_uid()
        contour = damaged.ROIContourSequence[0].ContourSequence[0]
        points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
        points[:, 2] += np.arange(len(points))  # a tilted, non-axial contour
        contour.ContourData = [f"{v:.3f}" for v in points.ravel()]
        folder = tmp_path / "damaged"
        folder.mkdir()
        damaged.save_as(folder / "rs.dcm", enforce_file_format=True)
        report = import_paths(ws.store, _access(ws, Permission.IMPORT_STUDIES), [folder])
        assert report.ok, report
        overlays = load_study_overlays(ws.store, _access(ws, Permission.READ_PATIENT_DATA), ws.study_uid)
        assert overlays.structures is None and overlays.dose is not None
        (note,) = overlays.notes
        assert note.startswith("The study's RT Structure Set could not be shown (") and "non-axial" in note
        assert note.endswith(".") and "Traceback" not in note
    finally:
        ws.store.close()


def test_study_without_rt_objects_has_none(tmp_path: Path) -> None:
    ws = build_demo_workspace(tmp_path / "ws", seed=7, **SMALL)  # type: ignore[arg-type]
    try:
        with ws.store.transaction() as conn:  # as if only the CT had been imported
            conn.execute("UPDATE series SET modality = 'OT' WHERE modality IN ('RTSTRUCT', 'RTDOSE')")
        overlays = load_study_overlays(ws.store, _access(ws, Permission.READ_PATIENT_DATA), ws.study_uid)
        assert (overlays.structures, overlays.dose, overlays.notes) == (None, None, ())
    finally:
        ws.store.close()


def test_engine_seg_is_loaded_unless_a_workstation_version_is_newer(tmp_path: Path) -> None:
    from core.segmentation.result import SegmentationResult, write_seg_dataset
    from core.segmentation.service import store_segmentation

    ws = build_demo_workspace(tmp_path / "ws", seed=8, **SMALL)  # type: ignore[arg-type]
    try:
        read = _access(ws, Permission.READ_PATIENT_DATA)
        study = load_open_study(ws.store, read, ws.study_uid)
        shape = study.volume.array.shape
        assert engine_segmentation(ws.store, read, ws.study_uid, shape) == ({}, "")
        gtv = np.zeros(shape, np.uint8)
        gtv[5:9, 20:30, 25:35] = 1
        images = [pydicom.dcmread(p) for p in sorted((ws.demo_folder / "ct").glob("*.dcm"))]
        result = SegmentationResult({"gtv": gtv}, "test-model", "1", "cpu", {}, {"gtv": 1.0}, {"gtv": "GTV"},
                                    study.volume.spacing_mm, study.volume.series_uid)  # fmt: skip
        store_segmentation(ws.store, _access(ws, Permission.IMPORT_STUDIES), ws.study_uid,
                           write_seg_dataset(result, images), result)  # fmt: skip
        reopened = load_open_study(ws.store, read, ws.study_uid)
        assert reopened.mask_source == "none"  # no workstation-saved version: the second step loads the SEG
        overlays = load_study_overlays(ws.store, read, ws.study_uid, seg_shape=shape)
        assert list(overlays.seg_masks) == ["gtv"] and np.array_equal(overlays.seg_masks["gtv"], gtv)
        assert overlays.seg_source.startswith("stored segmentation version 1 (test-model 1")
        assert reopened.add_overlays(overlays) and reopened.mask_source == overlays.seg_source
        assert np.array_equal(reopened.masks.masks["gtv"], gtv) and not reopened.masks.can_undo
        edited = load_open_study(ws.store, read, ws.study_uid)
        assert edited.masks.apply("boost", gtv[:, ::-1].copy(), "brush")
        assert not edited.add_overlays(overlays), "edits made meanwhile are never replaced"
        save_mask_version(ws.store, _access(ws, Permission.RUN_ANALYSIS), ws.study_uid, {"gtv": gtv[::-1].copy()})
        assert engine_segmentation(ws.store, read, ws.study_uid, shape) == ({}, "")
    finally:
        ws.store.close()


def _volume() -> Volume:
    array = np.full((10, 40, 40), 50.0, np.float32)
    array[:, :, 20:] = 150.0
    return Volume(array, (2.0, 2.0, 3.0), (-40.0, -40.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), "1.2", "CT", "HU", ())


def test_contour_statistics_match_the_rasterised_mask() -> None:
    volume = _volume()
    square = np.asarray([[-11.0, -11.0], [11.0, -11.0], [11.0, 11.0], [-11.0, 11.0]])
    planes = (6.0, 9.0, 12.0)
    roi = PlanarStructure("PTV", planes, tuple((square,) for _ in planes), 3.0, color=(0, 255, 0))
    mask = contour_mask(roi, volume)
    # voxel centres x = -40 + 2i inside (-11, 11): i = 15..25 (11); the same for y; slices z = 6, 9, 12
    assert mask.sum() == 3 * 11 * 11 and set(np.nonzero(mask)[0]) == {2, 3, 4}
    readout = structure_statistics(volume, "PTV", contour=roi)
    expected = roi_statistics(volume, mask)
    assert readout.stats == expected and readout.source == "RTSTRUCT"
    assert abs(readout.stats.volume_cc - 3 * 121 * 12 / 1000.0) < 1e-9
    text = readout.text()
    assert f"mean {expected.mean_hu:.1f} HU" in text and f"SD {expected.sd_hu:.1f} HU" in text
    assert f"volume {expected.volume_cc:.2f} cc" in text
    by_mask = structure_statistics(volume, "m", mask=mask)
    assert by_mask.stats == expected and by_mask.source == "mask"
    assert "no voxel centre" in structure_statistics(volume, "e", mask=np.zeros_like(mask)).text()
    with pytest.raises(ValueError, match="either"):
        structure_statistics(volume, "x")


def test_statistics_of_a_stored_rtstruct_roi_on_the_demo_ct(ws: DemoWorkspace) -> None:
    read = _access(ws, Permission.READ_PATIENT_DATA)
    study = load_open_study(ws.store, read, ws.study_uid)
    overlays = load_study_overlays(ws.store, read, ws.study_uid)
    assert overlays.structures is not None
    body = overlays.structures.structures["Body"]
    readout = structure_statistics(study.volume, "Body", contour=body)
    assert abs(readout.stats.volume_cc - body.polygon_volume_cc()) / body.polygon_volume_cc() < 0.1
    assert -200.0 < readout.stats.mean_hu < 100.0  # mostly soft tissue and some lung
    assert " HU, SD " in readout.text() and " cc (" in readout.text()

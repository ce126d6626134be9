"""The viewer inside the workstation (issue 8): opening the demo study shows its RT Structure Set contours and RT Dose
(wash and isodose lines) read from the encrypted store; the structure list changes colour, opacity and visibility;
the tool selector picks the distance tool; the ROI statistics read-out shows HU mean/SD and volume with units. Real
window under Xvfb, real store, assertions on the model and on each view's pixels read back from OpenGL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from numpy.typing import NDArray
from pydicom.uid import generate_uid
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest

from core.dicom.importer import import_paths
from core.security.roles import Permission
from core.security.session import Session
from core.store.users import UserRepository
from core.viewer.measure import roi_statistics
from core.workstation.demo import RADIOLOGIST
from tests.ui.shell_support import close, open_window, sign_in, workspace
from tests.ui.viewer_support import VIEWS, assert_views_not_blank, count

pytestmark = [pytest.mark.qt, pytest.mark.slow]


def _open(qtbot: Any, window: Any, study_uid: str) -> Any:
    before = window.study
    window.open_study(study_uid)
    qtbot.waitUntil(lambda: window.study is not None and window.study is not before, timeout=60000)
    qtbot.waitUntil(lambda: window.study.overlays_loaded, timeout=60000)
    window.show_panel("viewer")
    return window.panels["viewer"]


def test_rt_objects_and_controls_in_the_workstation(qtbot: Any, tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    manifest = json.loads((ws.demo_folder / "manifest.json").read_text())
    window = open_window(qtbot, ws)
    try:
        sign_in(qtbot, window, RADIOLOGIST, ws.passwords[RADIOLOGIST])
        host = _open(qtbot, window, ws.study_uid)
        viewer, side, study = host.viewer, host.sidebar, window.study
        # the study's RT Structure Set and RT Dose reached the model and the viewer
        contours = viewer.state.structures("contours")
        assert {"Body", "GTV", "SpinalCord", "Heart"} <= set(contours)
        assert contours["Body"].colour == (0, 255, 0) and study.structures.structures["GTV"].color == (255, 0, 0)
        assert viewer.dose_sampler is not None and viewer.dose_sampler.max_gy > 10.0
        assert study.dose is not None and "RT Dose" in host.info.text() and "ROIs" in host.info.text()
        assert side.dose_wash.isEnabled() and "isodose lines at" in side.dose_info.text()
        assert not host.notes.isVisible()
        viewer.set_cursor(manifest["tumour_centre_mm"])
        assert_views_not_blank(qtbot, viewer)
        for view in VIEWS:  # the Body contour (green lines) in every 2-D view
            assert count(viewer.view_pixels(view), (0, 255, 0)) > 40, view

        # dose: the wash colours the slice; the check box turns it off, the isodose lines likewise
        side.dose_opacity.setValue(100)
        assert viewer.state.dose.opacity == 1.0
        washed = viewer.view_pixels("axial").astype(int)
        side.dose_wash.setChecked(False)
        assert viewer.state.dose.wash is False
        plain = viewer.view_pixels("axial").astype(int)
        assert (np.abs(washed - plain).max(axis=-1) > 60).sum() > 300, "the dose wash coloured the slice"
        side.isodose.setChecked(False)
        assert viewer.state.dose.isodose is False
        bare = viewer.view_pixels("axial").astype(int)
        assert (np.abs(plain - bare).max(axis=-1) > 60).sum() > 30, "the isodose lines were drawn"

        # visibility: the list's check box hides a structure's contour
        structures = side.structures
        assert count(bare.astype(np.uint8), (0, 255, 0)) > 40
        structures.checkbox("contours", "Body").setChecked(False)
        assert not viewer.state.structures("contours")["Body"].visible
        assert count(viewer.view_pixels("axial"), (0, 255, 0)) == 0

        # colour of a structure: the swatch opens a colour dialog; accepting it recolours the contour
        structures.checkbox("contours", "Body").setChecked(True)
        for name in contours:
            if name != "Body":
                structures.checkbox("contours", name).setChecked(False)
        assert count(viewer.view_pixels("axial"), (0, 255, 0)) > 40
        QTest.mouseClick(structures.swatch("contours", "Body"), Qt.MouseButton.LeftButton)
        dialog = structures.colour_dialog
        assert dialog is not None and dialog.isVisible()
        dialog.setCurrentColor(QColor(255, 0, 255))
        dialog.accept()
        assert viewer.state.structures("contours")["Body"].colour == (255, 0, 255)
        assert structures.swatch("contours", "Body").property("colour") == (255, 0, 255)
        recoloured = viewer.view_pixels("axial")
        assert count(recoloured, (255, 0, 255)) > 40 and count(recoloured, (0, 255, 0)) == 0
        structures.slider("contours", "Body").setValue(0)  # a contour's opacity is its line's alpha
        assert viewer.state.structures("contours")["Body"].opacity == 0.0
        assert count(viewer.view_pixels("axial"), (255, 0, 255)) == 0
        structures.slider("contours", "Body").setValue(100)

        # a segmentation mask (the demo's GTV truth) joins the list; its opacity slider changes the fill
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(ws.demo_folder / "truth" / "gtv.nii.gz"))).astype(np.uint8)
        study.masks.apply("gtv", truth, "test: the demo's GTV")
        window.masks_changed.emit()
        qtbot.waitUntil(lambda: host.masks_up_to_date, timeout=20000)  # packed in a worker thread
        assert ("segmentation", "gtv") in structures.rows
        structures.checkbox("contours", "Body").setChecked(False)
        k, j, i = np.argwhere(truth)[len(np.argwhere(truth)) // 2]
        inside = tuple(float(v) for v in _centre_mm(study.volume, int(i), int(j), int(k)))
        viewer.set_cursor((inside[0] + 20.0, inside[1] + 20.0, inside[2]))  # crosshair lines away from the point
        structures.slider("segmentation", "gtv").setValue(100)
        assert viewer.state.structures("segmentation")["gtv"].opacity == 1.0
        colour = viewer.state.structures("segmentation")["gtv"].colour
        full = _pixel(viewer, "axial", inside)
        assert np.abs(full - np.asarray(colour)).max() < 30, (full, colour)
        structures.slider("segmentation", "gtv").setValue(0)
        clear = _pixel(viewer, "axial", inside)
        assert np.ptp(clear) < 12, f"at opacity 0 the CT shows grey, got {clear}"

        # ROI statistics of the selected mask: the numbers of core.viewer.measure.roi_statistics, with units
        structures.select("segmentation", "gtv")
        qtbot.waitUntil(lambda: host.readout is not None and host.readout.name == "gtv", timeout=20000)
        expected = roi_statistics(study.volume, truth)
        assert host.readout.stats == expected
        assert abs(expected.volume_cc - manifest["structure_volumes_cc"]["gtv"]) < 1e-6
        text = side.statistics.text()
        assert f"mean {expected.mean_hu:.1f} HU" in text and f"SD {expected.sd_hu:.1f} HU" in text
        assert f"volume {expected.volume_cc:.2f} cc" in text
        # ... and of an RTSTRUCT ROI (rasterised on the CT grid in a worker)
        structures.select("contours", "GTV")
        qtbot.waitUntil(lambda: host.readout.name == "GTV", timeout=30000)
        assert host.readout.source == "RTSTRUCT" and "HU" in side.statistics.text() and " cc" in side.statistics.text()
        polygon_cc = study.structures.structures["GTV"].polygon_volume_cc()
        assert abs(host.readout.stats.volume_cc - polygon_cc) / polygon_cc < 0.35

        # the tool selector: distance, then a drag in the axial view measures in mm
        side.tool.setCurrentIndex(side.tool.findData("distance"))
        assert viewer.state.tool == "distance"
        view = viewer.views["axial"]
        c = viewer.state.cursor_mm
        p, q = (c[0] - 40.0, c[1] - 30.0, c[2]), (c[0] + 40.0, c[1] + 30.0, c[2])
        (px, py), (qx, qy) = viewer.pixel_of("axial", p), viewer.pixel_of("axial", q)
        left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
        QTest.mousePress(view, left, none, QPoint(round(px), round(py)))
        QTest.mouseMove(view, QPoint(round(qx), round(qy)))
        QTest.mouseRelease(view, left, none, QPoint(round(qx), round(qy)))
        m = viewer.state.measurement
        assert m is not None and abs(m.distance_mm - 100.0) < 8.0
        assert side.distance.text() == f"Distance: {m.distance_mm:.1f} mm (axial view)"
        # paint is the segmentation panel's: choosing it there shows here, and the selector switches it there
        seg = window.panels["segmentation"]
        side.tool.setCurrentIndex(side.tool.findData("paint"))
        assert seg.paint.isChecked() and viewer.state.tool == "paint"
        side.tool.setCurrentIndex(side.tool.findData("window_level"))
        assert not seg.paint.isChecked() and viewer.state.tool == "window_level"
        seg.paint.setChecked(True)
        assert side.tool.currentData() == "paint"
        seg.paint.setChecked(False)
        assert side.tool.currentData() == "crosshair"
    finally:
        close(qtbot, window, ws)


def _centre_mm(volume: Any, i: int, j: int, k: int) -> NDArray[np.float64]:
    d = np.asarray(volume.direction, dtype=float).reshape(3, 3)
    return np.asarray(volume.origin_mm) + d @ (np.asarray(volume.spacing_mm) * np.asarray([i, j, k]))


def _pixel(viewer: Any, view: str, point: tuple[float, ...]) -> NDArray[np.int_]:
    image = viewer.view_pixels(view)
    x, y = viewer.pixel_of(view, point)
    return image[round(y), round(x)].astype(int)


def _import_damaged_rtstruct(ws: Any, folder: Path) -> None:
    damaged = pydicom.dcmread(ws.demo_folder / "rtstruct.dcm")
    damaged.SOPInstanceUID = damaged.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    damaged.SeriesInstanceUID = generate_uid()
    del damaged.ROIContourSequence  # no contours at all
    folder.mkdir()
    damaged.save_as(folder / "rs.dcm", enforce_file_format=True)
    user = UserRepository(ws.store).authenticate(RADIOLOGIST, ws.passwords[RADIOLOGIST])
    report = import_paths(ws.store, Session(user).authorize(Permission.IMPORT_STUDIES), [folder])
    assert report.ok, report


def test_damaged_and_missing_rt_objects(qtbot: Any, tmp_path: Path) -> None:
    ws = workspace(tmp_path, seed=1)
    _import_damaged_rtstruct(ws, tmp_path / "damaged")
    window = open_window(qtbot, ws)
    try:
        sign_in(qtbot, window, RADIOLOGIST, ws.passwords[RADIOLOGIST])
        host = _open(qtbot, window, ws.study_uid)
        study, viewer = window.study, host.viewer
        # a damaged structure set: a sentence in the viewer and the status bar; the CT and the dose are shown
        assert study.structures is None and study.dose is not None
        (note,) = study.overlay_notes
        assert note.startswith("The study's RT Structure Set could not be shown") and "Traceback" not in note
        assert host.notes.isVisible() and host.notes.text() == note
        assert note in window.statusBar().currentMessage()
        assert dict(viewer.state.structures("contours")) == {} and viewer.dose_sampler is not None
        assert_views_not_blank(qtbot, viewer)
        # no RT objects at all: the study opens, no sentence, the dose controls are off
        with ws.store.transaction() as conn:
            conn.execute("UPDATE series SET modality = 'OT' WHERE modality IN ('RTSTRUCT', 'RTDOSE')")
        host = _open(qtbot, window, ws.study_uid)
        assert window.study.structures is None and window.study.dose is None and window.study.overlay_notes == ()
        assert not host.notes.isVisible() and viewer.dose_sampler is None
        assert not host.sidebar.dose_wash.isEnabled() and "no RT Structure Set or RT Dose" in host.info.text()
        assert host.sidebar.structures.rowCount() == 0
        assert_views_not_blank(qtbot, viewer)
    finally:
        close(qtbot, window, ws)


def test_reopened_study_shows_the_engines_stored_segmentation(qtbot: Any, tmp_path: Path) -> None:
    """A SEG the engine stored (no mask version saved from the workstation) is shown when the study is opened."""
    from core.segmentation.result import SegmentationResult, write_seg_dataset
    from core.segmentation.service import store_segmentation
    from core.workstation.study import load_open_study

    ws = workspace(tmp_path, seed=2)
    user = UserRepository(ws.store).authenticate(RADIOLOGIST, ws.passwords[RADIOLOGIST])
    volume = load_open_study(ws.store, Session(user).authorize(Permission.READ_PATIENT_DATA), ws.study_uid).volume
    gtv = sitk.GetArrayFromImage(sitk.ReadImage(str(ws.demo_folder / "truth" / "gtv.nii.gz"))).astype(np.uint8)
    images = [pydicom.dcmread(p) for p in sorted((ws.demo_folder / "ct").glob("*.dcm"))]
    result = SegmentationResult({"gtv": gtv}, "test-model", "1", "cpu", {}, {"gtv": 1.0}, {"gtv": "GTV"},
                                volume.spacing_mm, volume.series_uid)  # fmt: skip
    store_segmentation(ws.store, Session(user).authorize(Permission.IMPORT_STUDIES), ws.study_uid,
                       write_seg_dataset(result, images), result)  # fmt: skip
    window = open_window(qtbot, ws)
    try:
        sign_in(qtbot, window, RADIOLOGIST, ws.passwords[RADIOLOGIST])
        host = _open(qtbot, window, ws.study_uid)
        qtbot.waitUntil(lambda: "gtv" in window.study.masks.masks, timeout=30000)
        qtbot.waitUntil(lambda: host.masks_up_to_date, timeout=20000)  # packed for the viewer in a worker
        study, viewer = window.study, host.viewer
        assert study.mask_source.startswith("stored segmentation version 1 (test-model 1")
        assert np.array_equal(study.masks.masks["gtv"], gtv) and not study.masks.can_undo
        assert "masks: stored segmentation version 1" in host.info.text()
        assert (
            "gtv" in viewer.state.structures("segmentation") and ("segmentation", "gtv") in host.sidebar.structures.rows
        )
        viewer.set_structure_style("gtv", colour=(255, 0, 255), opacity=1.0)
        for name in viewer.state.structures("contours"):
            viewer.set_structure_style(name, visible=False, layer="contours")
        viewer.state.set_dose_display(wash=False, isodose=False)
        viewer.set_cursor(_centre_mm(study.volume, *np.argwhere(gtv).mean(axis=0).round().astype(int)[::-1]))
        assert count(viewer.view_pixels("axial"), (255, 0, 255)) > 20, "the stored GTV is drawn"
    finally:
        close(qtbot, window, ws)

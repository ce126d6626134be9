"""ViewerPanel in real windows under Xvfb (Mesa software OpenGL): every assertion is on the state after real input
and on the rendered pixels read back from OpenGL (a blank or black render fails)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from core.dicom.volumes import Volume
from core.plan.dvh import DoseVolume
from core.plan.structures import PlanarStructure

pytestmark = pytest.mark.qt

SHAPE = (20, 64, 64)  # z, y, x
SPACING = (2.0, 2.0, 4.0)
ORIGIN = (-63.0, -63.0, -38.0)  # voxel centres at -63 + 2i, -38 + 4k: (0, 0, 0) lies between voxels


def synthetic_volume() -> Volume:
    z, y, x = np.indices(SHAPE)
    xs, ys = ORIGIN[0] + SPACING[0] * x, ORIGIN[1] + SPACING[1] * y
    array = np.full(SHAPE, -1000.0, dtype=np.float32)
    array[xs**2 + ys**2 < 55.0**2] = 40.0  # body
    array[(np.abs(xs) < 6) & (ys > 30) & (ys < 44)] = 700.0  # a "vertebra"
    array[(x == 5 + 2 * z) & (np.abs(ys) < 20)] = 1000.0  # a bar that moves with the slice number
    return Volume(array, SPACING, ORIGIN, (1, 0, 0, 0, 1, 0, 0, 0, 1), "1.2.3", "CT", "HU", ())


def square_mask() -> NDArray[np.uint8]:
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[6:14, 20:30, 36:46] = 1  # x from 9 to 27 mm, y from -23 to -5 mm
    return mask


@pytest.fixture(scope="module")
def shared_panel(qapp):  # type: ignore[no-untyped-def]
    """One panel (four OpenGL windows) for the module: creating it is the slow part under llvmpipe."""
    from ui.viewer import ViewerPanel

    widget = ViewerPanel()
    widget.resize(640, 640)
    widget.show()
    yield widget
    widget.close()
    widget.deleteLater()


@pytest.fixture
def panel(shared_panel, qtbot):  # type: ignore[no-untyped-def]
    """The shared panel reset to a fresh state with the synthetic volume shown."""
    qtbot.waitExposed(shared_panel)
    shared_panel.set_volume(synthetic_volume())  # drops overlays, centres the cursor, resets zoom and pan
    state = shared_panel.state
    state.set_preset("mediastinum")
    state.set_tool("crosshair")
    state.set_measurement(None)
    state.set_dose_display(wash=True, opacity=0.35, wash_min_gy=0.0, isodose=True, levels_gy=())
    shared_panel.render_now()
    return shared_panel


def pixel(panel, view: str, point: tuple[float, float, float]) -> NDArray[np.uint8]:  # type: ignore[no-untyped-def]
    image = panel.view_pixels(view)
    x, y = panel.pixel_of(view, point)
    return image[round(y), round(x)].astype(int)


def any_pixel_near(panel, view: str, point: tuple[float, float, float], test, radius: int = 2) -> bool:  # type: ignore[no-untyped-def]
    """True when a pixel within ``radius`` of where ``point`` is drawn satisfies ``test(rgb)``."""
    image = panel.view_pixels(view).astype(int)
    x, y = (round(v) for v in panel.pixel_of(view, point))
    patch = image[y - radius : y + radius + 1, x - radius : x + radius + 1].reshape(-1, 3)
    return any(test(rgb) for rgb in patch)


def test_first_image_is_not_blank_in_any_view(panel, qtbot) -> None:  # type: ignore[no-untyped-def]
    for view in ("axial", "coronal", "sagittal"):
        image = panel.view_pixels(view).astype(float)
        assert image.std() > 20.0, f"{view} view is blank"
        assert image.mean() > 5.0, f"{view} view is black"
    qtbot.waitUntil(lambda: panel.volume_view.volume is not None, timeout=10_000)
    render3d = panel.view_pixels("3d").astype(float)
    assert render3d.std() > 5.0, "the 3-D view is blank"
    assert "ray cast" in panel.volume_view.mapper_kind or "GPU" in panel.volume_view.mapper_kind
    whole = panel.grab_image()
    assert (whole.width(), whole.height()) == (panel.width(), panel.height())


def test_body_is_grey_and_air_is_black_in_the_mediastinum_window(panel) -> None:  # type: ignore[no-untyped-def]
    body = pixel(panel, "axial", (-30.0, 11.0, 2.0))
    air = pixel(panel, "axial", (-61.0, -61.0, 2.0))
    assert 60 < body.mean() < 200 and air.max() < 10  # 40 HU at W 350 / L 50 is mid grey


def test_scroll_moves_slice_and_changes_picture(panel, qtbot) -> None:  # type: ignore[no-untyped-def]
    state = panel.state
    assert state.slice_index("axial") == 9
    before = panel.view_pixels("axial")
    assert panel.scroll("axial", 3) == 12
    assert state.cursor_index()[2] == 12
    after = panel.view_pixels("axial")
    assert np.abs(after.astype(int) - before.astype(int)).sum() > 1000  # the bar moved
    # A real wheel event on the coronal view (one notch away from the user) scrolls it by one slice.
    view = panel.views["coronal"]
    centre = QPointF(view.width() / 2, view.height() / 2)
    event = QWheelEvent(centre, view.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)  # fmt: skip
    row = state.slice_index("coronal")
    QApplication.sendEvent(view, event)
    assert state.slice_index("coronal") == row + 1
    assert panel.scroll("axial", -100) == 0


def test_a_smaller_volume_replaces_a_larger_one(panel) -> None:  # type: ignore[no-untyped-def]
    panel.scroll("axial", 100)  # cursor on the last of 20 slices
    small = synthetic_volume()
    small = Volume(small.array[:6].copy(), SPACING, ORIGIN, small.direction, "1.2.4", "CT", "HU", ())
    panel.set_volume(small)
    assert panel.state.slice_index("axial") == 2  # centred in the new volume
    assert panel.view_pixels("axial").std() > 20.0


def test_presets_change_the_picture_the_right_way(panel) -> None:  # type: ignore[no-untyped-def]
    where = (-30.0, 11.0, 2.0)  # 40 HU
    panel.set_preset("lung")
    lung = pixel(panel, "axial", where).mean()
    panel.set_preset("bone")
    bone = pixel(panel, "axial", where).mean()
    assert panel.state.preset == "bone"
    assert lung > 200 and bone < 110  # soft tissue is near white in the lung window, dark in the bone window


def test_right_drag_adjusts_window_level(panel) -> None:  # type: ignore[no-untyped-def]
    view = panel.views["axial"]
    start = QPoint(view.width() // 2, view.height() // 2)
    window, level = panel.state.window, panel.state.level
    QTest.mousePress(view, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(view, start + QPoint(40, 0))
    QTest.mouseMove(view, start + QPoint(40, -20))
    QTest.mouseRelease(view, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, start + QPoint(40, -20))
    assert panel.state.window > window and panel.state.level < level
    assert panel.state.preset is None


def test_click_moves_the_linked_crosshair(panel, qtbot) -> None:  # type: ignore[no-untyped-def]
    target = (19.0, -15.0, -2.0)  # a voxel centre on the axial slice shown (9)
    x, y = panel.pixel_of("axial", target)
    with qtbot.waitSignal(panel.cursorChanged, timeout=2000) as blocker:
        QTest.mouseClick(panel.views["axial"], Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         QPoint(round(x), round(y)))  # fmt: skip
    assert np.allclose(panel.state.cursor_mm, target)
    assert np.allclose(blocker.args, target)
    assert panel.state.slice_index("coronal") == 24 and panel.state.slice_index("sagittal") == 41
    # The coronal view now shows the crosshair of the sagittal plane (orange) at x = 19 mm.
    assert any_pixel_near(panel, "coronal", (19.0, -15.0, -30.0), lambda c: c[0] > 200 and c[2] < 100)


def test_zoom_and_pan_move_the_picture(panel) -> None:  # type: ignore[no-untyped-def]
    point = (-30.0, 11.0, 2.0)
    x0, _y0 = panel.pixel_of("axial", point)
    panel.zoom_by(2.0)
    panel.render_now()
    x1, _y1 = panel.pixel_of("axial", point)
    assert x1 < x0 - 20  # a point left of centre moves further left
    panel.pan_by("axial", 10.0, 0.0)
    panel.render_now()
    x2, _ = panel.pixel_of("axial", point)
    assert x2 < x1 - 10


def test_segmentation_overlay_colour_opacity_visibility(panel) -> None:  # type: ignore[no-untyped-def]
    panel.set_segmentation({"gtv": square_mask(), "body": (panel.volume.array > -500).astype(np.uint8)},
                           {"gtv": (255, 0, 0), "body": (0, 0, 255)})  # fmt: skip
    panel.set_structure_style("gtv", opacity=1.0)
    panel.set_cursor((19.0, -15.0, 2.0))
    inside = pixel(panel, "axial", (13.0, -9.0, 2.0))  # inside the square, away from the crosshair lines
    assert inside[0] > 200 and inside[1] < 40 and inside[2] < 40
    coronal = pixel(panel, "coronal", (13.0, -15.0, 8.0))
    assert coronal[0] > 200 and coronal[1] < 40
    body_only = pixel(panel, "axial", (-30.0, 11.0, 2.0))
    assert body_only[2] > body_only[0] + 30  # the body tints blue
    panel.set_structure_style("gtv", visible=False)
    hidden = pixel(panel, "axial", (13.0, -9.0, 2.0))
    assert hidden[0] < 150
    stats = panel.roi_statistics("gtv")
    assert stats.n_voxels == 8 * 10 * 10 and abs(stats.mean_hu - 40.0) < 1e-6


def test_dose_wash_and_isodose_lines(panel) -> None:  # type: ignore[no-untyped-def]
    z, y, x = np.indices((12, 30, 30))
    centre = np.asarray([6.0, 7.0, 15.0])  # z, y, x index of the maximum
    r2 = ((z - centre[0]) * 5.0) ** 2 + ((y - centre[1]) * 5.0) ** 2 + ((x - centre[2]) * 5.0) ** 2
    dose = DoseVolume(60.0 * np.exp(-r2 / (2 * 15.0**2)), (-70.0, -70.0, -40.0), (5.0, 5.0, 5.0))
    panel.set_dose(dose)
    peak = (-70.0 + 5.0 * 15, -70.0 + 5.0 * 7, -40.0 + 5.0 * 6)  # (5, -35, -10) mm, a CT slice centre
    panel.set_cursor(peak)
    panel.state.set_dose_display(opacity=1.0)
    assert panel.state.dose.levels_gy  # default isodose levels were set from the maximum
    near_peak = (9.0, -31.0, -10.0)  # 5.7 mm from the maximum, off the crosshair lines
    hot = pixel(panel, "axial", near_peak)
    assert hot[0] > 200 and hot[2] < 60  # red at the maximum
    panel.state.set_dose_display(wash=False, isodose=False)
    plain = pixel(panel, "axial", near_peak)
    assert abs(int(plain[0]) - int(plain[2])) < 10  # grey again
    panel.state.set_dose_display(isodose=True, levels_gy=[30.0])
    image = panel.view_pixels("axial").astype(int)
    coloured = (np.abs(image[..., 0] - image[..., 1]) > 80) | (np.abs(image[..., 1] - image[..., 2]) > 80)
    assert coloured.sum() > 50  # the 30 Gy line is drawn


def test_rtstruct_contours_in_axial_and_coronal(panel) -> None:  # type: ignore[no-untyped-def]
    square = np.asarray([[-20.0, -20.0], [20.0, -20.0], [20.0, 20.0], [-20.0, 20.0]])
    planes = tuple(-38.0 + 4.0 * k for k in range(5, 15))
    structure = PlanarStructure("PTV", planes, tuple((square,) for _ in planes), 4.0, color=(0, 255, 0))
    panel.set_structures([structure])
    panel.set_cursor((0.0 + 1.0, 1.0, 2.0))

    def green(view: str) -> int:
        image = panel.view_pixels(view).astype(int)
        return int(((image[..., 1] > 240) & (image[..., 0] < 30) & (image[..., 2] < 30)).sum())  # not the crosshair

    assert green("axial") > 100 and green("coronal") > 100
    panel.set_structure_style("PTV", visible=False, layer="contours")
    assert green("axial") == 0
    panel.set_structures(None)
    assert dict(panel.state.structures("contours")) == {}


def test_distance_tool_measures_between_two_points(panel) -> None:  # type: ignore[no-untyped-def]
    panel.state.set_tool("distance")
    view = panel.views["axial"]
    p, q = (-21.0, -15.0, 2.0), (19.0, 15.0, 2.0)
    (px, py), (qx, qy) = panel.pixel_of("axial", p), panel.pixel_of("axial", q)
    QTest.mousePress(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(round(px), round(py)))
    QTest.mouseMove(view, QPoint(round(qx), round(qy)))
    QTest.mouseRelease(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(round(qx), round(qy)))
    m = panel.state.measurement
    assert m is not None and m.view == "axial"
    assert abs(m.distance_mm - 50.0) < 3.0  # pixel picking: within about one screen pixel at each end
    yellow = panel.view_pixels("axial").astype(int)
    assert ((yellow[..., 0] > 200) & (yellow[..., 1] > 200) & (yellow[..., 2] < 60)).sum() > 20


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from core.demo import generate_demo_study

    out = tmp_path_factory.mktemp("viewer-demo")
    manifest = generate_demo_study(out, seed=3, shape=(96, 96, 40), spacing_mm=(4.0, 4.0, 5.0))
    return out, manifest


@pytest.mark.slow
def test_demo_study_with_truth_masks_rtstruct_and_rtdose(panel, demo_study) -> None:  # type: ignore[no-untyped-def]
    import pydicom
    import SimpleITK as sitk  # noqa: N813

    from core.dicom.volumes import series_to_volume
    from core.plan.dose_io import read_dose_file
    from core.plan.structures import read_rtstruct_structures

    out, manifest = demo_study
    volume = series_to_volume([pydicom.dcmread(p) for p in sorted((out / "ct").glob("*.dcm"))])
    panel.set_volume(volume)
    masks = {
        p.name.split(".")[0]: sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in (out / "truth").glob("*.nii.gz")
    }
    panel.set_segmentation(masks, {"gtv": (255, 0, 0)})
    panel.set_structures(read_rtstruct_structures(pydicom.dcmread(out / "rtstruct.dcm")))
    panel.set_dose(read_dose_file(out / "rtdose.dcm"))
    panel.set_cursor(manifest.tumour_centre_mm)
    gtv = panel.roi_statistics("gtv")
    assert abs(gtv.volume_cc - manifest.structure_volumes_cc["gtv"]) < 1e-6
    assert -100.0 < gtv.mean_hu < 150.0  # soft-tissue tumour
    image = panel.view_pixels("axial").astype(int)
    assert image.std() > 20.0
    reddish = (image[..., 0] > 150) & (image[..., 1] < 90)
    assert reddish.sum() > 30  # GTV fill and the hottest dose colours around the crosshair
    assert dict(panel.state.structures("contours")), "RTSTRUCT ROIs are listed"
    whole = panel.grab_image()
    assert not whole.isNull() and whole.width() == panel.width()


def test_pack_labels_sets_bit_b_where_mask_b_is_non_zero() -> None:
    """The slab-wise packing against its definition: 10 masks (two layers), a depth that is no multiple of the slab,
    bool, uint8 and int16 masks with values other than 0 and 1."""
    from ui.viewer.overlays import BITS_PER_LAYER, pack_labels

    rng = np.random.default_rng(5)
    shape = (7, 33, 21)
    masks: dict[str, NDArray[np.generic]] = {}
    for i in range(10):
        values = rng.integers(-2, 3, size=shape)
        masks[f"m{i}"] = values.astype([np.int16, np.uint8, bool][i % 3]) if i % 3 else values.astype(np.int16)
    layers = pack_labels(masks, shape)
    assert [layer.names for layer in layers] == [tuple(f"m{i}" for i in range(8)), ("m8", "m9")]
    for index, layer in enumerate(layers):
        expected = np.zeros(shape, dtype=np.uint8)
        for b, name in enumerate(layer.names):
            expected |= (np.asarray(masks[name]) != 0).astype(np.uint8) << b
        assert np.array_equal(layer.bits, expected), index
    assert BITS_PER_LAYER == 8
    with pytest.raises(ValueError, match="must share a grid"):
        pack_labels({"bad": np.zeros((7, 33, 20))}, shape)

"""The headless viewer model: geometry, ViewState, presets, measurements (no Qt, no VTK)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.dicom.volumes import Volume
from core.viewer import WINDOW_PRESETS, ImageGeometry, ViewState, distance_mm, preset_for, roi_statistics
from core.viewer.state import FIELD_CURSOR, FIELD_STRUCTURES, FIELD_WINDOW_LEVEL, DistanceMeasurement

GEOMETRY = ImageGeometry.of((10, 20, 30), (0.5, 0.8, 2.5), (-10.0, -20.0, 100.0))


def make_state() -> tuple[ViewState, list[tuple[str, object]]]:
    state = ViewState()
    events: list[tuple[str, object]] = []
    state.subscribe(lambda field, value: events.append((field, value)))
    state.set_geometry(GEOMETRY)
    events.clear()
    return state, events


def test_presets_are_the_documented_clinical_windows() -> None:
    assert set(WINDOW_PRESETS) == {"lung", "mediastinum", "bone", "soft tissue", "brain"}
    assert (preset_for("lung").window, preset_for("lung").level) == (1500.0, -600.0)
    assert preset_for("Soft_Tissue").range_hu == (-160.0, 240.0)
    with pytest.raises(KeyError, match="there are"):
        preset_for("liver")


def test_geometry_round_trips_and_snaps() -> None:
    g = ImageGeometry.of((10, 20, 30), (0.5, 0.8, 2.5), (1.0, 2.0, 3.0), (0, 1, 0, 1, 0, 0, 0, 0, -1))
    p = g.point_of((3, 4, 5))
    assert np.allclose(g.index_of(p), (3, 4, 5))
    assert np.allclose(g.patient_of_display(g.display_of(p)), p)
    assert g.clamp_index((-4, 99, 4.6)) == (0, 19, 5)
    assert not g.is_axis_aligned and GEOMETRY.is_axis_aligned


def test_cursor_starts_centred_and_scroll_clamps_at_the_ends() -> None:
    state, events = make_state()
    assert state.cursor_index() == (14, 9, 4)
    assert state.scroll("axial", 3) == 7
    assert math.isclose(state.cursor_mm[2], 100.0 + 7 * 2.5)
    assert state.scroll("axial", 100) == 9
    assert state.scroll("sagittal", -100) == 0
    assert [f for f, _ in events] == [FIELD_CURSOR] * 3
    events.clear()
    state.scroll("axial", 1)  # already at the last slice: nothing changes, nothing is emitted
    assert events == []


def test_set_cursor_snaps_to_voxel_centres_inside_the_volume() -> None:
    state, _ = make_state()
    state.set_cursor((-9.6, 1000.0, 0.0))
    assert state.cursor_index() == (1, 19, 0)
    assert state.cursor_mm == GEOMETRY.point_of((1, 19, 0))
    with pytest.raises(ValueError, match="finite"):
        state.set_cursor((0.0, math.nan, 0.0))


def test_window_level_and_presets() -> None:
    state, events = make_state()
    assert state.preset == "mediastinum"
    state.set_preset("lung")
    assert (state.window, state.level, state.preset) == (1500.0, -600.0, "lung")
    state.adjust_window_level(100.0, -50.0)
    assert (state.window, state.level, state.preset) == (1600.0, -650.0, None)
    state.set_window_level(-5.0, 0.0)
    assert state.window == 1.0  # never zero or negative
    assert [f for f, _ in events] == [FIELD_WINDOW_LEVEL] * 3


def test_zoom_pan_limits_and_reset() -> None:
    state, _ = make_state()
    state.zoom_by(1000.0)
    assert state.zoom == 32.0
    state.pan_by("coronal", 5.0, -2.0)
    assert state.pan("coronal") == (5.0, -2.0) and state.pan("axial") == (0.0, 0.0)
    state.reset_view()
    assert state.zoom == 1.0 and state.pan("coronal") == (0.0, 0.0)


def test_structure_styles_per_layer() -> None:
    state, events = make_state()
    state.set_structures(["body", "gtv"], {"gtv": (255, 0, 0)})
    assert state.structures()["gtv"].colour == (255, 0, 0)
    assert state.structures()["body"].colour != (255, 0, 0)
    style = state.set_structure_style("gtv", opacity=0.8, visible=False)
    assert (style.opacity, style.visible) == (0.8, False)
    assert events[-1] == (FIELD_STRUCTURES, ("segmentation", "gtv"))
    assert dict(state.structures("contours")) == {}
    with pytest.raises(KeyError, match="body, gtv"):
        state.set_structure_style("heart", visible=False)
    with pytest.raises(ValueError, match="opacity"):
        state.set_structure_style("gtv", opacity=1.5)


def test_dose_display_and_tools() -> None:
    state, _ = make_state()
    d = state.set_dose_display(levels_gy=[50, 20], wash=False)
    assert d.levels_gy == (20.0, 50.0) and not d.wash
    state.set_tool("distance")
    assert state.tool == "distance"
    with pytest.raises(ValueError, match="unknown tool"):
        state.set_tool("lasso")  # type: ignore[arg-type]
    state.set_measurement(DistanceMeasurement("axial", (0.0, 0.0, 0.0), (3.0, 4.0, 0.0)))
    assert state.measurement is not None and state.measurement.distance_mm == 5.0


def test_unsubscribe_stops_callbacks() -> None:
    state = ViewState()
    seen: list[str] = []
    unsubscribe = state.subscribe(lambda field, _v: seen.append(field))
    state.set_zoom(2.0)
    unsubscribe()
    state.set_zoom(3.0)
    assert seen == ["zoom"]


def test_roi_statistics_and_distance() -> None:
    rng = np.random.default_rng(0)
    array = rng.normal(40.0, 10.0, size=(8, 16, 16)).astype(np.float32)
    mask = np.zeros(array.shape, dtype=np.uint8)
    mask[2:6, 4:12, 4:12] = 1
    volume = Volume(array, (0.5, 0.5, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), "1.2", "CT", "HU", ())
    stats = roi_statistics(volume, mask)
    inside = array[mask == 1].astype(np.float64)
    assert stats.n_voxels == 256
    assert math.isclose(stats.volume_cc, 256 * 0.5 * 0.5 * 2.0 / 1000.0)
    assert math.isclose(stats.mean_hu, inside.mean()) and math.isclose(stats.sd_hu, inside.std())
    assert 35.0 < stats.mean_hu < 45.0
    empty = roi_statistics(volume, np.zeros_like(mask))
    assert empty.n_voxels == 0 and math.isnan(empty.mean_hu)
    with pytest.raises(ValueError, match="same grid"):
        roi_statistics(volume, mask[:4])
    assert distance_mm((0, 0, 0), (1, 2, 2)) == 3.0

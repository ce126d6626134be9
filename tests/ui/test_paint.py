"""Painting masks with the mouse (issue 8: "edit masks with brush, eraser"): a left-drag in the axial view with the
segmentation panel's paint mode draws a brush stroke on that slice, one undo step; the eraser removes along its
path. Real window, real VTK views under Xvfb, real mouse events on the view widget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from core.segmentation.edit import stroke
from core.workstation.demo import RADIOLOGIST
from tests.ui.shell_support import close, open_window, sign_in, workspace

LEFT = Qt.MouseButton.LeftButton


def _mouse(widget: Any, kind: QEvent.Type, x: float, y: float, buttons: Any) -> None:
    pos = QPointF(x, y)
    event = QMouseEvent(kind, pos, widget.mapToGlobal(pos), LEFT, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def _drag(widget: Any, start: tuple[float, float], end: tuple[float, float], steps: int = 12) -> None:
    _mouse(widget, QEvent.Type.MouseButtonPress, *start, LEFT)
    for t in np.linspace(0.0, 1.0, steps)[1:]:
        x, y = start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])
        _mouse(widget, QEvent.Type.MouseMove, x, y, LEFT)
    _mouse(widget, QEvent.Type.MouseButtonRelease, *end, Qt.MouseButton.NoButton)


def test_brush_and_eraser_strokes_in_the_axial_view(qtbot: Any, tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    window = open_window(qtbot, ws)
    try:
        sign_in(qtbot, window, RADIOLOGIST, ws.passwords[RADIOLOGIST])
        window.open_study(ws.study_uid)
        qtbot.waitUntil(lambda: window.study is not None, timeout=60000)
        window.show_panel("viewer")
        viewer = window.panels["viewer"].viewer
        seg = window.panels["segmentation"]
        seg.label.setCurrentText("boost")
        seg.tool.setCurrentText("brush")
        seg.radius.setValue(6.0)
        seg.paint.setChecked(True)
        assert viewer.state.tool == "paint"
        z = viewer.state.cursor_index()[2]
        view = viewer.views["axial"]
        w, h = view.width(), view.height()
        start, end = (0.35 * w, 0.5 * h), (0.65 * w, 0.5 * h)
        _drag(view, start, end)
        qtbot.waitUntil(lambda: "boost" in window.study.masks.masks, timeout=20000)
        mask = window.study.masks.masks["boost"]
        on = np.argwhere(mask)
        assert set(on[:, 0]) == {z}, "a stroke in the axial view paints that slice only"
        spacing_x = window.study.volume.spacing_mm[0]
        length_mm = (end[0] - start[0]) * view.mm_per_pixel()
        extent_mm = (on[:, 2].max() - on[:, 2].min() + 1) * spacing_x
        assert abs(extent_mm - (length_mm + 2 * 6.0)) <= 3 * spacing_x, (extent_mm, length_mm)
        assert window.study.masks.can_undo
        painted = int(mask.sum())

        # the eraser along the left half of the same path removes voxels there and leaves the right end
        seg.tool.setCurrentText("eraser")
        _drag(view, start, ((start[0] + end[0]) / 2, start[1]))
        qtbot.waitUntil(lambda: int(window.study.masks.masks["boost"].sum()) < painted, timeout=20000)
        left = np.argwhere(window.study.masks.masks["boost"])
        assert left.size and left[:, 2].min() > on[:, 2].min() + 3
        # one undo step per stroke: undo brings the erased voxels back exactly
        seg.undo()
        assert int(window.study.masks.masks["boost"].sum()) == painted
        seg.paint.setChecked(False)
        assert viewer.state.tool == "crosshair"
    finally:
        close(qtbot, window, ws)


def test_stroke_disc_in_plane_and_ball() -> None:
    """core.segmentation.edit.stroke: a disc-brush along a path on one axial slice, clipped to the image."""
    shape, spacing = (10, 100, 100), (1.0, 1.0, 2.5)
    line = stroke(shape, spacing, [(5, 20, 20), (5.4, 20, 80)], 3.0, plane_axis=0)
    on = np.argwhere(line)
    assert set(on[:, 0]) == {5} and on[:, 1].min() == 17 and on[:, 1].max() == 23
    assert on[:, 2].min() == 17 and on[:, 2].max() == 83
    assert abs(int(line.sum()) - (60 * 7 + np.pi * 9)) < 25  # rectangle plus two half-disc caps
    ball = stroke(shape, spacing, [(5, 50, 50)], 5.0)
    assert set(np.argwhere(ball)[:, 0]) == {3, 4, 5, 6, 7}  # 5 mm along z at 2.5 mm spacing
    edge = stroke(shape, spacing, [(5, -10, 50), (5, 3, 50)], 2.0, plane_axis=0)
    assert edge.any() and np.argwhere(edge)[:, 1].min() == 0  # clipped to the image, not lost

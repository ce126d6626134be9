"""One 2-D view (axial, coronal or sagittal): the CT slice with window/level, segmentation label layers, the dose
colour wash and isodose lines, RTSTRUCT contours, the linked crosshair and a distance measurement.

Drawing happens in display coordinates (see core.viewer.geometry). Scrolling changes only the slice number of the
image mappers (one 2-D texture per layer is made and uploaded), never the volume. Mouse: wheel scrolls (Ctrl+wheel
zooms), the left button does the active tool (crosshair, distance, window/level, pan, zoom), right drag
window/level, middle drag pan. Qt events are handled here; VTK's own interactor style is not used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonCore import vtkLookupTable, vtkPoints, vtkUnsignedCharArray
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkContourFilter
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkImageSlice,
    vtkImageSliceMapper,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkTextActor,
)

from core.viewer.geometry import VIEW_AXIS, ImageGeometry, ViewName
from ui.viewer.vtk_util import image_from_array, prepare_render_window

__all__ = ["SliceView"]

# Screen right and up, as display axes, per view (radiological convention: axial seen from the feet, coronal from
# the front, sagittal from the patient's left).
_SCREEN: dict[ViewName, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
}
_ORIENT = {"axial": "SetOrientationToZ", "coronal": "SetOrientationToY", "sagittal": "SetOrientationToX"}


def _plane_shape(zyx: tuple[int, ...], axis: int) -> tuple[int, int]:
    """(rows, columns) of a one-thick [z, y, x] buffer whose thin axis is the xyz ``axis``."""
    z, y, x = zyx
    return {2: (y, x), 1: (z, x), 0: (z, y)}[axis]


def _lines_polydata(segments: NDArray[np.float64], colours: NDArray[np.uint8] | None = None) -> vtkPolyData:
    """Line segments (n, 2, 3) as polydata, with per-segment RGBA colours when given (stored on the points: each
    segment has its own two points, and point colours take the mapper's fast path, cell colours do not)."""
    poly = vtkPolyData()
    points = vtkPoints()
    n = len(segments)
    points.SetData(numpy_to_vtk(np.ascontiguousarray(segments.reshape(-1, 3)), deep=True))
    cells = vtkCellArray()
    offsets = np.arange(0, 2 * n + 1, 2, dtype=np.int64)
    conn = np.arange(2 * n, dtype=np.int64)
    cells.SetData(numpy_to_vtk(offsets, deep=True), numpy_to_vtk(conn, deep=True))
    poly.SetPoints(points)
    poly.SetLines(cells)
    if colours is not None and n:
        per_point = np.ascontiguousarray(np.repeat(colours, 2, axis=0))
        array = numpy_to_vtk(per_point, deep=True, array_type=vtkUnsignedCharArray().GetDataType())
        array.SetName("colours")
        poly.GetPointData().SetScalars(array)
    return poly


class SliceView(QVTKRenderWindowInteractor):  # type: ignore[misc]
    """A 2-D view. The panel owns the state; this class draws and turns mouse input into calls on ``handler``."""

    def __init__(self, view: ViewName, handler: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.view: ViewName = view
        self._handler = handler
        self._geometry: ImageGeometry | None = None
        self._drag: tuple[Qt.MouseButton, QPoint, str] | None = None
        window = self.GetRenderWindow()
        prepare_render_window(window)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        window.AddRenderer(self.renderer)
        self.renderer.GetActiveCamera().ParallelProjectionOn()
        # The slice: one RGB texture composited on the CPU (ui.viewer.compose), shown at the slice position.
        self.rgb: NDArray[np.uint8] = np.zeros((1, 1, 3), dtype=np.uint8)
        self.rgb_image: vtkImageData | None = None
        self.image_mapper = vtkImageSliceMapper()
        getattr(self.image_mapper, _ORIENT[view])()
        self.image_slice = vtkImageSlice()
        self.image_slice.SetMapper(self.image_mapper)
        # Nearest: voxel-true (as radiology viewers default to) and cheaper than linear under llvmpipe.
        self.image_slice.GetProperty().SetInterpolationTypeToNearest()
        self.image_slice.VisibilityOff()
        self.renderer.AddViewProp(self.image_slice)
        # Isodose lines: contours of the dose slice (on the CT slice grid).
        self.iso_lut = vtkLookupTable()
        self.isodose = vtkContourFilter()
        self.isodose_actor = self._line_actor(width=2.0)
        self.isodose_actor.GetMapper().SetInputConnection(self.isodose.GetOutputPort())
        self.isodose_actor.GetMapper().SetLookupTable(self.iso_lut)
        self.isodose_actor.GetMapper().UseLookupTableScalarRangeOn()
        self.isodose_actor.VisibilityOff()
        self.contour_actor = self._line_actor(width=2.0)
        self.contour_actor.GetMapper().SetColorModeToDirectScalars()
        self.contour_actor.GetMapper().SetScalarModeToUsePointData()
        self.cross_actor = self._line_actor(width=1.0)
        self.cross_actor.GetMapper().SetColorModeToDirectScalars()
        self.cross_actor.GetMapper().SetScalarModeToUsePointData()
        self.measure_actor = self._line_actor(width=2.0)
        self.measure_actor.GetProperty().SetColor(1.0, 1.0, 0.0)
        self.measure_actor.GetMapper().ScalarVisibilityOff()
        self.measure_text = vtkTextActor()
        self.measure_text.GetTextProperty().SetColor(1.0, 1.0, 0.0)
        self.measure_text.GetTextProperty().SetFontSize(14)
        self.measure_text.GetPositionCoordinate().SetCoordinateSystemToWorld()
        self.renderer.AddViewProp(self.measure_text)
        self.corner = vtkTextActor()
        self.corner.GetTextProperty().SetFontSize(13)
        self.corner.GetTextProperty().SetColor(0.9, 0.9, 0.9)
        self.corner.SetPosition(6, 6)
        self.renderer.AddViewProp(self.corner)
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setMinimumSize(160, 160)

    def _line_actor(self, width: float) -> vtkActor:
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(vtkPolyData())
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetLineWidth(width)
        actor.GetProperty().LightingOff()
        actor.PickableOff()
        self.renderer.AddActor(actor)
        return actor

    # -- content ----------------------------------------------------------------------------------------------
    def _slice_dims(self) -> tuple[int, int, int]:
        assert self._geometry is not None
        dims = list(self._geometry.size_xyz)
        dims[VIEW_AXIS[self.view]] = 1
        return dims[0], dims[1], dims[2]

    def set_geometry(self, geometry: ImageGeometry) -> None:
        """A new volume: allocate the slice's RGB buffer (shared with the texture's image)."""
        self._geometry = geometry
        x, y, z = self._slice_dims()
        self.rgb = np.zeros((z, y, x, 3), dtype=np.uint8)
        self.rgb_image = image_from_array(self.rgb, geometry.spacing_mm, geometry.origin_mm)
        self.image_mapper.SetInputData(self.rgb_image)
        self.image_mapper.SetSliceNumber(0)
        self.image_slice.VisibilityOn()
        self.isodose_actor.VisibilityOff()
        # Lines sit a little towards the camera so the image never hides them.
        right, up = _SCREEN[self.view]
        offset = np.cross(right, up) * 0.25 * min(geometry.spacing_mm)
        for actor in (self.isodose_actor, self.contour_actor, self.cross_actor, self.measure_actor):
            actor.SetPosition(*offset)

    def slice_buffer(self) -> NDArray[np.uint8]:
        """The RGB buffer in the 2-D shape of ``compose.slice_of`` (rows, columns, 3)."""
        return self.rgb.reshape(*_plane_shape(self.rgb.shape[:3], VIEW_AXIS[self.view]), 3)

    def image_updated(self, index: int) -> None:
        """The buffer was rewritten for slice ``index``: move the image there and re-upload it."""
        assert self._geometry is not None and self.rgb_image is not None
        origin = list(self._geometry.origin_mm)
        axis = VIEW_AXIS[self.view]
        origin[axis] += index * self._geometry.spacing_mm[axis]
        self.rgb_image.SetOrigin(*origin)
        self.rgb_image.Modified()

    def set_isodose(self, plane: tuple[NDArray[np.float32], Sequence[float], Sequence[float]] | None) -> None:
        """Trace isodose lines (the filter's levels) on a one-thick dose plane ([z, y, x], origin, spacing in
        display mm) through this view's slice; None hides them."""
        if plane is None:
            self.isodose_actor.VisibilityOff()
            return
        values, origin, spacing = plane
        self.isodose.SetInputData(image_from_array(values, spacing, origin))
        self.isodose_actor.VisibilityOn()

    def set_isodose_levels(
        self, levels_gy: Sequence[float], table: NDArray[np.floating], low: float, high: float
    ) -> None:
        """The dose levels the isodose lines are traced at, coloured by ``table`` (256 RGBA rows over low..high Gy)."""
        self.isodose.SetNumberOfContours(len(levels_gy))
        for n, level in enumerate(levels_gy):
            self.isodose.SetValue(n, level)
        self.iso_lut.SetNumberOfTableValues(len(table))
        self.iso_lut.SetTableRange(low, high)
        for n, rgba in enumerate(table):
            self.iso_lut.SetTableValue(n, rgba[0], rgba[1], rgba[2], 1.0)
        self.iso_lut.Modified()

    def set_lines(self, actor: vtkActor, segments: NDArray[np.float64], colours: NDArray[np.uint8] | None) -> None:
        actor.GetMapper().SetInputData(_lines_polydata(segments, colours))
        actor.SetVisibility(len(segments) > 0)

    def set_corner_text(self, text: str) -> None:
        self.corner.SetInput(text)

    # -- camera -----------------------------------------------------------------------------------------------
    def fit_camera(self, zoom: float, pan_mm: tuple[float, float], cursor_display: Sequence[float]) -> None:
        """Place the camera: the whole plane fits at zoom 1, the centre moved by ``pan_mm`` (screen right, up)."""
        if self._geometry is None:
            return
        g = self._geometry
        lo = np.asarray(g.origin_mm) - 0.5 * np.asarray(g.spacing_mm)
        size = np.asarray(g.size_xyz) * np.asarray(g.spacing_mm)
        right, up = (np.asarray(v) for v in _SCREEN[self.view])
        centre = lo + size / 2.0
        axis = VIEW_AXIS[self.view]
        centre[axis] = float(cursor_display[axis])
        width = float(np.abs(right) @ size)
        height = float(np.abs(up) @ size)
        w, h = max(self.width(), 1), max(self.height(), 1)
        half_height = max(height / 2.0, width / 2.0 * h / w) * 1.02
        focal = centre + right * pan_mm[0] + up * pan_mm[1]
        towards = np.cross(right, up)
        distance = float(np.linalg.norm(size)) * 2.0 + 10.0
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(*focal)
        camera.SetPosition(*(focal + towards * distance))
        camera.SetViewUp(*up)
        camera.SetParallelScale(half_height / zoom)
        camera.SetClippingRange(distance - float(np.linalg.norm(size)), distance + float(np.linalg.norm(size)))

    def display_point(self, x: float, y: float) -> NDArray[np.float64]:
        """Display-space point (mm) under widget pixel (x, y) (top-left origin), on the shown slice."""
        ratio = self._getPixelRatio()
        self.renderer.SetDisplayPoint(x * ratio, (self.height() - y) * ratio, 0.0)
        self.renderer.DisplayToWorld()
        world = self.renderer.GetWorldPoint()
        return np.asarray(world[:3]) / (world[3] or 1.0)

    def pixel_of(self, display_mm: Sequence[float]) -> tuple[float, float]:
        """Image pixel (x, y; top-left origin, device pixels) where a display-space point is drawn."""
        self.renderer.SetWorldPoint(float(display_mm[0]), float(display_mm[1]), float(display_mm[2]), 1.0)
        self.renderer.WorldToDisplay()
        dx, dy, _ = self.renderer.GetDisplayPoint()
        height = self.GetRenderWindow().GetSize()[1]
        return float(dx), float(height - 1 - dy)

    def mm_per_pixel(self) -> float:
        return 2.0 * float(self.renderer.GetActiveCamera().GetParallelScale()) / max(self.height(), 1)

    # -- Qt input ---------------------------------------------------------------------------------------------
    def _call(self, name: str) -> Callable[..., None]:
        return getattr(self._handler, name)  # type: ignore[no-any-return]

    def wheelEvent(self, ev: QWheelEvent) -> None:  # noqa: N802
        steps = round(ev.angleDelta().y() / 120) or (1 if ev.angleDelta().y() > 0 else -1)
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._call("zoom_by")(1.15**steps)
        else:
            self._call("scroll")(self.view, steps)
        ev.accept()

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802
        steps = {Qt.Key.Key_Up: 1, Qt.Key.Key_Down: -1, Qt.Key.Key_PageUp: 10, Qt.Key.Key_PageDown: -10}
        if ev.key() in steps:
            self._call("scroll")(self.view, steps[ev.key()])
            ev.accept()
        else:
            ev.ignore()

    def mousePressEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        pos = ev.position().toPoint()
        button = ev.button()
        tool = self._handler.state.tool if button == Qt.MouseButton.LeftButton else ""
        if button == Qt.MouseButton.RightButton:
            tool = "window_level"
        elif button == Qt.MouseButton.MiddleButton:
            tool = "pan"
        self._drag = (button, pos, tool)
        if tool == "crosshair":
            self._call("click")(self.view, pos.x(), pos.y())
        elif tool == "distance":
            self._call("measure_start")(self.view, pos.x(), pos.y())
        elif tool == "paint":
            self._call("paint_start")(self.view, pos.x(), pos.y())
        ev.accept()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        if self._drag is None:
            return
        button, last, tool = self._drag
        pos = ev.position().toPoint()
        dx, dy = pos.x() - last.x(), pos.y() - last.y()
        self._drag = (button, pos, tool)
        if tool == "crosshair":
            self._call("click")(self.view, pos.x(), pos.y())
        elif tool == "distance":
            self._call("measure_move")(self.view, pos.x(), pos.y())
        elif tool == "paint":
            self._call("paint_move")(self.view, pos.x(), pos.y())
        elif tool == "window_level":
            self._call("drag_window_level")(self.view, dx, dy)
        elif tool == "pan":
            scale = self.mm_per_pixel()
            self._call("pan_by")(self.view, -dx * scale, dy * scale)
        elif tool == "zoom":
            self._call("zoom_by")(1.01 ** (-dy))
        ev.accept()

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        if self._drag is not None and self._drag[2] == "paint":
            self._call("paint_end")(self.view)
        self._drag = None
        ev.accept()

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        self._call("reset_view")()
        ev.accept()

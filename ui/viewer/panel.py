"""ViewerPanel: axial, coronal and sagittal views with linked crosshairs and a 3-D view, in a 2x2 grid.

The panel owns a :class:`core.viewer.state.ViewState`; every change (from the mouse, from the methods below or from
other widgets calling the state directly) reaches the views through the state's callbacks. A view's slice image is
re-composited (ui.viewer.compose) only when its slice, the window/level or an overlay changed, and the views whose
picture changed are re-rendered once per event-loop turn (``render_now()`` renders them at once).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QPoint, QTimer, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QGridLayout, QWidget

from core.dicom.volumes import Volume
from core.plan.dvh import DoseVolume
from core.plan.structures import PlanarStructure, StructureSet
from core.viewer.geometry import VIEW_AXIS, VIEWS, ImageGeometry, Point, ViewName
from core.viewer.measure import RoiStats, roi_statistics
from core.viewer.state import (
    FIELD_CURSOR,
    FIELD_DOSE,
    FIELD_MEASUREMENT,
    FIELD_PAN,
    FIELD_STRUCTURES,
    FIELD_WINDOW_LEVEL,
    FIELD_ZOOM,
    Layer,
    ViewState,
)
from ui.viewer.compose import DoseSampler, SliceComposer
from ui.viewer.drawing import crosshair_segments, structure_lines
from ui.viewer.overlays import PackedSegmentation, default_isodose_levels, dose_colours, layer_table, pack_segmentation
from ui.viewer.slice_view import SliceView
from ui.viewer.tools import ViewerTools
from ui.viewer.volume_view import VolumeView
from ui.viewer.vtk_util import qimage, window_pixels

__all__ = ["ViewerPanel"]

Contours = StructureSet | Mapping[str, PlanarStructure] | Sequence[PlanarStructure]

#: While one view scrolls, the two linked views (whose crosshair line moves) are re-rendered at most this often.
LINKED_REFRESH_S = 0.05


class ViewerPanel(ViewerTools, QWidget):  # type: ignore[misc]
    """2x2: axial (top left), coronal (top right), sagittal (bottom left), 3-D (bottom right)."""

    cursorChanged = Signal(float, float, float)  # noqa: N815  (Qt naming)
    windowLevelChanged = Signal(float, float)  # noqa: N815
    measurementChanged = Signal(object)  # noqa: N815  (DistanceMeasurement | None)
    #: a finished brush stroke of the "paint" tool: (view name, [(z, y, x) continuous voxel index, ...])
    strokeFinished = Signal(str, object)  # noqa: N815

    def __init__(self, parent: QWidget | None = None, *, show_3d: bool = True) -> None:
        super().__init__(parent)
        self._state = ViewState()
        self._volume: Volume | None = None
        self._geometry: ImageGeometry | None = None
        self._composer: SliceComposer | None = None
        self._masks: dict[str, NDArray[np.uint8]] = {}
        self._contours: dict[str, PlanarStructure] = {}
        self._contour_key: dict[ViewName, tuple[object, ...] | None] = dict.fromkeys(VIEWS)
        self._shown: dict[ViewName, int] = dict.fromkeys(VIEWS, -1)
        self._dirty: set[str] = set()
        self._stroke: tuple[str, list[tuple[float, float, float]]] | None = None  # the paint tool's path
        self._lagging: set[str] = set()  # views whose picture changed only in their line overlays
        self._last_render: dict[str, float] = {}
        self._render_queued = False
        self._stale = False  # slices changed while the panel was hidden: composed when it shows
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.views: dict[ViewName, SliceView] = {v: SliceView(v, self, self) for v in VIEWS}
        layout.addWidget(self.views["axial"], 0, 0)
        layout.addWidget(self.views["coronal"], 0, 1)
        layout.addWidget(self.views["sagittal"], 1, 0)
        # the 3-D view (a fourth OpenGL window) is created one event-loop turn later, or at first use: building the
        # panel at sign-in then stalls the UI thread for three render windows, not four
        self._layout = layout
        self._volume_view: VolumeView | None = None
        self._slot_3d: QWidget | None = QWidget(self) if show_3d else None
        if self._slot_3d is not None:
            layout.addWidget(self._slot_3d, 1, 1)
            QTimer.singleShot(0, self, lambda: self.volume_view)
        self._state.subscribe(self._on_state)

    @property
    def volume_view(self) -> VolumeView | None:
        """The 3-D view (None when the panel was built without one); created on first use."""
        if self._volume_view is None and self._slot_3d is not None:
            self._volume_view = VolumeView(self)
            self._layout.replaceWidget(self._slot_3d, self._volume_view)
            self._slot_3d.deleteLater()
            self._slot_3d = None
        return self._volume_view

    # -- public API -------------------------------------------------------------------------------------------
    @property
    def state(self) -> ViewState:
        return self._state

    @property
    def volume(self) -> Volume | None:
        return self._volume

    @property
    def dose_sampler(self) -> DoseSampler | None:
        """The RT Dose shown (sampled on the volume's grid), None when there is none."""
        return self._composer.dose if self._composer is not None else None

    def set_volume(self, volume: Volume) -> None:
        """Show a volume (read in place, never copied for the 2-D views); overlays of a previous volume are
        dropped. The three slice views are rendered before this returns, the 3-D view on the next loop turn."""
        self._volume = volume
        self._geometry = ImageGeometry.of(volume.array.shape, volume.spacing_mm, volume.origin_mm, volume.direction)
        self._composer = SliceComposer(np.asarray(volume.array, dtype=np.float32))
        self._composer.window, self._composer.level = self._state.window, self._state.level
        self._masks, self._contours = {}, {}
        for view in self.views.values():
            view.set_geometry(self._geometry)
            view.set_isodose(None)
        self._shown = dict.fromkeys(VIEWS, -1)
        self._contour_key = dict.fromkeys(VIEWS)
        self._state.set_geometry(self._geometry)  # -> cursor at the centre -> slices composed
        self._state.set_structures([], layer="segmentation")
        self._state.set_structures([], layer="contours")
        self._fit_cameras()
        self.render_now()
        if self.volume_view is not None:
            self.volume_view.clear()
            self._request_render("3d")
            QTimer.singleShot(30, self, self._fill_3d)

    def set_segmentation(
        self,
        masks: Mapping[str, NDArray[np.generic]] | PackedSegmentation,
        colours: Mapping[str, tuple[int, int, int]] | None = None,
    ) -> None:
        """Segmentation masks ([z, y, x] on the volume grid) as filled overlays; larger structures are drawn under
        smaller ones. Colours not given come from core.viewer.state.DEFAULT_COLOURS. A PackedSegmentation (from
        ``pack_segmentation`` in a worker thread) is shown without touching the voxels here."""
        if self._geometry is None or self._composer is None:
            raise RuntimeError("set a volume before its segmentation")
        shape = tuple(self._geometry.shape)
        packed = masks if isinstance(masks, PackedSegmentation) else pack_segmentation(masks, shape)
        if packed.shape != shape:
            raise ValueError(f"the masks are {packed.shape}, the volume {shape}: they must share a grid")
        self._masks = dict(packed.masks)  # type: ignore[arg-type]
        self._composer.layers = list(packed.layers)
        self._composer.tables = [np.zeros((256, 4), np.float32) for _ in self._composer.layers]
        self._state.set_structures(list(packed.masks), colours, layer="segmentation")

    def set_structures(self, contours: Contours | None) -> None:
        """RTSTRUCT contours (a StructureSet, a name -> PlanarStructure mapping or a sequence) drawn as lines in
        their ROI display colours; None removes them."""
        if contours is None:
            found: dict[str, PlanarStructure] = {}
        elif isinstance(contours, StructureSet):
            found = dict(contours.structures)
        elif isinstance(contours, Mapping):
            found = dict(contours)
        else:
            found = {s.name: s for s in contours}
        self._contours = found
        self._state.set_structures(found, {n: s.color for n, s in found.items()}, layer="contours", opacity=1.0)

    def set_dose(self, dose: DoseVolume | None) -> None:
        """An RTDOSE grid as a colour wash and isodose lines (95/80/50/30 % of the maximum); None removes it."""
        if self._geometry is None or self._composer is None:
            raise RuntimeError("set a volume before its dose")
        sampler = DoseSampler(dose, self._geometry) if dose is not None else None
        self._composer.set_dose(sampler)
        if sampler is not None:
            self._state.set_dose_display(levels_gy=default_isodose_levels(sampler.max_gy))
        self._apply_dose_display()

    def set_preset(self, name: str) -> None:
        self._state.set_preset(name)

    def set_window_level(self, window: float, level: float) -> None:
        self._state.set_window_level(window, level)

    def set_cursor(self, point_mm: Sequence[float]) -> None:
        self._state.set_cursor(point_mm)

    def scroll(self, view: ViewName, steps: int) -> int:
        """Move ``view`` by ``steps`` slices; returns its new slice number."""
        return self._state.scroll(view, steps)

    def zoom_by(self, factor: float) -> None:
        self._state.zoom_by(factor)

    def pan_by(self, view: ViewName, dx_mm: float, dy_mm: float) -> None:
        self._state.pan_by(view, dx_mm, dy_mm)

    def reset_view(self) -> None:
        self._state.reset_view()

    def set_structure_style(self, name: str, *, colour: tuple[int, int, int] | None = None,
                            opacity: float | None = None, visible: bool | None = None,
                            layer: Layer = "segmentation") -> None:  # fmt: skip
        self._state.set_structure_style(name, colour=colour, opacity=opacity, visible=visible, layer=layer)

    def roi_statistics(self, name: str) -> RoiStats:
        """HU mean/SD, volume of a segmentation structure; KeyError naming the structures there are."""
        if self._volume is None or name not in self._masks:
            raise KeyError(f"no segmentation structure {name!r} (there are: {', '.join(self._masks) or 'none'})")
        return roi_statistics(self._volume, self._masks[name])

    def value_at_cursor(self) -> float:
        """The volume's value (HU for CT) at the crosshair."""
        if self._volume is None:
            return float("nan")
        i, j, k = self._state.cursor_index()
        return float(self._volume.array[k, j, i])

    def render_now(self, *, everything: bool = True) -> None:
        """Render every view whose picture changed (synchronously). With ``everything=False`` (what the event loop
        does) a linked view whose only change is a moved crosshair waits until LINKED_REFRESH_S has passed since
        it was last rendered, so a scrolled view is never held back by the two views that follow it."""
        self._render_queued = False
        now = time.perf_counter()
        due = {n for n in self._lagging if everything or now - self._last_render.get(n, 0.0) >= LINKED_REFRESH_S}
        names = self._dirty | due
        self._dirty, self._lagging = set(), self._lagging - names
        for name in names:
            widget = self.volume_view if name == "3d" else self.views.get(name)  # type: ignore[call-overload]
            if widget is not None and widget.isVisible():
                widget.GetRenderWindow().Render()
                self._last_render[name] = time.perf_counter()
        if self._lagging:
            wait = min(LINKED_REFRESH_S - (now - self._last_render.get(n, 0.0)) for n in self._lagging)
            QTimer.singleShot(max(1, round(1000 * wait)), self, lambda: self.render_now(everything=False))

    def view_pixels(self, view: ViewName | str) -> NDArray[np.uint8]:
        """The rendered picture of one view ("axial", "coronal", "sagittal" or "3d") as (h, w, 3) uint8."""
        self.render_now()
        widget = self.volume_view if view == "3d" else self.views[view]  # type: ignore[index]
        if widget is None:
            raise KeyError("this panel has no 3-D view")
        return window_pixels(widget.GetRenderWindow())

    def grab_view(self, view: ViewName | str) -> QImage:
        return qimage(self.view_pixels(view))

    def grab_image(self) -> QImage:
        """The whole panel as rendered (each view read back from its OpenGL window) in one image."""
        image = QImage(self.size(), QImage.Format.Format_RGB888)
        image.fill(0)
        painter = QPainter(image)
        widgets: list[tuple[str, QWidget]] = list(self.views.items())
        if self.volume_view is not None:
            widgets.append(("3d", self.volume_view))
        for name, widget in widgets:
            painter.drawImage(widget.mapTo(self, QPoint(0, 0)), self.grab_view(name))
        painter.end()
        return image

    def pixel_of(self, view: ViewName, point_mm: Sequence[float]) -> tuple[float, float]:
        """Where a patient point (mm) is drawn in ``view``'s picture (x, y pixels, top-left origin)."""
        if self._geometry is None:
            raise RuntimeError("no volume")
        return self.views[view].pixel_of(self._geometry.display_of(point_mm))

    # -- state -> views ---------------------------------------------------------------------------------------
    def _on_state(self, field: str, value: object) -> None:
        if self._geometry is None or self._composer is None:
            return
        if field == FIELD_CURSOR:
            self._update_slices()
            self.cursorChanged.emit(*self._state.cursor_mm)
        elif field == FIELD_WINDOW_LEVEL:
            self._composer.window, self._composer.level = self._state.window, self._state.level
            self._update_slices(recompose=True)
            self.windowLevelChanged.emit(self._state.window, self._state.level)
        elif field in (FIELD_ZOOM, FIELD_PAN):
            self._fit_cameras()
            self._request_render(*VIEWS)
        elif field == FIELD_STRUCTURES:
            if isinstance(value, tuple) and value[0] == "contours":
                self._contour_key = dict.fromkeys(VIEWS)
                self._update_slices()
            else:
                styles = self._state.structures("segmentation")
                layers = self._composer.layers
                self._composer.tables = [layer_table(layer, styles).astype(np.float32) for layer in layers]
                self._update_slices(recompose=True)
        elif field == FIELD_DOSE:
            self._apply_dose_display()
        elif field == FIELD_MEASUREMENT:
            self._update_measurement()
            self.measurementChanged.emit(value)

    def _request_render(self, *names: str, lagging: bool = False) -> None:
        if lagging:
            self._lagging.update(n for n in names if n not in self._dirty)
        else:
            self._dirty.update(names)
            self._lagging.difference_update(names)
        if not self._render_queued:
            self._render_queued = True
            QTimer.singleShot(0, self, lambda: self.render_now(everything=False))

    def _cursor_display(self) -> Point:
        assert self._geometry is not None
        return self._geometry.display_of(self._state.cursor_mm)

    def _update_slices(self, *, recompose: bool = False) -> None:
        """Re-composite the views whose slice moved (all with ``recompose``), then the line overlays. A hidden panel
        (another tab in front) composes nothing until it shows: new masks arriving then cost the UI thread nothing."""
        assert self._geometry is not None and self._composer is not None
        if not self.isVisible():
            self._stale = True
            return
        display = self._state.dose
        changed: list[ViewName] = []
        for name, view in self.views.items():
            index = self._state.slice_index(name)
            if index == self._shown[name] and not recompose:
                continue
            changed.append(name)
            self._shown[name] = index
            self._composer.compose(name, index, view.slice_buffer())
            view.image_updated(index)
            sampler = self._composer.dose
            lines = sampler is not None and display.isodose and bool(display.levels_gy)
            view.set_isodose(sampler.line_plane(name, index) if sampler is not None and lines else None)
        cursor, display_cursor = self._state.cursor_mm, self._cursor_display()
        styles = self._state.structures("contours")
        for name, view in self.views.items():
            view.set_lines(view.cross_actor, *crosshair_segments(name, display_cursor, self._geometry))
            key = (round(cursor[VIEW_AXIS[name]], 4),)
            if self._contour_key[name] != key:
                self._contour_key[name] = key
                view.set_lines(
                    view.contour_actor, *structure_lines(name, cursor, self._contours, styles, self._geometry)
                )
        self._update_measurement(request=False)
        self._update_corner_text()
        self._request_render(*changed)
        self._request_render(*(v for v in VIEWS if v not in changed), lagging=True)

    def _apply_dose_display(self) -> None:
        assert self._composer is not None
        display, sampler = self._state.dose, self._composer.dose
        self._composer.dose_wash = sampler is not None and display.wash and display.opacity > 0.0
        if sampler is not None:
            (low, high), table = dose_colours(256, display, sampler.max_gy)
            self._composer.dose_table, self._composer.dose_range = table.astype(np.float32), (low, high)
            for view in self.views.values():
                view.set_isodose_levels(display.levels_gy, table, low, high)
        self._update_slices(recompose=True)

    def _update_corner_text(self) -> None:
        assert self._geometry is not None
        w, lv = self._state.window, self._state.level
        for name, view in self.views.items():
            text = (
                f"{name} {self._state.slice_index(name) + 1}/{self._geometry.slice_count(name)}   W {w:.0f} L {lv:.0f}"
            )
            if name == "axial" and self._volume is not None:
                text += f"   {self.value_at_cursor():.0f} {self._volume.units}"
            view.set_corner_text(text)

    def _fit_cameras(self) -> None:
        if self._geometry is None:
            return
        c = self._cursor_display()
        for name, view in self.views.items():
            view.fit_camera(self._state.zoom, self._state.pan(name), c)

    def showEvent(self, event: Any) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale and self._geometry is not None:
            self._stale = False
            self._update_slices(recompose=True)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit_cameras()
        self._request_render(*VIEWS)

    def _fill_3d(self) -> None:
        if self.volume_view is None or self._volume is None or self._geometry is None:
            return
        if not self.volume_view.isVisible():  # a hidden panel (another tab): fill the 3-D view once it shows
            QTimer.singleShot(250, self, self._fill_3d)
            return
        self.volume_view.set_volume(self._volume.array, self._geometry)
        self._request_render("3d")

"""The viewer's mouse tools as a mixin of ViewerPanel: window/level drag, crosshair click, distance measurement and
the paint tool's strokes, plus the measurement's line overlay. They act on the panel's ViewState; the views follow
through the state's callbacks (ui.viewer.panel)."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.viewer.geometry import VIEW_AXIS, VIEWS, Point, ViewName
from core.viewer.state import DistanceMeasurement

__all__ = ["ViewerTools"]


class ViewerTools:
    """Needs from the panel: _state (ViewState), _geometry (ImageGeometry | None), views (name -> SliceView),
    _stroke, strokeFinished (signal), _cursor_display() and _request_render(*names)."""

    _state: Any
    _geometry: Any
    _stroke: tuple[str, list[tuple[float, float, float]]] | None
    views: Any
    strokeFinished: Any  # noqa: N815  (Qt naming, defined on the panel)

    def _cursor_display(self) -> Point:
        raise NotImplementedError

    def _request_render(self, *names: str, lagging: bool = False) -> None:
        raise NotImplementedError

    def drag_window_level(self, view: ViewName, dx_px: float, dy_px: float) -> None:
        """A window/level drag of (dx, dy) pixels: right widens the window, down raises the level."""
        del view
        scale = max(1.0, self._state.window / 256.0)
        self._state.adjust_window_level(dx_px * scale, dy_px * scale)

    def click(self, view: ViewName, x: float, y: float) -> None:
        """Move the crosshair to widget pixel (x, y) of ``view``."""
        point = self._pick(view, x, y)
        if point is not None:
            self._state.set_cursor(point)

    def measure_start(self, view: ViewName, x: float, y: float) -> None:
        point = self._pick(view, x, y)
        if point is not None:
            self._state.set_measurement(DistanceMeasurement(view, point, point))

    def measure_move(self, view: ViewName, x: float, y: float) -> None:
        m, point = self._state.measurement, self._pick(view, x, y)
        if m is not None and point is not None and m.view == view:
            self._state.set_measurement(DistanceMeasurement(view, m.p_mm, point))

    def paint_start(self, view: ViewName, x: float, y: float) -> None:
        self._stroke = (view, [])
        self.paint_move(view, x, y)

    def paint_move(self, view: ViewName, x: float, y: float) -> None:
        stroke = self._stroke
        point = self._pick(view, x, y)
        if stroke is None or stroke[0] != view or point is None or self._geometry is None:
            return
        i, j, k = self._geometry.index_of(point)
        stroke[1].append((float(k), float(j), float(i)))

    def paint_end(self, view: ViewName) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is not None and stroke[0] == view and stroke[1]:
            self.strokeFinished.emit(view, list(stroke[1]))

    def _pick(self, view: ViewName, x: float, y: float) -> Point | None:
        if self._geometry is None:
            return None
        point = self.views[view].display_point(x, y)
        axis = VIEW_AXIS[view]
        point[axis] = self._cursor_display()[axis]
        return self._geometry.patient_of_display(point)

    def _update_measurement(self, *, request: bool = True) -> None:
        m, g = self._state.measurement, self._geometry
        for name, view in self.views.items():
            if m is None or g is None or m.view != name:
                shown = False
            else:
                shown = g.clamp_index(g.index_of(m.p_mm))[VIEW_AXIS[name]] == self._state.slice_index(name)
            if shown and m is not None and g is not None:
                p, q = g.display_of(m.p_mm), g.display_of(m.q_mm)
                view.set_lines(view.measure_actor, np.asarray([[p, q]]), None)
                view.measure_text.SetInput(f"{m.distance_mm:.1f} mm")
                view.measure_text.GetPositionCoordinate().SetValue(*q)
                view.measure_text.VisibilityOn()
            else:
                view.measure_actor.VisibilityOff()
                view.measure_text.VisibilityOff()
        if request:
            self._request_render(*VIEWS)

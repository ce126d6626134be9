"""The viewer's observable state: what is shown, independent of how it is drawn (no Qt, no VTK).

Renderers (ui/viewer) observe a :class:`ViewState` through plain-Python callbacks, ``callback(field, value)``,
called synchronously after every change that actually changes something. Field names are the ``FIELD_*``
constants. Every mutation goes through a method, so the state stays valid (cursor inside the volume and on a voxel
centre, window > 0, zoom within limits, opacity in [0, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

from core.viewer.geometry import VIEW_AXIS, VIEWS, ImageGeometry, Point, ViewName
from core.viewer.measure import distance_mm
from core.viewer.presets import DEFAULT_PRESET, WINDOW_PRESETS, preset_for

__all__ = [
    "DEFAULT_COLOURS",
    "FIELD_CURSOR",
    "FIELD_DOSE",
    "FIELD_GEOMETRY",
    "FIELD_MEASUREMENT",
    "FIELD_PAN",
    "FIELD_STRUCTURES",
    "FIELD_TOOL",
    "FIELD_WINDOW_LEVEL",
    "FIELD_ZOOM",
    "DistanceMeasurement",
    "DoseDisplay",
    "Layer",
    "Listener",
    "StructureStyle",
    "Tool",
    "ViewState",
]


FIELD_GEOMETRY = "geometry"
FIELD_CURSOR = "cursor"
FIELD_WINDOW_LEVEL = "window_level"
FIELD_ZOOM = "zoom"
FIELD_PAN = "pan"
FIELD_STRUCTURES = "structures"
FIELD_DOSE = "dose"
FIELD_TOOL = "tool"
FIELD_MEASUREMENT = "measurement"

Listener = Callable[[str, object], None]
Layer = Literal["segmentation", "contours"]
#: "paint": left-drag draws a brush stroke (the viewer reports the path; the segmentation panel edits the mask).
Tool = Literal["crosshair", "distance", "window_level", "pan", "zoom", "paint"]
TOOLS: tuple[Tool, ...] = ("crosshair", "distance", "window_level", "pan", "zoom", "paint")

#: Colours for structures that come without one (RGB 0-255), cycled in order.
DEFAULT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
)  # fmt: skip

MIN_ZOOM, MAX_ZOOM = 0.25, 32.0
MIN_WINDOW = 1.0


@dataclass(frozen=True)
class StructureStyle:
    """How one structure is drawn: RGB colour (0-255), fill opacity in [0, 1], shown or hidden."""

    colour: tuple[int, int, int]
    opacity: float = 0.4
    visible: bool = True

    def __post_init__(self) -> None:
        if len(self.colour) != 3 or any(not 0 <= int(c) <= 255 for c in self.colour):
            raise ValueError(f"colour must be three values 0-255, got {self.colour!r}")
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {self.opacity}")


@dataclass(frozen=True)
class DoseDisplay:
    """Dose colour wash (on/off, opacity, lowest dose washed in Gy) and isodose lines (on/off, levels in Gy)."""

    wash: bool = True
    opacity: float = 0.35
    wash_min_gy: float = 0.0
    isodose: bool = True
    levels_gy: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError(f"dose opacity must be in [0, 1], got {self.opacity}")


@dataclass(frozen=True)
class DistanceMeasurement:
    """A distance between two patient points (mm) drawn on ``view``."""

    view: ViewName
    p_mm: Point
    q_mm: Point

    @property
    def distance_mm(self) -> float:
        return distance_mm(self.p_mm, self.q_mm)


class ViewState:
    """Cursor (patient mm, on a voxel centre), window/level (HU) and preset name, zoom and per-view pan, styles of
    segmentation and RTSTRUCT structures, dose display, the active mouse tool and the current measurement."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._geometry: ImageGeometry | None = None
        self._cursor: Point = (0.0, 0.0, 0.0)
        default = WINDOW_PRESETS[DEFAULT_PRESET]
        self._window, self._level = default.window, default.level
        self._preset: str | None = default.name
        self._zoom = 1.0
        self._pan: dict[ViewName, tuple[float, float]] = {v: (0.0, 0.0) for v in VIEWS}
        self._styles: dict[Layer, dict[str, StructureStyle]] = {"segmentation": {}, "contours": {}}
        self._dose = DoseDisplay()
        self._tool: Tool = "crosshair"
        self._measurement: DistanceMeasurement | None = None

    # -- observers --------------------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(field, value)`` after every change; returns a function that unsubscribes it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, field: str, value: object) -> None:
        for listener in list(self._listeners):
            listener(field, value)

    # -- geometry and cursor ----------------------------------------------------------------------------------
    @property
    def geometry(self) -> ImageGeometry | None:
        return self._geometry

    def set_geometry(self, geometry: ImageGeometry | None) -> None:
        """A new volume: the cursor goes to its centre, zoom and pan are reset, the measurement is dropped."""
        self._geometry = geometry
        self._zoom = 1.0
        self._pan = {v: (0.0, 0.0) for v in VIEWS}
        self._measurement = None
        self._cursor = geometry.centre() if geometry is not None else (0.0, 0.0, 0.0)
        self._emit(FIELD_GEOMETRY, geometry)
        self._emit(FIELD_CURSOR, self._cursor)

    @property
    def cursor_mm(self) -> Point:
        """The crosshair position (patient mm, x, y, z)."""
        return self._cursor

    def set_cursor(self, point_mm: Iterable[float]) -> None:
        """Move the crosshair to the voxel centre nearest ``point_mm`` (clamped into the volume)."""
        p = tuple(float(v) for v in point_mm)
        if len(p) != 3 or not all(math.isfinite(v) for v in p):
            raise ValueError(f"a cursor needs three finite coordinates (mm), got {p!r}")
        snapped = self._geometry.snap(p) if self._geometry is not None else (p[0], p[1], p[2])
        if snapped != self._cursor:
            self._cursor = snapped
            self._emit(FIELD_CURSOR, snapped)

    def slice_index(self, view: ViewName) -> int:
        """The slice number ``view`` shows (0-based along its axis)."""
        if self._geometry is None:
            return 0
        return self._geometry.clamp_index(self._geometry.index_of(self._cursor))[VIEW_AXIS[view]]

    def cursor_index(self) -> tuple[int, int, int]:
        """The cursor voxel as (x=column, y=row, z=slice)."""
        if self._geometry is None:
            return 0, 0, 0
        return self._geometry.clamp_index(self._geometry.index_of(self._cursor))

    def set_slice(self, view: ViewName, index: int) -> None:
        """Show slice ``index`` (clamped) in ``view``; the other two coordinates of the cursor stay."""
        if self._geometry is None:
            return
        ijk = list(self.cursor_index())
        ijk[VIEW_AXIS[view]] = int(index)
        self.set_cursor(self._geometry.point_of(self._geometry.clamp_index(ijk)))

    def scroll(self, view: ViewName, steps: int) -> int:
        """Move ``view`` by ``steps`` slices (clamped at the ends); returns the new slice number."""
        self.set_slice(view, self.slice_index(view) + int(steps))
        return self.slice_index(view)

    # -- window / level ---------------------------------------------------------------------------------------
    @property
    def window(self) -> float:
        return self._window

    @property
    def level(self) -> float:
        return self._level

    @property
    def preset(self) -> str | None:
        """The preset name while window/level are exactly a preset's, else None."""
        return self._preset

    def set_window_level(self, window: float, level: float) -> None:
        window = max(MIN_WINDOW, float(window))
        level = float(level)
        if not (math.isfinite(window) and math.isfinite(level)):
            raise ValueError("window and level must be finite (HU)")
        if (window, level) == (self._window, self._level):
            return
        self._window, self._level = window, level
        self._preset = next((p.name for p in WINDOW_PRESETS.values() if (p.window, p.level) == (window, level)), None)
        self._emit(FIELD_WINDOW_LEVEL, (window, level))

    def adjust_window_level(self, d_window: float, d_level: float) -> None:
        """Change window and level by these amounts (HU), as a mouse drag does."""
        self.set_window_level(self._window + d_window, self._level + d_level)

    def set_preset(self, name: str) -> None:
        preset = preset_for(name)
        self.set_window_level(preset.window, preset.level)

    # -- zoom and pan -----------------------------------------------------------------------------------------
    @property
    def zoom(self) -> float:
        """Magnification of the 2-D views (1 = the whole volume fits)."""
        return self._zoom

    def set_zoom(self, zoom: float) -> None:
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, float(zoom)))
        if zoom != self._zoom:
            self._zoom = zoom
            self._emit(FIELD_ZOOM, zoom)

    def zoom_by(self, factor: float) -> None:
        self.set_zoom(self._zoom * float(factor))

    def pan(self, view: ViewName) -> tuple[float, float]:
        """Offset (mm, in the view's horizontal and vertical screen directions) of ``view``'s centre."""
        return self._pan[view]

    def set_pan(self, view: ViewName, offset_mm: tuple[float, float]) -> None:
        offset = (float(offset_mm[0]), float(offset_mm[1]))
        if offset != self._pan[view]:
            self._pan[view] = offset
            self._emit(FIELD_PAN, (view, offset))

    def pan_by(self, view: ViewName, dx_mm: float, dy_mm: float) -> None:
        x, y = self._pan[view]
        self.set_pan(view, (x + dx_mm, y + dy_mm))

    def reset_view(self) -> None:
        """Zoom 1, no pan."""
        self.set_zoom(1.0)
        for view in VIEWS:
            self.set_pan(view, (0.0, 0.0))

    # -- structures -------------------------------------------------------------------------------------------
    def structures(self, layer: Layer = "segmentation") -> Mapping[str, StructureStyle]:
        """Styles by structure name of a layer (segmentation masks or RTSTRUCT contours), read-only."""
        return MappingProxyType(self._styles[layer])

    def set_structures(
        self, names: Iterable[str], colours: Mapping[str, tuple[int, int, int]] | None = None,
        layer: Layer = "segmentation", opacity: float = 0.4,
    ) -> None:  # fmt: skip
        """Replace a layer's structures; colours not given come from :data:`DEFAULT_COLOURS`."""
        colours = colours or {}
        styles: dict[str, StructureStyle] = {}
        for n, name in enumerate(names):
            colour = colours.get(name, DEFAULT_COLOURS[n % len(DEFAULT_COLOURS)])
            styles[name] = StructureStyle((int(colour[0]), int(colour[1]), int(colour[2])), opacity)
        self._styles[layer] = styles
        self._emit(FIELD_STRUCTURES, (layer, None))

    def set_structure_style(
        self, name: str, *, colour: tuple[int, int, int] | None = None, opacity: float | None = None,
        visible: bool | None = None, layer: Layer = "segmentation",
    ) -> StructureStyle:  # fmt: skip
        """Change the colour, opacity or visibility of one structure; KeyError naming the structures there are."""
        styles = self._styles[layer]
        if name not in styles:
            raise KeyError(f"no structure {name!r} in the {layer} layer (there are: {', '.join(styles) or 'none'})")
        old = styles[name]
        new = replace(
            old,
            colour=old.colour if colour is None else (int(colour[0]), int(colour[1]), int(colour[2])),
            opacity=old.opacity if opacity is None else float(opacity),
            visible=old.visible if visible is None else bool(visible),
        )
        if new != old:
            styles[name] = new
            self._emit(FIELD_STRUCTURES, (layer, name))
        return new

    # -- dose -------------------------------------------------------------------------------------------------
    @property
    def dose(self) -> DoseDisplay:
        return self._dose

    def set_dose_display(
        self, *, wash: bool | None = None, opacity: float | None = None, wash_min_gy: float | None = None,
        isodose: bool | None = None, levels_gy: Iterable[float] | None = None,
    ) -> DoseDisplay:  # fmt: skip
        d = self._dose
        new = DoseDisplay(
            wash=d.wash if wash is None else bool(wash),
            opacity=d.opacity if opacity is None else float(opacity),
            wash_min_gy=d.wash_min_gy if wash_min_gy is None else float(wash_min_gy),
            isodose=d.isodose if isodose is None else bool(isodose),
            levels_gy=d.levels_gy if levels_gy is None else tuple(sorted(float(v) for v in levels_gy)),
        )
        if new != d:
            self._dose = new
            self._emit(FIELD_DOSE, new)
        return new

    # -- tools and measurements -------------------------------------------------------------------------------
    @property
    def tool(self) -> Tool:
        """What the left mouse button does in the 2-D views."""
        return self._tool

    def set_tool(self, tool: Tool) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r} (there are: {', '.join(TOOLS)})")
        if tool != self._tool:
            self._tool = tool
            self._emit(FIELD_TOOL, tool)

    @property
    def measurement(self) -> DistanceMeasurement | None:
        return self._measurement

    def set_measurement(self, measurement: DistanceMeasurement | None) -> None:
        if measurement != self._measurement:
            self._measurement = measurement
            self._emit(FIELD_MEASUREMENT, measurement)

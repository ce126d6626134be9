"""Line overlays of the slice views, as numpy segments in display coordinates: crosshairs, RTSTRUCT contours."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from core.plan.structures import PlanarStructure
from core.viewer.geometry import VIEW_AXIS, VIEWS, ImageGeometry, Point, ViewName
from core.viewer.state import StructureStyle
from ui.viewer.overlays import contour_segments

__all__ = ["PLANE_COLOURS", "crosshair_segments", "structure_lines", "volume_bounds"]

#: Crosshair colour of each view's plane (as seen in the other two views).
PLANE_COLOURS: dict[ViewName, tuple[float, float, float]] = {
    "axial": (0.25, 0.55, 1.0),
    "coronal": (0.2, 0.85, 0.3),
    "sagittal": (1.0, 0.55, 0.15),
}


def volume_bounds(geometry: ImageGeometry) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(low, high) corners of the volume in display coordinates (voxel edges, mm)."""
    lo = np.asarray(geometry.origin_mm) - 0.5 * np.asarray(geometry.spacing_mm)
    return lo, lo + np.asarray(geometry.size_xyz) * np.asarray(geometry.spacing_mm)


def crosshair_segments(
    view: ViewName, cursor_display: Point, geometry: ImageGeometry
) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
    """The other two views' planes seen in ``view``: two lines through the cursor, in their planes' colours."""
    lo, hi = volume_bounds(geometry)
    c = np.asarray(cursor_display, dtype=np.float64)
    segments, colours = [], []
    for other in VIEWS:
        if other == view:
            continue
        along = ({0, 1, 2} - {VIEW_AXIS[view], VIEW_AXIS[other]}).pop()
        a, b = c.copy(), c.copy()
        a[along], b[along] = lo[along], hi[along]
        segments.append([a, b])
        colours.append([round(255 * v) for v in PLANE_COLOURS[other]] + [255])
    return np.asarray(segments), np.asarray(colours, dtype=np.uint8)


def structure_lines(
    view: ViewName,
    cursor_mm: Point,
    structures: Mapping[str, PlanarStructure],
    styles: Mapping[str, StructureStyle],
    geometry: ImageGeometry,
) -> tuple[NDArray[np.float64], NDArray[np.uint8] | None]:
    """RTSTRUCT contour segments of the visible structures on ``view``'s plane, display coordinates, with RGBA
    colours (alpha = the style's opacity)."""
    parts, colours = [], []
    for name, structure in structures.items():
        style = styles.get(name)
        if style is None or not style.visible:
            continue
        seg = contour_segments(structure, view, cursor_mm)
        if len(seg):
            parts.append(seg)
            colours.append(np.tile([*style.colour, round(255 * style.opacity)], (len(seg), 1)))
    if not parts:
        return np.zeros((0, 2, 3)), None
    segments = np.concatenate(parts)
    if not geometry.is_axis_aligned:
        flat = np.asarray([geometry.display_of(p) for p in segments.reshape(-1, 3)])
        segments = flat.reshape(-1, 2, 3)
    return segments, np.concatenate(colours).astype(np.uint8)

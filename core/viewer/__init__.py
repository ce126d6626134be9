"""Headless viewer logic: the observable view state, window presets, geometry and measurements (no Qt, no VTK)."""

from __future__ import annotations

from core.viewer.geometry import VIEW_AXIS, VIEWS, ImageGeometry, ViewName
from core.viewer.measure import RoiStats, distance_mm, roi_statistics
from core.viewer.presets import DEFAULT_PRESET, WINDOW_PRESETS, WindowPreset, preset_for
from core.viewer.state import DistanceMeasurement, DoseDisplay, StructureStyle, ViewState

__all__ = [
    "DEFAULT_PRESET",
    "VIEWS",
    "VIEW_AXIS",
    "WINDOW_PRESETS",
    "DistanceMeasurement",
    "DoseDisplay",
    "ImageGeometry",
    "RoiStats",
    "StructureStyle",
    "ViewName",
    "ViewState",
    "WindowPreset",
    "distance_mm",
    "preset_for",
    "roi_statistics",
]

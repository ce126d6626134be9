"""The image viewer (VTK in Qt): slice views with linked crosshairs, a 3-D view, overlays and measurements."""

from __future__ import annotations

from ui.viewer.panel import ViewerPanel

__all__ = ["ViewerPanel"]

"""Per-view pixel checks of the viewer inside the workstation: each view is read back from its own OpenGL window
(ViewerPanel.view_pixels), so a black or blank view fails even when the rest of the window has content."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

VIEWS = ("axial", "coronal", "sagittal")


def assert_views_not_blank(qtbot: Any, viewer: Any) -> None:
    """Each 2-D view and the 3-D view shows an image: not one flat colour (blank), not black."""
    for view in VIEWS:
        image = viewer.view_pixels(view).astype(float)
        assert image.std() > 20.0, f"the {view} view is blank"
        assert image.mean() > 5.0, f"the {view} view is black"
    qtbot.waitUntil(lambda: viewer.volume_view.volume is not None, timeout=20000)
    render3d = viewer.view_pixels("3d").astype(float)
    assert render3d.std() > 5.0 and render3d.mean() > 2.0, "the 3-D view is blank"


def count(image: NDArray[np.uint8], rgb: tuple[int, int, int], tol: int = 20) -> int:
    """Pixels within ``tol`` of an exact colour (contour lines are drawn in their ROI colour at opacity 1)."""
    return int((np.abs(image.astype(int) - np.asarray(rgb)).max(axis=-1) <= tol).sum())

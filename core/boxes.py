"""Bounding boxes of masks (numpy only: the workstation's undo stack imports it on the UI thread's path)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["bounding_box"]


def bounding_box(mask: NDArray[Any]) -> tuple[slice, ...] | None:
    """The smallest box (one slice per axis) holding every non-zero voxel; None for an empty mask.

    One `any` projection per axis: a few passes over the mask, where `np.nonzero` would build index arrays of every
    set voxel (0.09 s for a body mask of a 512x512x150 study)."""
    m = np.asarray(mask)
    box: list[slice] = []
    for axis in range(m.ndim):
        hit = np.flatnonzero(np.any(m, axis=tuple(a for a in range(m.ndim) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)

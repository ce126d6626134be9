"""Measurements on a volume: distances and ROI statistics (HU mean and SD, volume)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # the store and DICOM stack are not needed to measure
    from core.dicom.volumes import Volume

__all__ = ["RoiStats", "distance_mm", "roi_statistics"]


@dataclass(frozen=True)
class RoiStats:
    """Statistics of the voxels inside a mask: mean and standard deviation (population, ddof=0, as 3D Slicer's
    segment statistics) of the values (HU for CT), min and max, the number of voxels and their volume (cc)."""

    mean_hu: float
    sd_hu: float
    volume_cc: float
    n_voxels: int
    min_hu: float
    max_hu: float


def distance_mm(p: Sequence[float], q: Sequence[float]) -> float:
    """Euclidean distance between two points given in mm (any number of matching coordinates)."""
    if len(p) != len(q):
        raise ValueError("the two points need the same number of coordinates")
    return math.sqrt(sum((float(a) - float(b)) ** 2 for a, b in zip(p, q, strict=True)))


def roi_statistics(volume: Volume, mask: NDArray[np.generic]) -> RoiStats:
    """Statistics of ``volume`` inside ``mask`` (same [z, y, x] shape; non-zero = inside). An empty mask gives
    zero voxels and NaN statistics."""
    if mask.shape != volume.array.shape:
        raise ValueError(f"the mask is {mask.shape}, the volume {volume.array.shape}: they must be on the same grid")
    inside = mask != 0
    n = int(np.count_nonzero(inside))
    sx, sy, sz = volume.spacing_mm
    volume_cc = n * sx * sy * sz / 1000.0
    if n == 0:
        nan = float("nan")
        return RoiStats(nan, nan, 0.0, 0, nan, nan)
    values = volume.array[inside].astype(np.float64)
    return RoiStats(
        mean_hu=float(values.mean()),
        sd_hu=float(values.std()),
        volume_cc=volume_cc,
        n_voxels=n,
        min_hu=float(values.min()),
        max_hu=float(values.max()),
    )

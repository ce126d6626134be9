"""ROI statistics of one structure of the open study - a segmentation mask or an RT Structure Set ROI - as the
viewer's read-out shows them: mean and SD of the values (HU for CT), volume in cc, with units always written.

The statistics are core.viewer.measure.roi_statistics of the mask; an RTSTRUCT ROI is first rasterised on the
volume's grid (a voxel is inside when its centre is inside the ROI's contour on that slice's plane, the same rule
as the structure's own ``contains``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from core.viewer.measure import RoiStats, roi_statistics

if TYPE_CHECKING:
    from core.dicom.volumes import Volume
    from core.plan.structures import PlanarStructure

__all__ = ["RoiReadout", "contour_mask", "structure_statistics"]

#: How far (mm) the voxel centres of one slice may lie from a single axial plane.
_AXIAL_TOLERANCE_MM = 0.01


@dataclass(frozen=True)
class RoiReadout:
    """One structure's statistics and the units they are in."""

    name: str
    source: str  # "mask" or "RTSTRUCT"
    stats: RoiStats
    units: str  # the volume's value units (HU for CT)

    def text(self) -> str:
        """E.g. 'GTV (mask): mean 12.3 HU, SD 4.5 HU, volume 10.25 cc (1234 voxels; ...)': units on every number."""
        s, u = self.stats, self.units
        head = f"{self.name} ({self.source}): "
        if s.n_voxels == 0:
            return head + "no voxel centre lies inside it; volume 0.00 cc"
        return (f"{head}mean {s.mean_hu:.1f} {u}, SD {s.sd_hu:.1f} {u}, volume {s.volume_cc:.2f} cc "
                f"({s.n_voxels} voxels; min {s.min_hu:.0f} {u}, max {s.max_hu:.0f} {u})")  # fmt: skip


def _voxel_centres(volume: Volume, k: int) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Patient x, y, z (mm) of every voxel centre of slice ``k`` (each [rows, columns])."""
    rows, cols = volume.array.shape[1:]
    d = np.asarray(volume.direction, dtype=np.float64).reshape(3, 3)
    sx, sy, sz = volume.spacing_mm
    j, i = np.mgrid[0:rows, 0:cols].astype(np.float64)
    out = [volume.origin_mm[a] + d[a, 0] * sx * i + d[a, 1] * sy * j + d[a, 2] * sz * k for a in range(3)]
    return out[0], out[1], out[2]


def contour_mask(structure: PlanarStructure, volume: Volume) -> NDArray[np.uint8]:
    """The ROI rasterised on the volume's grid [z, y, x] (1 inside). The images must be axial (each slice on one
    plane z = const), as the ROI's contours are; ValueError otherwise."""
    mask = np.zeros(volume.array.shape, dtype=np.uint8)
    lo, hi = structure.z_extent()
    xmin, ymin, xmax, ymax = structure.xy_bounds()
    for k in range(volume.array.shape[0]):
        x, y, z = _voxel_centres(volume, k)
        if float(np.ptp(z)) > _AXIAL_TOLERANCE_MM:
            raise ValueError("the images are not axial: statistics of RT Structure Set contours need axial images")
        z0 = float(z.flat[0])
        if not lo <= z0 < hi or structure.plane_at(z0) is None:
            continue
        near = (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)
        if near.any():
            inside = np.zeros(x.shape, dtype=bool)
            inside[near] = structure.contains(x[near], y[near], z0)
            mask[k][inside] = 1
    return mask


def structure_statistics(
    volume: Volume, name: str, *, mask: NDArray[np.generic] | None = None, contour: PlanarStructure | None = None
) -> RoiReadout:
    """Statistics of a segmentation ``mask`` (on the volume's grid) or of an RTSTRUCT ``contour`` (rasterised
    first); exactly one of the two is given."""
    if (mask is None) == (contour is None):
        raise ValueError("give either a mask or a contour")
    if contour is not None:
        mask, source = contour_mask(contour, volume), "RTSTRUCT"
    else:
        source = "mask"
    assert mask is not None
    stats = roi_statistics(volume, mask)
    if stats.n_voxels and not math.isfinite(stats.mean_hu):
        raise ValueError(f"the values inside {name} are not finite")
    return RoiReadout(name, source, stats, volume.units or "(no unit)")

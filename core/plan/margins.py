"""Anisotropic margin expansion (GTV -> CTV -> PTV) on the CT grid, and masks back to planar contours.

A voxel belongs to the expanded structure when it lies within the ellipsoid of semi-axes (mx, my, mz) mm around
some voxel of the structure: the Euclidean distance transform is computed in coordinates scaled by the margins,
so the rule is exact on the voxel grid (voxel centres). A zero margin along an axis adds nothing along it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from core.dicom.writers.rtstruct import ImageSeriesReference, contour_polygons
from core.plan.structures import PlanarStructure

__all__ = ["expand_mask", "grid_mask_to_structure", "mask_to_structure"]


def expand_mask(
    mask: NDArray[np.bool_], spacing_mm: tuple[float, float, float], margins_mm: tuple[float, float, float]
) -> NDArray[np.bool_]:
    """Expand a [z, y, x] mask with voxel ``spacing_mm`` (dx, dy, dz) by ``margins_mm`` (mx, my, mz), all mm."""
    if any(m < 0.0 or not np.isfinite(m) for m in margins_mm):
        raise ValueError("margins must be finite and non-negative (mm)")
    if any(s <= 0.0 for s in spacing_mm):
        raise ValueError("voxel spacing must be positive (mm)")
    mask = np.asarray(mask, dtype=bool)
    if not mask.any() or max(margins_mm) == 0.0:
        return mask.copy()
    dx, dy, dz = spacing_mm
    mx, my, mz = (max(m, 1e-9) for m in margins_mm)
    # Only the mask's bounding box plus the margin can change: the distance transform runs there (same result).
    kji = np.argwhere(mask)
    pad = [int(np.ceil(m / d)) + 1 for m, d in ((mz, dz), (my, dy), (mx, dx))]
    low = [max(0, int(v) - p) for v, p in zip(kji.min(axis=0), pad, strict=True)]
    high = [min(n, int(v) + p + 1) for v, p, n in zip(kji.max(axis=0), pad, mask.shape, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
    distance = ndimage.distance_transform_edt(~mask[box], sampling=(dz / mz, dy / my, dx / mx))
    out = np.zeros(mask.shape, dtype=bool)
    out[box] = distance <= 1.0 + 1e-9
    return out


def mask_to_structure(
    name: str, mask: NDArray[np.bool_], reference: ImageSeriesReference, *, interpreted_type: str = ""
) -> PlanarStructure:
    """Planar contours (patient mm) of a [slice, row, column] mask on the grid of ``reference``."""
    planes, polygons = [], []
    for k in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        polys = []
        for poly in contour_polygons(mask[k]):
            points = reference.to_patient(int(k), poly[:, 0], poly[:, 1])
            polys.append(points[:, :2].copy())
        planes.append(float(reference.slices[int(k)].position_mm[2]))
        polygons.append(tuple(polys))
    if not planes:
        raise ValueError(f"structure {name!r} is empty")
    zs = [s.position_mm[2] for s in reference.slices]
    thickness = float(np.median(np.diff(zs))) if len(zs) > 1 else 1.0
    return PlanarStructure(name, tuple(planes), tuple(polygons), thickness, interpreted_type=interpreted_type)


def grid_mask_to_structure(
    name: str,
    mask: NDArray[np.bool_],
    origin_mm: tuple[float, float, float],
    spacing_mm: tuple[float, float, float],
    *,
    interpreted_type: str = "",
) -> PlanarStructure:
    """Planar contours of a [z, y, x] mask on an axis-aligned grid (voxel (0, 0, 0) centre at ``origin_mm``,
    spacing (dx, dy, dz) mm), traced half-way between inside and outside voxel centres like the RTSTRUCT writer."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError("a mask must be 3-D [z, y, x]")
    ox, oy, oz = origin_mm
    dx, dy, dz = spacing_mm
    planes, polygons = [], []
    for k in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        polys = [np.column_stack([ox + p[:, 1] * dx, oy + p[:, 0] * dy]) for p in contour_polygons(mask[k])]
        planes.append(float(oz + k * dz))
        polygons.append(tuple(polys))
    if not planes:
        raise ValueError(f"mask {name!r} is empty")
    return PlanarStructure(name, tuple(planes), tuple(polygons), float(dz), interpreted_type=interpreted_type)

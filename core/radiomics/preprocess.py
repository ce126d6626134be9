"""IBSI image processing before feature computation (IBSI 1 manual chapter 2), vectorised with numpy/scipy.

Arrays are (z, y, x); spacings and origins are (z, y, x) in mm along the array axes. Steps, in IBSI order:
crop to the ROI bounding box with a margin, interpolate to a new grid (grid centres aligned, IBSI 2.4), round
intensities, threshold the interpolated mask at 0.5, re-segment to an intensity range and/or mean +- k SD, discretise
(fixed bin size with edges from the range's lower bound, or fixed bin number).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from core.errors import RadPlanError

__all__ = [
    "RadiomicsInputError",
    "Volume",
    "crop_to_roi",
    "discretise_fbn",
    "discretise_fbs",
    "resample",
    "resegment",
]

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]
Vec3 = tuple[float, float, float]


class RadiomicsInputError(RadPlanError):
    """Image or mask unusable for feature extraction (empty ROI, geometry mismatch, unreadable file)."""


@dataclass(frozen=True)
class Volume:
    """An image with its ROI mask on the same grid: spacing and origin (z, y, x) in mm."""

    image: Floats
    mask: Bools
    spacing_mm: Vec3
    origin_mm: Vec3 = (0.0, 0.0, 0.0)


def crop_to_roi(vol: Volume, margin_mm: float) -> Volume:
    """The ROI bounding box grown by ``margin_mm`` on every side (clipped to the image)."""
    idx = np.argwhere(vol.mask)
    if idx.size == 0:
        raise RadiomicsInputError("the ROI mask is empty")
    pad = np.array([math.ceil(margin_mm / s) for s in vol.spacing_mm])
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, vol.mask.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    origin = tuple(o + float(i) * s for o, i, s in zip(vol.origin_mm, lo, vol.spacing_mm, strict=True))
    return Volume(vol.image[sl], vol.mask[sl], vol.spacing_mm, origin)  # type: ignore[arg-type]


def resample(vol: Volume, spacing_mm: tuple[float | None, float | None, float | None], order: int) -> Volume:
    """Interpolate to ``spacing_mm`` (None keeps an axis, e.g. in-plane-only for 2D) with grid centres aligned.

    New size n_b = ceil(n_a * s_a / s_b); first new sample at (s_a (n_a - 1) - s_b (n_b - 1)) / 2 mm from the old
    first one. ``order``: 1 (tri/bilinear) or 3 (cubic spline) for the image; the mask is always interpolated
    linearly and kept where >= 0.5 (IBSI partial-volume threshold). Outside the old grid: nearest value.
    """
    new_sp = tuple(a if b is None else float(b) for a, b in zip(vol.spacing_mm, spacing_mm, strict=True))
    shape_a = vol.image.shape
    shape_b = tuple(math.ceil(n * a / b - 1e-9) for n, a, b in zip(shape_a, vol.spacing_mm, new_sp, strict=True))
    shift = [
        (a * (n - 1) - b * (m - 1)) / 2 for n, m, a, b in zip(shape_a, shape_b, vol.spacing_mm, new_sp, strict=True)
    ]
    axes = [(s + np.arange(m) * b) / a for s, m, a, b in zip(shift, shape_b, vol.spacing_mm, new_sp, strict=True)]
    coords = np.meshgrid(*axes, indexing="ij")
    image = ndimage.map_coordinates(vol.image.astype(np.float64), coords, order=order, mode="nearest")
    mask = ndimage.map_coordinates(vol.mask.astype(np.float64), coords, order=1, mode="nearest") >= 0.5
    origin = tuple(o + s for o, s in zip(vol.origin_mm, shift, strict=True))
    return Volume(image, mask, new_sp, origin)  # type: ignore[arg-type]


def resegment(image: Floats, mask: Bools, value_range: tuple[float, float] | None, outlier_sd: float | None) -> Bools:
    """The intensity mask: ``mask`` voxels within ``value_range`` (inclusive), then within mean +- k SD."""
    out = mask.copy()
    if value_range is not None:
        out &= (image >= value_range[0]) & (image <= value_range[1])
    if outlier_sd is not None and out.any():
        vals = image[out]
        mu, sd = float(vals.mean()), float(vals.std())
        out &= (image >= mu - outlier_sd * sd) & (image <= mu + outlier_sd * sd)
    if not out.any():
        raise RadiomicsInputError("no ROI voxel left after re-segmentation")
    return out


def discretise_fbs(values: Floats, bin_width: float, lower: float) -> NDArray[np.int64]:
    """IBSI fixed bin size: floor((x - lower) / w) + 1; ``lower`` is the re-segmentation lower bound (or the min)."""
    return (np.floor((values - lower) / bin_width) + 1).astype(np.int64)


def discretise_fbn(values: Floats, n_bins: int) -> NDArray[np.int64]:
    """IBSI fixed bin number: floor(Nb (x - min) / (max - min)) + 1, with the maximum in bin Nb."""
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        return np.ones(values.shape, np.int64)
    return np.asarray(np.minimum(np.floor(n_bins * (values - lo) / (hi - lo)) + 1, n_bins), np.int64)

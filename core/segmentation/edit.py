"""Semi-automatic segmentation and mask edits for what the model does not know.

Masks are uint8 0/1 arrays indexed [z, y, x] (as core.dicom.volumes.Volume); ``spacing_mm`` is (x, y, z) like
SimpleITK. Every operation returns a new mask and leaves its inputs alone.

- ``region_grow``: seeded region growing (SimpleITK ConnectedThreshold) from one seed point, with an explicit HU
  window or one derived from the seed's neighbourhood (mean +/- k standard deviations, like ConfidenceConnected
  but deterministic and bounded), followed by a 1-voxel binary opening against leaks through thin bridges.
- ``add``, ``erase``: union and difference with a stroke/sphere mask; ``sphere`` draws one in mm, ``stroke`` a brush
  stroke (disc in one slice's plane, or ball) along a mouse path.
- ``fill_holes``: 3-D hole filling (holes not connected to the volume border); ``fill_holes_2d`` slice by slice.
- ``expand_margin_mm``: isotropic (or per-axis) margin in mm, exact with a Euclidean distance map; negative
  margins shrink.
- ``largest_component``: keep the largest 26-connected component (and those at least ``min_fraction`` of it).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813
from numpy.typing import NDArray
from scipy import ndimage

from core.boxes import bounding_box
from core.errors import RadPlanError

__all__ = [
    "EditError",
    "Mask",
    "add",
    "bounding_box",
    "erase",
    "expand_margin_mm",
    "fill_holes",
    "fill_holes_2d",
    "largest_component",
    "mm_to_voxel",
    "region_grow",
    "sphere",
    "stroke",
]

Mask = NDArray[np.uint8]
Spacing = tuple[float, float, float]


class EditError(RadPlanError):
    """A mask edit cannot be done as asked (shapes differ, seed outside the image, ...); the message says which."""


def _bool(mask: NDArray[Any]) -> NDArray[np.bool_]:
    return np.asarray(np.asarray(mask) != 0, dtype=np.bool_)


def _same_shape(a: NDArray[Any], b: NDArray[Any]) -> None:
    if a.shape != b.shape:
        raise EditError(f"the masks have different shapes {a.shape} and {b.shape}; edit on the same image grid")


def mm_to_voxel(
    point_mm: Sequence[float], spacing_mm: Spacing, origin_mm: Sequence[float] = (0.0, 0.0, 0.0)
) -> tuple[int, int, int]:
    """Nearest voxel (z, y, x) of a point (x, y, z) in mm on an axis-aligned grid."""
    x, y, z = (round((p - o) / s) for p, o, s in zip(point_mm, origin_mm, spacing_mm, strict=True))
    return int(z), int(y), int(x)


def add(mask: NDArray[Any], stroke: NDArray[Any]) -> Mask:
    """``mask`` or ``stroke``."""
    _same_shape(mask, stroke)
    return (_bool(mask) | _bool(stroke)).astype(np.uint8)


def erase(mask: NDArray[Any], stroke: NDArray[Any]) -> Mask:
    """``mask`` and not ``stroke``."""
    _same_shape(mask, stroke)
    return (_bool(mask) & ~_bool(stroke)).astype(np.uint8)


def sphere(shape: tuple[int, int, int], spacing_mm: Spacing, centre_zyx: Sequence[int], radius_mm: float) -> Mask:
    """A ball of ``radius_mm`` around voxel ``centre_zyx`` (a brush for add/erase)."""
    grids = np.ogrid[: shape[0], : shape[1], : shape[2]]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre_zyx, spacing_mm[::-1], strict=True))
    return np.asarray(d2 <= radius_mm**2, dtype=np.uint8)


def stroke(
    shape: tuple[int, int, int],
    spacing_mm: Spacing,
    points_zyx: Sequence[Sequence[float]],
    radius_mm: float,
    plane_axis: int | None = None,
) -> Mask:
    """A brush stroke: every voxel within ``radius_mm`` of the polyline through ``points_zyx`` (continuous voxel
    indices z, y, x). With ``plane_axis`` (0 axial, 1 coronal, 2 sagittal) the stroke is drawn with a disc in the
    plane of its first point (what a radiologist paints on one slice); without, with a ball. Points outside the
    image are clipped to it; consecutive points are joined by samples no farther apart than a third of a voxel."""
    if radius_mm <= 0.0:
        raise EditError(f"the brush radius must be positive, not {radius_mm} mm")
    pts = np.asarray(points_zyx, dtype=np.float64).reshape(-1, 3)
    if pts.size == 0:
        return np.zeros(shape, dtype=np.uint8)
    pts = np.clip(pts, 0, np.asarray(shape, dtype=np.float64) - 1)
    if plane_axis is not None:
        pts[:, plane_axis] = round(float(pts[0, plane_axis]))
    samples = [pts[:1]]
    for a, b in itertools.pairwise(pts):
        n = int(np.ceil(np.abs(b - a).max() * 3.0)) + 1
        samples.append(a + (b - a) * np.linspace(0.0, 1.0, n)[1:, None])
    path = np.unique(np.rint(np.concatenate(samples)).astype(np.intp), axis=0)
    zyx_mm = np.array([spacing_mm[2], spacing_mm[1], spacing_mm[0]])
    reach = np.ceil(radius_mm / zyx_mm).astype(np.intp) + 1
    lo = np.maximum(path.min(axis=0) - reach, 0)
    hi = np.minimum(path.max(axis=0) + reach + 1, shape)
    if plane_axis is not None:
        lo[plane_axis], hi[plane_axis] = path[0, plane_axis], path[0, plane_axis] + 1
    seeds = np.zeros(tuple(int(v) for v in hi - lo), dtype=bool)
    seeds[tuple((path - lo).T)] = True
    axes = [a for a in range(3) if a != plane_axis]
    if plane_axis is None:
        near = ndimage.distance_transform_edt(~seeds, sampling=tuple(zyx_mm)) <= radius_mm
    else:
        plane = np.take(seeds, 0, axis=plane_axis)
        disc = ndimage.distance_transform_edt(~plane, sampling=tuple(zyx_mm[axes])) <= radius_mm
        near = np.expand_dims(disc, plane_axis)
    out = np.zeros(shape, dtype=np.uint8)
    out[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))] = near
    return out


def fill_holes(mask: NDArray[Any]) -> Mask:
    """Fill the cavities of a 3-D mask (background not connected to the border)."""
    return np.asarray(ndimage.binary_fill_holes(_bool(mask)), dtype=np.uint8)


def fill_holes_2d(mask: NDArray[Any]) -> Mask:
    """Fill holes slice by slice (axial), e.g. the airway inside a body outline."""
    m = _bool(mask)
    return np.stack([ndimage.binary_fill_holes(s) for s in m]).astype(np.uint8) if m.size else m.astype(np.uint8)


def expand_margin_mm(mask: NDArray[Any], spacing_mm: Spacing, margin_mm: float | Spacing) -> Mask:
    """Grow (positive) or shrink (negative) by a margin in mm, per axis (x, y, z) when a triple is given: a voxel is
    inside when its (anisotropically scaled) Euclidean distance to the mask is at most the margin."""
    m = _bool(mask)
    margins = (margin_mm,) * 3 if isinstance(margin_mm, int | float) else tuple(float(v) for v in margin_mm)
    if len(margins) != 3:
        raise EditError("give one margin or three (x, y, z) in mm")
    if all(v == 0 for v in margins):
        return m.astype(np.uint8)
    if any(v > 0 for v in margins) and any(v < 0 for v in margins):
        raise EditError("margins must all grow or all shrink")
    sign = 1.0 if max(margins) > 0 else -1.0
    # distances in units of the margin: scale each axis by spacing / margin (a zero margin axis never grows)
    big = 1e6
    sampling = [s / abs(v) if v != 0 else big for s, v in zip(spacing_mm[::-1], margins[::-1], strict=True)]
    if sign > 0:
        if not m.any():
            return m.astype(np.uint8)
        dist = ndimage.distance_transform_edt(~m, sampling=sampling)
        return np.asarray(dist <= 1.0 + 1e-9, dtype=np.uint8)
    dist = ndimage.distance_transform_edt(m, sampling=sampling)
    return np.asarray(dist > 1.0 + 1e-9, dtype=np.uint8)


def largest_component(mask: NDArray[Any], min_fraction: float = 1.0) -> NDArray[np.bool_]:
    """Keep the largest 26-connected component, plus any other of at least ``min_fraction`` of its size."""
    m = _bool(mask)
    box = bounding_box(m)
    if box is None:
        return m
    labels, n = ndimage.label(m[box], structure=np.ones((3, 3, 3), dtype=bool))  # labelling costs ~ its volume
    if n <= 1:
        return m
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= min(min_fraction, 1.0) * sizes.max()) + 1
    if min_fraction >= 1.0:
        keep = np.array([int(np.argmax(sizes)) + 1])
    out = np.zeros_like(m)
    out[box] = keep[0] == labels if keep.size == 1 else np.isin(labels, keep)
    return out


def region_grow(
    volume_hu: NDArray[Any],
    spacing_mm: Spacing,
    seed: Sequence[float],
    *,
    seed_in_mm: bool = False,
    origin_mm: Sequence[float] = (0.0, 0.0, 0.0),
    lower: float | None = None,
    upper: float | None = None,
    k_sd: float = 2.5,
    radius_mm: float = 3.0,
    smooth: bool = True,
) -> Mask:
    """Seeded region growing (SimpleITK ConnectedThreshold, 26-connected) from ``seed``: a voxel (z, y, x) or,
    with ``seed_in_mm``, a point (x, y, z) in mm on the grid at ``origin_mm``. Without ``lower``/``upper`` the HU
    window is the mean +/- ``k_sd`` standard deviations (at least 20 HU) of the voxels within ``radius_mm`` of the
    seed. With ``smooth`` a 1-voxel opening cuts thin leaks; the component holding the seed is returned."""
    vol = np.asarray(volume_hu, dtype=np.float32)
    if vol.ndim != 3:
        raise EditError("region growing needs a 3-D volume")
    zyx = mm_to_voxel(seed, spacing_mm, origin_mm) if seed_in_mm else tuple(round(float(v)) for v in seed)
    if not all(0 <= c < n for c, n in zip(zyx, vol.shape, strict=True)):
        raise EditError(f"the seed {tuple(seed)} lies outside the image; click inside the structure")
    if lower is None or upper is None:
        ball = sphere(vol.shape, spacing_mm, zyx, radius_mm).astype(bool)
        values = vol[ball]
        mean, sd = float(values.mean()), max(float(values.std()), 20.0 / k_sd)
        lower = mean - k_sd * sd if lower is None else lower
        upper = mean + k_sd * sd if upper is None else upper
    if lower > upper:
        raise EditError(f"the lower bound {lower:g} HU is above the upper bound {upper:g} HU")
    if not lower <= float(vol[zyx]) <= upper:
        raise EditError(f"the seed value {float(vol[zyx]):g} HU is outside the window [{lower:g}, {upper:g}] HU")
    image: Any = sitk.GetImageFromArray(vol)  # SimpleITK is not annotated
    image.SetSpacing(tuple(float(s) for s in spacing_mm))
    grown: Any = sitk.ConnectedThreshold(  # type: ignore[no-untyped-call]
        image, seedList=[(zyx[2], zyx[1], zyx[0])], lower=float(lower), upper=float(upper), replaceValue=1,
        connectivity=sitk.ConnectedThresholdImageFilter.FullConnectivity,
    )  # fmt: skip
    mask = sitk.GetArrayFromImage(grown).astype(bool)
    if smooth:
        opened = ndimage.binary_opening(mask, structure=ndimage.generate_binary_structure(3, 1))
        labels, _ = ndimage.label(opened, structure=np.ones((3, 3, 3), dtype=bool))
        if labels[zyx]:
            mask = labels == labels[zyx]
    return mask.astype(np.uint8)

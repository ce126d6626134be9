"""IBSI texture matrices, vectorised with numpy: GLCM, GLRLM, GLSZM, GLDZM, NGTDM and NGLDM.

Input everywhere is a discretised ROI: an integer array (z, y, x) with 0 outside the ROI and grey levels 1..Ng inside.
``planar=True`` treats the array as one axial slice (shape (1, Y, X)): in-plane directions, 8-connectivity and an
in-plane distance map, as IBSI 2D / 2.5D aggregation requires. Distances are in voxels (Chebyshev distance 1
neighbourhoods, as the IBSI 1 reference values use).

Run, zone, distance and dependence "matrices" are returned as pairs of flat arrays (grey level, second index) so
merging over slices or directions is a concatenation; :func:`core.radiomics.texture_features` bins them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = [
    "DIRECTIONS_2D",
    "DIRECTIONS_3D",
    "LevelPairs",
    "NgtdmParts",
    "directions",
    "glcm",
    "gldzm",
    "glrlm",
    "glszm",
    "ngldm",
    "ngtdm",
]

IntArray = NDArray[np.int64]

#: The 13 unique 3D directions (dz, dy, dx) at Chebyshev distance 1, and the 4 in-plane ones.
DIRECTIONS_3D: tuple[tuple[int, int, int], ...] = tuple(
    (dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dz, dy, dx) > (0, 0, 0)
)
DIRECTIONS_2D: tuple[tuple[int, int, int], ...] = tuple(d for d in DIRECTIONS_3D if d[0] == 0)


def directions(planar: bool) -> tuple[tuple[int, int, int], ...]:
    return DIRECTIONS_2D if planar else DIRECTIONS_3D


@dataclass(frozen=True)
class LevelPairs:
    """One entry per run / zone / voxel: its grey level (1..Ng) and its length, size, distance or dependence."""

    level: IntArray
    second: IntArray

    @staticmethod
    def concat(parts: list[LevelPairs]) -> LevelPairs:
        if not parts:
            return LevelPairs(np.zeros(0, np.int64), np.zeros(0, np.int64))
        return LevelPairs(np.concatenate([p.level for p in parts]), np.concatenate([p.second for p in parts]))


@dataclass(frozen=True)
class NgtdmParts:
    """Per grey level i (index i-1): n_i voxels with a valid neighbourhood and s_i = sum |i - mean neighbour|."""

    n: NDArray[np.float64]
    s: NDArray[np.float64]


class _Padded:
    """The ROI padded by one voxel of 0 so that flat index + neighbour offset never leaves the array."""

    def __init__(self, levels: IntArray) -> None:
        self.p = np.pad(np.asarray(levels, dtype=np.int64), 1)
        self.flat = self.p.ravel()
        self.strides = (self.p.shape[1] * self.p.shape[2], self.p.shape[2], 1)
        self.inside = np.flatnonzero(self.flat > 0)
        self.values = self.flat[self.inside]

    def offset(self, d: tuple[int, int, int]) -> int:
        return int(d[0] * self.strides[0] + d[1] * self.strides[1] + d[2] * self.strides[2])

    def neighbour_offsets(self, planar: bool) -> list[int]:
        dirs = directions(planar)
        return [self.offset(d) for d in dirs] + [-self.offset(d) for d in dirs]


def glcm(levels: IntArray, n_levels: int, planar: bool) -> list[NDArray[np.float64]]:
    """One symmetric co-occurrence count matrix (Ng x Ng) per direction, distance 1."""
    pad = _Padded(levels)
    out: list[NDArray[np.float64]] = []
    for d in directions(planar):
        nb = pad.flat[pad.inside + pad.offset(d)]
        keep = nb > 0
        codes = (pad.values[keep] - 1) * n_levels + (nb[keep] - 1)
        m = np.bincount(codes, minlength=n_levels * n_levels).reshape(n_levels, n_levels).astype(np.float64)
        out.append(m + m.T)
    return out


def glrlm(levels: IntArray, planar: bool) -> list[LevelPairs]:
    """Runs (grey level, run length in voxels) per direction; a run stops at the ROI border."""
    pad = _Padded(levels)
    out: list[LevelPairs] = []
    for d in directions(planar):
        off = pad.offset(d)
        starts = pad.inside[pad.flat[pad.inside - off] != pad.values]
        level = pad.flat[starts]
        length = np.ones(starts.size, np.int64)
        pos = starts.copy()
        active = np.flatnonzero(pad.flat[pos + off] == level)
        while active.size:
            pos[active] += off
            length[active] += 1
            active = active[pad.flat[pos[active] + off] == level[active]]
        out.append(LevelPairs(level, length))
    return out


def _structure(planar: bool) -> NDArray[np.bool_]:
    s = np.ones((3, 3, 3), bool)
    if planar:
        s[0] = s[2] = False
    return s


def _zones(levels: IntArray, n_levels: int, planar: bool) -> tuple[IntArray, IntArray, IntArray]:
    """Label every zone (connected voxels of one grey level): label map, zone levels and zone sizes."""
    labels = np.zeros(levels.shape, np.int64)
    zone_levels: list[IntArray] = []
    count = 0
    structure = _structure(planar)
    for g in np.unique(levels[levels > 0]):
        lab, n = ndimage.label(levels == g, structure=structure)
        labels[lab > 0] = lab[lab > 0] + count
        zone_levels.append(np.full(n, g, np.int64))
        count += n
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    zl = np.concatenate(zone_levels) if zone_levels else np.zeros(0, np.int64)
    return labels, zl, sizes.astype(np.int64)


def glszm(levels: IntArray, n_levels: int, planar: bool) -> LevelPairs:
    """Zones (grey level, zone size in voxels); 26-connected in 3D, 8-connected in a slice."""
    _, zl, sizes = _zones(levels, n_levels, planar)
    return LevelPairs(zl, sizes)


def gldzm(levels: IntArray, n_levels: int, planar: bool, roi: NDArray[np.bool_] | None = None) -> LevelPairs:
    """Zones (grey level, distance to the ROI edge): the smallest city-block distance of the zone's voxels.

    The distance map is taken on ``roi`` (the morphological mask; default: where ``levels`` > 0), with voxels
    next to the outside (or the image edge) at distance 1, in-plane when ``planar``.
    """
    labels, zl, _ = _zones(levels, n_levels, planar)
    mask = (levels > 0) if roi is None else roi
    if planar:
        dist = np.stack([ndimage.distance_transform_cdt(np.pad(s, 1), metric="taxicab")[1:-1, 1:-1] for s in mask])
    else:
        dist = ndimage.distance_transform_cdt(np.pad(mask, 1), metric="taxicab")[1:-1, 1:-1, 1:-1]
    if zl.size == 0:
        return LevelPairs(zl, zl)
    zone_min = ndimage.minimum(dist, labels=labels, index=np.arange(1, zl.size + 1))
    return LevelPairs(zl, np.asarray(zone_min, np.int64))


def ngtdm(levels: IntArray, n_levels: int, planar: bool) -> NgtdmParts:
    """Neighbourhood grey tone difference parts; neighbours outside the ROI are ignored, as are lone voxels."""
    pad = _Padded(levels)
    total = np.zeros(pad.inside.size)
    count = np.zeros(pad.inside.size)
    for off in pad.neighbour_offsets(planar):
        nb = pad.flat[pad.inside + off]
        total += nb
        count += nb > 0
    valid = count > 0
    g = pad.values[valid]
    diff = np.abs(g - total[valid] / count[valid])
    n = np.bincount(g - 1, minlength=n_levels).astype(np.float64)
    s = np.asarray(np.bincount(g - 1, weights=diff, minlength=n_levels), np.float64)
    return NgtdmParts(n, s)


def ngldm(levels: IntArray, planar: bool, alpha: int = 0) -> LevelPairs:
    """Per ROI voxel: (grey level, 1 + number of ROI neighbours within |difference| <= alpha)."""
    pad = _Padded(levels)
    k = np.ones(pad.inside.size, np.int64)
    for off in pad.neighbour_offsets(planar):
        nb = pad.flat[pad.inside + off]
        k += (nb > 0) & (np.abs(nb - pad.values) <= alpha)
    return LevelPairs(pad.values.copy(), k)

"""IBSI morphological features (``morph_``, IBSI 1 manual section 3.1), vectorised with numpy.

Mesh: marching cubes (scikit-image, level 0.5) on the morphological mask padded with one empty voxel, vertices in mm.
Volumes in mm^3, areas in mm^2, lengths in mm, ratios dimensionless, ``morph_integ_int`` in mm^3 x intensity unit.
OMBB and MVEE densities use ``core.radiomics.enclosing`` (Chan and Tan's box search, Khachiyan's ellipsoid) on
the mesh's convex-hull vertices; IBSI has no consensus value for them. PCA axes use the sample covariance
(divided by N - 1) of the voxel centres of the morphological mask. Moran's I and Geary's C use inverse-distance
weights between intensity-mask voxel centres, exact for any ROI size by FFT convolution over the ROI box
(``core.radiomics.autocorrelation``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import ConvexHull
from scipy.special import eval_legendre
from skimage.measure import marching_cubes as _marching_cubes

from core.radiomics.autocorrelation import moran_geary
from core.radiomics.enclosing import min_volume_ellipsoid, oriented_min_box

__all__ = ["morphology"]

Floats = NDArray[np.float64]
Features = dict[str, float]
marching_cubes: Any = _marching_cubes  # scikit-image is not annotated


def _mesh(mask: NDArray[np.bool_], spacing: tuple[float, float, float]) -> tuple[Floats, float, float]:
    """Vertices (mm), volume (mm^3) and area (mm^2) of the marching-cubes surface."""
    verts, faces, _, _ = marching_cubes(np.pad(mask, 1).astype(np.float32), level=0.5, spacing=spacing)
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    cross = np.cross(b - a, c - a)
    area = float(0.5 * np.linalg.norm(cross, axis=1).sum())
    volume = float(abs((a * np.cross(b, c)).sum()) / 6.0)
    return np.asarray(verts, np.float64), volume, area


def _max_diameter(verts: Floats) -> float:
    hull = verts[ConvexHull(verts).vertices] if len(verts) > 4 else verts
    best = 0.0
    for start in range(0, len(hull), 512):
        d = np.linalg.norm(hull[start : start + 512, None, :] - hull[None, :, :], axis=2)
        best = max(best, float(d.max()))
    return best


def _ellipsoid_area(a: float, b: float, c: float) -> float:
    """Surface area of an ellipsoid with semi-axes a >= b >= c (IBSI series approximation, 20 terms)."""
    alpha = math.sqrt(max(0.0, 1 - b**2 / a**2))
    beta = math.sqrt(max(0.0, 1 - c**2 / a**2))
    if alpha * beta == 0:
        return 4 * math.pi * a * b
    x = (alpha**2 + beta**2) / (2 * alpha * beta)
    terms = [(alpha * beta) ** nu / (1 - 4 * nu**2) * float(eval_legendre(nu, x)) for nu in range(21)]
    return 4 * math.pi * a * b * sum(terms)


def morphology(
    morph_mask: NDArray[np.bool_],
    intensity_mask: NDArray[np.bool_],
    image: Floats,
    spacing_mm: tuple[float, float, float],
) -> Features:
    """All IBSI morphological features; arrays are (z, y, x), ``spacing_mm`` is (z, y, x)."""
    verts, volume, area = _mesh(morph_mask, spacing_mm)
    sp = np.asarray(spacing_mm, dtype=np.float64)
    pts = np.argwhere(morph_mask).astype(np.float64) * sp
    ipts = np.argwhere(intensity_mask).astype(np.float64) * sp
    vals = np.asarray(image, np.float64)[intensity_mask]
    eig = np.sort(np.linalg.eigvalsh(np.cov(pts.T)))[::-1] if len(pts) > 1 else np.zeros(3)
    eig = np.clip(eig, 0.0, None)
    major, minor, least = (4 * math.sqrt(e) for e in eig)
    extent = verts.max(axis=0) - verts.min(axis=0)
    box_area = 2 * (extent[0] * extent[1] + extent[1] * extent[2] + extent[0] * extent[2])
    hull = ConvexHull(verts)
    hull_verts = verts[hull.vertices]
    ombb = oriented_min_box(hull_verts)
    mvee = min_volume_ellipsoid(hull_verts)
    a, b, c = major / 2, minor / 2, least / 2
    moran, geary = moran_geary(intensity_mask, image, spacing_mm)
    sph = (36 * math.pi * volume**2) ** (1 / 3)
    com_geom = pts.mean(axis=0)
    com_int = (ipts * vals[:, None]).sum(axis=0) / vals.sum() if vals.sum() != 0 else com_geom
    return {
        "morph_volume": volume,
        "morph_vol_approx": float(morph_mask.sum() * float(np.prod(sp))),
        "morph_area_mesh": area,
        "morph_av": area / volume,
        "morph_comp_1": volume / (math.sqrt(math.pi) * area**1.5),
        "morph_comp_2": 36 * math.pi * volume**2 / area**3,
        "morph_sph_dispr": area / sph,
        "morph_sphericity": sph / area,
        "morph_asphericity": (area**3 / (36 * math.pi * volume**2)) ** (1 / 3) - 1,
        "morph_com": float(np.linalg.norm(com_geom - com_int)),
        "morph_diam": _max_diameter(verts),
        "morph_pca_maj_axis": major,
        "morph_pca_min_axis": minor,
        "morph_pca_least_axis": least,
        "morph_pca_elongation": math.sqrt(eig[1] / eig[0]) if eig[0] > 0 else float("nan"),
        "morph_pca_flatness": math.sqrt(eig[2] / eig[0]) if eig[0] > 0 else float("nan"),
        "morph_vol_dens_aabb": volume / float(np.prod(extent)),
        "morph_area_dens_aabb": area / box_area,
        "morph_vol_dens_aee": 3 * volume / (4 * math.pi * a * b * c) if c > 0 else float("nan"),
        "morph_area_dens_aee": area / _ellipsoid_area(a, b, c) if c > 0 else float("nan"),
        "morph_vol_dens_ombb": volume / ombb.volume,
        "morph_area_dens_ombb": area / ombb.area,
        "morph_vol_dens_mvee": volume / mvee.volume,
        "morph_area_dens_mvee": area / _ellipsoid_area(*mvee.semi_axes),
        "morph_vol_dens_conv_hull": volume / float(hull.volume),
        "morph_area_dens_conv_hull": area / float(hull.area),
        "morph_integ_int": volume * float(vals.mean()),
        "morph_moran_i": moran,
        "morph_geary_c": geary,
    }

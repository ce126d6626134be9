"""Oriented minimum bounding box and minimum-volume enclosing ellipsoid of a point set (IBSI 1, 3.1.20-3.1.23).

IBSI defines volume and area densities against the oriented minimum bounding box (OMBB) and the minimum-volume
enclosing ellipsoid (MVEE) of the ROI mesh, with no consensus reference values. How we compute them:

* **OMBB**: Chan and Tan's iterative search (2001): starting from a frame, each axis in turn is held fixed, the
  points are projected onto the plane of the other two and the minimum-area rectangle there is found exactly by
  rotating calipers on the projected hull; the frame turns to it; repeat while the volume drops. Started from the
  coordinate axes, the PCA axes and the normals of the eight largest convex-hull faces; the smallest box wins. The
  result always encloses every point and is never larger than the axis-aligned box, nor than the best box with a
  face on one of those eight hull planes; it is exact when the optimum has a face there (O'Rourke's exact O(n^3)
  search is not implemented).
* **MVEE**: Khachiyan's algorithm with Todd and Yildirim's away steps on the hull vertices, to a
  (1 + 1e-7)-approximation, then scaled by the largest Mahalanobis radius so that every point lies inside.

Both work on the convex-hull vertices, which give the same box and ellipsoid as the whole point set.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import ConvexHull, QhullError

__all__ = ["Box", "Ellipsoid", "min_area_rectangle", "min_volume_ellipsoid", "oriented_min_box"]

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Box:
    """An oriented box: edge lengths (mm, largest first) and the unit edge directions as rows of ``axes``."""

    lengths: tuple[float, float, float]
    axes: Floats

    @property
    def volume(self) -> float:
        return self.lengths[0] * self.lengths[1] * self.lengths[2]

    @property
    def area(self) -> float:
        a, b, c = self.lengths
        return 2 * (a * b + b * c + a * c)


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid {x : (x - centre)^T shape (x - centre) <= 1}; semi-axes in mm, largest first."""

    centre: Floats
    shape: Floats
    semi_axes: tuple[float, float, float]

    @property
    def volume(self) -> float:
        a, b, c = self.semi_axes
        return 4 / 3 * math.pi * a * b * c


def _hull_points(points: Floats) -> Floats:
    pts = np.asarray(points, np.float64)
    if len(pts) < 5:
        return pts
    try:
        vertices = ConvexHull(pts).vertices
    except QhullError:  # flat or degenerate sets: every point is a candidate
        return pts
    return np.asarray(pts[vertices], np.float64)


def min_area_rectangle(points2d: Floats) -> tuple[float, float]:
    """(area, angle) of the minimum-area enclosing rectangle of 2-D points; ``angle`` (radians) of one side.

    Rotating calipers: the optimum has a side on a hull edge, so every hull-edge direction is tried (vectorised).
    """
    pts = np.asarray(points2d, np.float64)
    if len(pts) >= 3:
        with contextlib.suppress(QhullError):  # collinear points: all edges are candidates
            pts = pts[ConvexHull(pts).vertices]
    edges = np.roll(pts, -1, axis=0) - pts
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    keep = lengths > 1e-12
    if not keep.any():
        return 0.0, 0.0
    u = edges[keep] / lengths[keep, None]
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)
    pu, pv = u @ pts.T, v @ pts.T
    areas = (pu.max(axis=1) - pu.min(axis=1)) * (pv.max(axis=1) - pv.min(axis=1))
    best = int(np.argmin(areas))
    return float(areas[best]), float(math.atan2(u[best, 1], u[best, 0]))


def _box_extent(pts: Floats, axes: Floats) -> Floats:
    proj = pts @ axes.T
    return np.asarray(proj.max(axis=0) - proj.min(axis=0), np.float64)


def _refine(pts: Floats, axes: Floats, max_rounds: int = 20) -> Floats:
    axes = axes.copy()
    volume = float(np.prod(_box_extent(pts, axes)))
    for _ in range(max_rounds):
        before = volume
        for fixed in range(3):
            j, k = [i for i in range(3) if i != fixed]
            plane = np.stack([axes[j], axes[k]])
            _, angle = min_area_rectangle(pts @ plane.T)
            c, s = math.cos(angle), math.sin(angle)
            axes[j], axes[k] = c * plane[0] + s * plane[1], -s * plane[0] + c * plane[1]
        volume = float(np.prod(_box_extent(pts, axes)))
        if volume >= before * (1 - 1e-9):
            break
    return axes


def _frame(normal: Floats) -> Floats:
    n = normal / np.linalg.norm(normal)
    helper = np.eye(3)[int(np.argmin(np.abs(n)))]
    u = np.cross(n, helper)
    u /= np.linalg.norm(u)
    return np.stack([n, u, np.cross(n, u)])


def _starts(pts: Floats, hull_faces: int) -> list[Floats]:
    starts = [np.eye(3)]
    if len(pts) > 3:
        _, vecs = np.linalg.eigh(np.cov(pts.T))
        starts.append(vecs.T.copy())
    try:
        hull = ConvexHull(pts)
    except QhullError:  # degenerate: coordinate and PCA frames only
        return starts
    tri = pts[hull.simplices]
    areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    planes = np.round(hull.equations[:, :3], 6)
    unique, inverse = np.unique(planes, axis=0, return_inverse=True)
    plane_area = np.bincount(inverse.ravel(), weights=areas, minlength=len(unique))
    for idx in np.argsort(plane_area)[::-1][:hull_faces]:
        starts.append(_frame(unique[idx]))
    return starts


def oriented_min_box(points: Floats, hull_faces: int = 8) -> Box:
    """Oriented minimum bounding box of 3-D points (mm), by Chan and Tan's iteration from several frames."""
    pts = _hull_points(points)
    best_axes, best_volume = np.eye(3), math.inf
    for start in _starts(pts, hull_faces):
        axes = _refine(pts, start)
        volume = float(np.prod(_box_extent(pts, axes)))
        if volume < best_volume:
            best_axes, best_volume = axes, volume
    extent = _box_extent(pts, best_axes)
    order = np.argsort(extent)[::-1]
    a, b, c = (float(extent[i]) for i in order)
    return Box(lengths=(a, b, c), axes=best_axes[order])


def min_volume_ellipsoid(points: Floats, tol: float = 1e-7, max_iter: int = 100_000) -> Ellipsoid:
    """Minimum-volume enclosing ellipsoid of 3-D points (mm), then scaled so that it encloses every point.

    Todd and Yildirim's Khachiyan algorithm with away steps: weights move towards the point farthest outside the
    current ellipsoid, or away from the weighted point deepest inside, until both gaps are below ``tol``
    (a (1 + tol)-approximate ellipsoid in the lifted space).
    """
    pts = _hull_points(points)
    n, d = pts.shape
    if n <= d:
        raise ValueError(f"an enclosing ellipsoid needs at least {d + 1} points not in one plane; got {n}")
    lifted = d + 1
    q = np.vstack([pts.T, np.ones(n)])
    u = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        m = np.einsum("ij,ji->i", q.T, np.linalg.solve((q * u) @ q.T, q))
        far = int(np.argmax(m))
        support = np.flatnonzero(u > 0)
        near = int(support[np.argmin(m[support])])
        gap_out, gap_in = m[far] / lifted - 1, 1 - m[near] / lifted
        if max(gap_out, gap_in) <= tol:
            break
        if gap_out >= gap_in:
            step = (m[far] - lifted) / (lifted * (m[far] - 1))
            u *= 1 - step
            u[far] += step
        else:
            step = min((lifted - m[near]) / (lifted * (m[near] - 1)), u[near] / (1 - u[near]))
            u *= 1 + step
            u[near] -= step
            u[near] = max(u[near], 0.0)
    centre = pts.T @ u
    cov = (pts.T * u) @ pts - np.outer(centre, centre)
    shape = np.linalg.inv(cov) / d
    diff = pts - centre
    shape = shape / float(np.einsum("ij,jk,ik->i", diff, shape, diff).max())
    eig = np.sort(np.linalg.eigvalsh(shape))
    a, b, c = (float(1 / math.sqrt(e)) for e in eig)
    return Ellipsoid(centre=centre, shape=shape, semi_axes=(a, b, c))

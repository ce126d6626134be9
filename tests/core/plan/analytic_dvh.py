"""Analytic shapes, contoured like a planning CT, in linear dose fields, and their exact DVHs.

A shape is given by its cross-section area A(s) along the dose-gradient direction s (mm); for a dose
D = D_c + G * s the volume receiving at least D(s) is the integral of A from s to s_max, the mean dose is
D_c + G * (centroid along s), and D_x% / D_xcc solve V(>= s) = target. The A(s) below are closed forms; the
integrals of A are done with adaptive quadrature to 1e-10 relative.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize

from core.plan.dvh import DoseVolume
from core.plan.structures import PlanarStructure

N_VERTICES = 360


def circle(cx: float, cy: float, r: float) -> np.ndarray:
    """A regular polygon with the area of the circle of radius r (mm)."""
    t = 2 * math.pi * np.arange(N_VERTICES) / N_VERTICES
    rp = r * math.sqrt(2 * math.pi / (N_VERTICES * math.sin(2 * math.pi / N_VERTICES)))
    return np.column_stack([cx + rp * np.cos(t), cy + rp * np.sin(t)])


@dataclass(frozen=True)
class Shape:
    """kind: sphere (radius R), cylinder (radius R, height H, axis z, from z0 = -H/2), cone (base radius R at
    z = -H/2, apex at +H/2). Centred at ``centre`` (mm)."""

    kind: str
    radius: float
    height: float = 0.0
    centre: tuple[float, float, float] = (1.3, -2.1, 0.0)

    def radius_at(self, z: float) -> float:
        """Cross-section radius at height z (mm, relative to the centre)."""
        if self.kind == "sphere":
            return math.sqrt(max(self.radius**2 - z**2, 0.0))
        if abs(z) > self.height / 2:
            return 0.0
        if self.kind == "cylinder":
            return self.radius
        return self.radius * (0.5 - z / self.height)

    def z_range(self) -> tuple[float, float]:
        h = self.radius if self.kind == "sphere" else self.height / 2
        return -h, h

    @property
    def volume_mm3(self) -> float:
        if self.kind == "sphere":
            return 4 / 3 * math.pi * self.radius**3
        if self.kind == "cylinder":
            return math.pi * self.radius**2 * self.height
        return math.pi * self.radius**2 * self.height / 3

    def contourable(self, slice_mm: float) -> bool:
        """False when no CT slice centre cuts the shape (too small for the slice spacing)."""
        lo, hi = (self.centre[2] + v for v in self.z_range())
        ks = np.arange(math.floor(lo / slice_mm) - 1, math.ceil(hi / slice_mm) + 1)
        return any(self.radius_at((k + 0.5) * slice_mm - self.centre[2]) > 1e-6 for k in ks)

    def contoured(self, slice_mm: float, name: str = "S") -> PlanarStructure:
        """Contours on CT slice centres at z = (k + 0.5) * slice_mm (absolute), like a planning CT."""
        lo, hi = (self.centre[2] + v for v in self.z_range())
        ks = np.arange(math.floor(lo / slice_mm) - 1, math.ceil(hi / slice_mm) + 1)
        planes, polys = [], []
        for k in ks:
            z = (k + 0.5) * slice_mm
            r = self.radius_at(z - self.centre[2])
            if r > 1e-6:
                planes.append(float(z))
                polys.append((circle(self.centre[0], self.centre[1], r),))
        return PlanarStructure(name, tuple(planes), tuple(polys), slice_mm)

    def area(self, axis: str) -> tuple[Callable[[float], float], float, float]:
        """A(s) (mm^2) along 'x' or 'z' through the centre, with the s range."""
        r_, h = self.radius, self.height
        if self.kind == "sphere":
            return (lambda s: math.pi * max(r_**2 - s**2, 0.0)), -r_, r_
        if axis == "z":
            return (lambda s: math.pi * self.radius_at(s) ** 2), -h / 2, h / 2
        if self.kind == "cylinder":
            return (lambda s: 2 * h * math.sqrt(max(r_**2 - s**2, 0.0))), -r_, r_

        def cone(s: float) -> float:
            a = abs(s)
            if a >= r_:
                return 0.0
            if a < 1e-12:
                return h * r_
            q = math.sqrt(r_**2 - s**2)
            return h / r_ * (r_ * q - s**2 * math.log((r_ + q) / a))

        return cone, -r_, r_

    def staircase(self, axis: str, slice_mm: float) -> tuple[Callable[[float], float], float, float, float, float]:
        """The contoured structure itself (each contour extruded over its slab, half-slice end caps) in closed
        form: (V(>= s) in mm^3, s_min, s_max, volume mm^3, first moment mm^4) along ``axis`` from the centre.
        The exact DVH of what the engine is given, so that engine errors can be told from contouring errors."""
        structure = self.contoured(slice_mm)
        lo, hi = structure.slabs()
        cz = self.centre[2]
        radii = np.array([self.radius_at(z - cz) for z in structure.planes_z])
        a, b = lo - cz, hi - cz
        if axis == "z":
            areas = math.pi * radii**2

            def above_z(s: float) -> float:
                return float(np.sum(areas * np.clip(b - np.maximum(s, a), 0.0, b - a)))

            return (
                above_z,
                float(a[0]),
                float(b[-1]),
                float(np.sum(areas * (b - a))),
                float(np.sum(areas * (b**2 - a**2) / 2)),
            )
        widths = b - a

        def g(t: np.ndarray) -> np.ndarray:
            return t * np.sqrt(np.maximum(radii**2 - t**2, 0.0)) + radii**2 * np.arcsin(np.clip(t / radii, -1, 1))

        def above_x(s: float) -> float:
            return float(np.sum(widths * (g(radii) - g(np.clip(s, -radii, radii)))))

        rmax = float(radii.max())
        return above_x, -rmax, rmax, float(np.sum(widths * math.pi * radii**2)), 0.0


@dataclass(frozen=True)
class AnalyticDvh:
    volume_cc: float
    min_gy: float
    max_gy: float
    mean_gy: float
    d99_gy: float
    d95_gy: float
    d5_gy: float
    d1_gy: float
    d0_03cc_gy: float


def analytic_dvh(
    shape: Shape, axis: str, d_centre: float, gradient: float, staircase_slice_mm: float | None = None
) -> AnalyticDvh:
    """Exact DVH numbers of ``shape`` in D = d_centre + gradient * s, s along ``axis`` from the centre; of the
    continuous shape, or with ``staircase_slice_mm`` of its contoured (slab-extruded) version."""
    if staircase_slice_mm is None:
        a, s0, s1 = shape.area(axis)
        total = integrate.quad(a, s0, s1, epsabs=0, epsrel=1e-11, limit=200)[0]
        first = integrate.quad(lambda s: s * a(s), s0, s1, epsabs=1e-9, epsrel=1e-10, limit=200)[0]

        def above(s: float) -> float:
            return float(integrate.quad(a, s, s1, epsabs=0, epsrel=1e-11, limit=200)[0])

    else:
        above, s0, s1, total, first = shape.staircase(axis, staircase_slice_mm)

    def dose_at(volume: float) -> float:
        s = optimize.brentq(lambda t: above(t) - volume, s0, s1, xtol=1e-10)
        return d_centre + gradient * s

    return AnalyticDvh(
        volume_cc=total / 1000,
        min_gy=d_centre + gradient * s0,
        max_gy=d_centre + gradient * s1,
        mean_gy=d_centre + gradient * first / total,
        d99_gy=dose_at(0.99 * total),
        d95_gy=dose_at(0.95 * total),
        d5_gy=dose_at(0.05 * total),
        d1_gy=dose_at(0.01 * total),
        d0_03cc_gy=dose_at(min(30.0, total)),
    )


def linear_dose(shape: Shape, axis: str, grid_mm: float, d_centre: float, gradient: float) -> DoseVolume:
    """A dose grid of spacing grid_mm (offset from the contours) sampling D = d_centre + gradient * s."""
    cx, cy, cz = shape.centre
    half = max(shape.radius, shape.height / 2) + 2 * grid_mm + 1
    origin = (cx - half + 0.37 * grid_mm, cy - half + 0.21 * grid_mm, cz - half + 0.43 * grid_mm)
    n = math.ceil(2 * half / grid_mm) + 1
    x = origin[0] + np.arange(n) * grid_mm
    y = origin[1] + np.arange(n) * grid_mm
    z = origin[2] + np.arange(n) * grid_mm
    zz, _yy, xx = np.meshgrid(z, y, x, indexing="ij")
    s = (xx - cx) if axis == "x" else (zz - cz)
    return DoseVolume(d_centre + gradient * s, origin, (grid_mm, grid_mm, grid_mm))

"""The tumour and the tubular structures (vessels, airways) of the demo thorax; see core/demo/anatomy.py for the
coordinate conventions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.spatial import distance

from core.demo.anatomy import F64, HU, Anatomy, Mask2D, VolumeGeometry, lung_envelopes

__all__ = ["Tubes", "Tumour", "airways", "draw_vessels", "lobe_of", "place_tumour"]


@dataclass(frozen=True)
class Tumour:
    """A lobulated sphere: the surface radius along unit direction u is
    ``radius_mm * (1 + sum_k a_k * exp((u . v_k - 1) / 0.15))`` with bumps (v_k, a_k); centre and radii in mm."""

    centre_mm: tuple[float, float, float]
    radius_mm: float
    bumps: tuple[tuple[float, float, float, float], ...]  # (v_x, v_y, v_z, a): unit direction and amplitude

    @property
    def max_radius_mm(self) -> float:
        return self.radius_mm * (1.0 + sum(b[3] for b in self.bumps))

    def radius_along(self, u: F64) -> F64:
        """Surface radius (mm) along the unit directions ``u`` (..., 3)."""
        factor = np.ones(u.shape[:-1])
        for vx, vy, vz, amp in self.bumps:
            factor += amp * np.exp((u[..., 0] * vx + u[..., 1] * vy + u[..., 2] * vz - 1.0) / 0.15)
        return self.radius_mm * factor

    def longest_diameter_mm(self) -> float:
        """Largest distance between two surface points (2000 directions on a Fibonacci sphere)."""
        n = 2000
        i = np.arange(n) + 0.5
        polar, azim = np.arccos(1.0 - 2.0 * i / n), math.pi * (1.0 + 5.0**0.5) * i
        u = np.stack([np.cos(azim) * np.sin(polar), np.sin(azim) * np.sin(polar), np.cos(polar)], axis=-1)
        pts = u * self.radius_along(u)[:, None]
        return float(distance.pdist(pts).max())

    def paint(self, img: NDArray[np.float32], x: F64, y: F64, z: float) -> Mask2D:
        """Write tumour HU into ``img`` for the plane at height z; returns the tumour mask of that plane."""
        mask = np.zeros(img.shape, dtype=bool)
        cx, cy, cz = self.centre_mm
        r = self.max_radius_mm
        if abs(z - cz) > r:
            return mask
        ix = slice(*np.searchsorted(x, [cx - r, cx + r]))
        iy = slice(*np.searchsorted(y, [cy - r, cy + r]))
        dx, dy = (x[ix] - cx)[None, :], (y[iy] - cy)[:, None]
        dz = z - cz
        dist = np.sqrt(dx**2 + dy**2 + dz**2)
        safe = np.maximum(dist, 1e-9)
        u = np.stack(np.broadcast_arrays(dx / safe, dy / safe, dz / safe), axis=-1)
        surface = self.radius_along(u)
        inside = dist <= surface
        mask[iy, ix] = inside
        ramp = HU.tumour + 10.0 * (1.0 - (dist / surface) ** 2)
        img[iy, ix] = np.where(inside, ramp, img[iy, ix])
        return mask


@dataclass(frozen=True)
class Tubes:
    """Straight tube segments (vessels, bronchi) from ``start`` to ``end`` (n, 3) with ``radius`` (n,), in mm."""

    start: F64
    end: F64
    radius: F64

    def paint(self, x: F64, y: F64, z: float) -> Mask2D:
        """Mask of the plane at height z that lies within ``radius`` of a segment."""
        out = np.zeros((y.size, x.size), dtype=bool)
        for a, b, r in zip(self.start, self.end, self.radius, strict=True):
            d = b - a
            t_lo, t_hi = 0.0, 1.0
            if abs(d[2]) > 1e-9:
                t0, t1 = sorted(((z - r - a[2]) / d[2], (z + r - a[2]) / d[2]))
                t_lo, t_hi = max(t0, 0.0), min(t1, 1.0)
            elif abs(z - a[2]) > r:
                continue
            if t_lo > t_hi:
                continue
            p, q = a + t_lo * d, a + t_hi * d
            ix = slice(*np.searchsorted(x, [min(p[0], q[0]) - r, max(p[0], q[0]) + r]))
            iy = slice(*np.searchsorted(y, [min(p[1], q[1]) - r, max(p[1], q[1]) + r]))
            px, py = (x[ix] - a[0])[None, :], (y[iy] - a[1])[:, None]
            t = np.clip((px * d[0] + py * d[1] + (z - a[2]) * d[2]) / float(d @ d), 0.0, 1.0)
            dist2 = (px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (z - a[2] - t * d[2]) ** 2
            out[iy, ix] |= dist2 <= r * r
        return out


def _unit(v: F64) -> F64:
    return np.asarray(v / np.linalg.norm(v), dtype=np.float64)


def draw_vessels(rng: np.random.Generator, an: Anatomy) -> Tubes:
    """Pulmonary vessels: from each hilum four trunks that branch four times into two thinner children, plus 150
    short peripheral twigs per lung at random positions (painted only where they fall inside a lung)."""
    h = an.z_lung_apex - an.z_lung_base
    segs: list[tuple[F64, F64, float]] = []
    for side in (-1, 1):
        stack = [
            (np.array(an.hilum(side)), _unit(np.array(d) + rng.normal(0.0, 0.15, 3)), 0.2 * h, 0.035 * an.body_b, 0)
            for d in (
                (side * 0.35, 0.05, 1.0),
                (side * 1.0, -0.5, 0.3),
                (side * 1.0, 0.4, 0.1),
                (side * 0.45, 0.35, -1.0),
            )
        ]
        while stack:
            p, d, length, r, level = stack.pop()
            q = p + d * length
            segs.append((p, q, r))
            if level < 4:
                stack += [(q, _unit(d + rng.normal(0.0, 0.45, 3)), 0.8 * length, 0.7 * r, level + 1) for _ in (0, 1)]
        centre = np.array([side * 0.45 * an.body_a, an.body_yc, (an.z_lung_base + an.z_lung_apex) / 2.0])
        half = np.array([an.lung_a, an.lung_b, h / 2.0])
        for _ in range(150):
            p = centre + half * rng.uniform(-1.0, 1.0, 3)
            q = p + _unit(rng.normal(size=3)) * float(rng.uniform(8.0, 25.0)) * an.scale
            segs.append((p, q, float(rng.uniform(0.6, 1.4)) * an.scale))
    return Tubes(np.array([s[0] for s in segs]), np.array([s[1] for s in segs]), np.array([s[2] for s in segs]))


def airways(an: Anatomy) -> Tubes:
    """The two main bronchi, from the carina to the hila."""
    carina = np.array([0.0, an.trachea_y, an.z_carina])
    ends = np.array([an.hilum(-1), an.hilum(1)])
    return Tubes(np.array([carina, carina]), ends, np.full(2, 0.055 * an.body_b))


def place_tumour(rng: np.random.Generator, an: Anatomy, geometry: VolumeGeometry) -> Tumour:
    """Draw a lobulated tumour of 10-60 mm longest diameter and place it wholly inside one lung (3 mm grid,
    distance transform), its surface at least 15 mm from the spinal cord. A tumour that fits nowhere is shrunk by
    10 % until it fits."""
    diameter = float(rng.uniform(10.0, 60.0))
    bumps = tuple(
        (*_unit(rng.normal(size=3)).round(4).tolist(), round(float(rng.uniform(0.03, 0.12)), 4)) for _ in range(5)
    )
    radius = diameter / Tumour((0.0, 0.0, 0.0), 1.0, bumps).longest_diameter_mm()
    sides = (-1, 1) if rng.random() < 0.55 else (1, -1)
    cs = 3.0
    xs = np.arange(geometry.axis_mm(0)[0], geometry.axis_mm(0)[-1], cs)
    ys = np.arange(geometry.axis_mm(1)[0], geometry.axis_mm(1)[-1], cs)
    zs = np.arange(an.z_lung_base - cs, an.z_lung_apex + 2 * cs, cs)
    env = np.stack([np.stack(lung_envelopes(an, xs, ys, float(z))) for z in zs], axis=1)  # (side, z, y, x)
    cord = np.sqrt(xs[None, :] ** 2 + (ys[:, None] - an.canal_y) ** 2)[None] - an.cord_r
    depth = [ndimage.distance_transform_edt(e, sampling=cs) for e in env]
    while radius > 2.0:
        tumour = Tumour((0.0, 0.0, 0.0), round(radius, 2), bumps)
        r_max = tumour.max_radius_mm
        for side in sides:
            ok = np.flatnonzero((depth[(side + 1) // 2] >= r_max + 3.0 * cs) & (cord >= r_max + 15.0))
            if ok.size:
                k, j, i = np.unravel_index(ok[rng.integers(ok.size)], env.shape[1:])
                jitter = rng.uniform(-cs / 2, cs / 2, 3)
                centre = (xs[i] + jitter[0], ys[j] + jitter[1], zs[k] + jitter[2])
                return Tumour(tuple(round(float(c), 2) for c in centre), tumour.radius_mm, bumps)  # type: ignore[arg-type]
        radius *= 0.9
    raise ValueError("the field of view is too small to hold a lung tumour")


def lobe_of(an: Anatomy, point_mm: tuple[float, float, float]) -> str:
    """Lobe (RUL, RML, RLL, LUL, LLL) of a point in a lung, after a simple fissure model: the oblique fissure rises
    from the anterior base (5 % of the lung height) to 65 % posteriorly; the middle lobe is the anterior
    third of the right lung between it and the horizontal fissure at 45 % of the lung height."""
    u = (point_mm[2] - an.z_lung_base) / (an.z_lung_apex - an.z_lung_base)
    v = min(max((point_mm[1] - an.body_yc) / an.lung_b, -1.0), 1.0)
    right = point_mm[0] < 0.0
    if u < 0.05 + 0.6 * (v + 1.0) / 2.0:
        return "RLL" if right else "LLL"
    if right and u < 0.45 and v < -0.2:
        return "RML"
    return "RUL" if right else "LUL"

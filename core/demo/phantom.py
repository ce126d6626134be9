"""Synthetic thorax anatomy and Hounsfield-unit synthesis for the demo study.

Coordinates are DICOM patient coordinates (LPS, millimetres) of a head-first-supine patient: +x towards the
patient's left, +y posterior, +z superior. Volumes are numpy arrays indexed ``[slice, row, column]`` = ``[z, y, x]``
(the SimpleITK array convention); slice 0 is the most inferior one. Every shape is an analytic function of the
position in mm, evaluated one axial slice at a time with broadcasting, so the anatomy does not depend on the voxel
size. Image values are Hounsfield units (HU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.spatial import distance

__all__ = [
    "HU",
    "STRUCTURES",
    "Anatomy",
    "Phantom",
    "Tumour",
    "VolumeGeometry",
    "build_phantom",
    "draw_anatomy",
    "lobe_of",
    "lung_envelopes",
    "place_tumour",
    "stream_rng",
]

#: Truth structures, in the order they are written.
STRUCTURES: tuple[str, ...] = ("body", "lung_left", "lung_right", "heart", "spinal_cord", "esophagus", "gtv")

Mask2D = NDArray[np.bool_]
F64 = NDArray[np.float64]


@dataclass(frozen=True)
class _HuTable:
    """Nominal tissue values in HU (before edge smoothing and noise)."""

    air: float = -1000.0
    fat: float = -100.0
    mediastinal_fat: float = -80.0
    muscle: float = 40.0
    liver: float = 60.0
    lung: float = -865.0
    lung_gradient: float = 25.0  # +/- HU from anterior (non-dependent) to posterior (dependent) lung
    vessel: float = 40.0
    heart: float = 40.0
    esophagus: float = 20.0
    cord: float = 30.0
    csf: float = 8.0
    bone: float = 700.0
    sternum: float = 600.0
    disc: float = 80.0
    tumour: float = 30.0
    noise_sigma: float = 12.0


HU = _HuTable()


@dataclass(frozen=True)
class VolumeGeometry:
    """Axis-aligned CT voxel grid. ``shape`` is (columns, rows, slices); spacing (dx, dy, dz) and the centre of
    voxel (0, 0, 0) are in mm, patient coordinates (LPS); the direction cosines are the identity (HFS axial)."""

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]

    @classmethod
    def centred(cls, shape: tuple[int, int, int], spacing_mm: tuple[float, float, float]) -> VolumeGeometry:
        """A grid centred on the patient-coordinate origin (positions rounded to 0.1 µm)."""
        origin = tuple(round(-(n - 1) * d / 2.0, 4) for n, d in zip(shape, spacing_mm, strict=True))
        return cls(shape=shape, spacing_mm=spacing_mm, origin_mm=(origin[0], origin[1], origin[2]))

    @property
    def array_shape(self) -> tuple[int, int, int]:
        """Numpy shape (slices, rows, columns)."""
        return (self.shape[2], self.shape[1], self.shape[0])

    @property
    def voxel_volume_mm3(self) -> float:
        return self.spacing_mm[0] * self.spacing_mm[1] * self.spacing_mm[2]

    def axis_mm(self, axis: int) -> F64:
        """Voxel-centre coordinates (mm) along x (0), y (1) or z (2), rounded to 0.1 µm."""
        return np.round(self.origin_mm[axis] + np.arange(self.shape[axis]) * self.spacing_mm[axis], 4)


@dataclass(frozen=True)
class Anatomy:
    """Seed-dependent anatomical parameters, all in mm (patient coordinates)."""

    body_a: float  # half width (left-right) of the body outline
    body_b: float  # half depth (antero-posterior) of the body outline
    body_yc: float
    fat_mm: float
    z_min: float
    z_max: float
    z_lung_base: float
    z_lung_apex: float
    dome_right_mm: float  # height of the diaphragmatic domes above the lung base
    dome_left_mm: float
    lung_a: float  # lung ellipse half width and half depth at full size
    lung_b: float
    heart_c: tuple[float, float, float]
    heart_r: tuple[float, float, float]
    spine_y: float  # centre of the vertebral body
    vert_r: float
    canal_y: float
    canal_r: float
    cord_r: float
    aorta_xy: tuple[float, float]
    aorta_r: float
    eso_xy: tuple[float, float]
    eso_r: tuple[float, float]
    eso_lumen_phase: float
    eso_lumen_fraction: float  # fraction of the length with an air lumen (0: never)
    trachea_y: float
    trachea_r: float
    z_carina: float
    rib_pitch: float
    rib_height: float
    rib_drop: float
    disc_phase: float
    lung_hu: float

    @property
    def scale(self) -> float:
        """Body size relative to a 165 mm half-width adult."""
        return self.body_a / 165.0

    def body_axes(self, z: float) -> tuple[float, float]:
        """Half width and half depth (mm) of the body outline at height z (slightly wider towards the shoulders)."""
        t = (z - self.z_min) / max(self.z_max - self.z_min, 1e-6)
        return self.body_a * (0.96 + 0.06 * t), self.body_b * (0.97 + 0.03 * math.sin(math.pi * t))

    def hilum(self, side: int) -> tuple[float, float, float]:
        """Hilum position of the right (side -1) or left (+1) lung."""
        h = self.z_lung_apex - self.z_lung_base
        return (side * 0.2 * self.body_a, self.body_yc - 0.02 * self.body_b, self.z_carina - 0.06 * h)


def draw_anatomy(rng: np.random.Generator, geometry: VolumeGeometry) -> Anatomy:
    """Draw body size and organ placement; the body is shrunk to fit the field of view."""
    fov_x = geometry.shape[0] * geometry.spacing_mm[0]
    fov_y = geometry.shape[1] * geometry.spacing_mm[1]
    z_axis = geometry.axis_mm(2)
    z_min, z_max = float(z_axis[0]), float(z_axis[-1])
    span = max(z_max - z_min, geometry.spacing_mm[2])
    a = min(float(rng.uniform(148.0, 185.0)), 0.45 * fov_x)  # up to 1.02 a towards the shoulders
    b = min(float(rng.uniform(98.0, 126.0)), 0.46 * fov_y, 0.8 * a)
    s = a / 165.0
    yc = float(rng.uniform(-6.0, 6.0)) * s
    fat = float(rng.uniform(8.0, 24.0)) * s
    base = z_min + float(rng.uniform(0.12, 0.17)) * span
    apex = z_max - float(rng.uniform(0.06, 0.10)) * span
    h = apex - base
    spine_y = yc + 0.36 * b
    vert_r, canal_r = 0.15 * b, 0.075 * b
    canal_y = spine_y + vert_r + canal_r + 1.5 * s
    eso_r = (0.1 * b, 0.065 * b)
    eso_y = spine_y - vert_r - eso_r[1] - 2.0 * s
    trachea_r = 0.08 * b
    return Anatomy(
        body_a=a, body_b=b, body_yc=yc, fat_mm=fat, z_min=z_min, z_max=z_max, z_lung_base=base, z_lung_apex=apex,
        dome_right_mm=float(rng.uniform(0.16, 0.22)) * h, dome_left_mm=float(rng.uniform(0.10, 0.15)) * h,
        lung_a=0.36 * a, lung_b=0.72 * b,
        heart_c=(0.10 * a, yc - 0.22 * b, base + float(rng.uniform(0.18, 0.26)) * h),
        heart_r=(0.31 * a * float(rng.uniform(0.9, 1.1)), 0.4 * b, 0.23 * h),
        spine_y=spine_y, vert_r=vert_r, canal_y=canal_y, canal_r=canal_r, cord_r=0.045 * b,
        aorta_xy=(0.13 * a, spine_y - 0.05 * b), aorta_r=0.1 * b,
        eso_xy=(0.02 * a, eso_y), eso_r=eso_r, eso_lumen_phase=float(rng.uniform(0.0, 2.0 * math.pi)),
        eso_lumen_fraction=float(rng.choice([0.0, 0.2, 0.35])),
        trachea_y=eso_y - eso_r[1] - trachea_r - 2.0 * s, trachea_r=trachea_r,
        z_carina=base + float(rng.uniform(0.6, 0.66)) * h,
        rib_pitch=float(rng.uniform(22, 27)) * s, rib_height=9.0 * s, rib_drop=0.16 * h,
        disc_phase=float(rng.uniform(0.0, 25.0)), lung_hu=HU.lung + float(rng.uniform(-10.0, 10.0)),
    )  # fmt: skip


def _ellipse(x: F64, y: F64, cx: float, cy: float, ra: float, rb: float) -> F64:
    """Squared normalised elliptical radius on the (rows, columns) grid spanned by 1-D x and y."""
    return ((x - cx) / ra)[None, :] ** 2 + ((y - cy) / rb)[:, None] ** 2


def _superellipse(x: F64, y: F64, cy: float, ra: float, rb: float, p: float = 2.2) -> Mask2D:
    return np.asarray((np.abs(x / ra) ** p)[None, :] + (np.abs((y - cy) / rb) ** p)[:, None] <= 1.0)


def _heart(an: Anatomy, x: F64, y: F64, z: float, grow: float = 0.0) -> Mask2D:
    (hx, hy, hz), (ra, rb, rc) = an.heart_c, an.heart_r
    k = 1.0 - ((z - hz) / (rc + grow)) ** 2
    if k <= 0.0:
        return np.zeros((y.size, x.size), dtype=bool)
    return np.asarray(_ellipse(x, y, hx, hy, ra + grow, rb + grow) <= k)


def _aorta_present(an: Anatomy, z: float) -> bool:
    return z <= an.z_lung_base + 0.72 * (an.z_lung_apex - an.z_lung_base)


def _eso_centre(an: Anatomy, z: float) -> tuple[float, float]:
    """The oesophagus swings left and anterior towards the hiatus below the lower fifth of the lungs."""
    u = (z - an.z_lung_base) / (an.z_lung_apex - an.z_lung_base)
    k = min(max((0.2 - u) / 0.3, 0.0), 1.0)
    return an.eso_xy[0] + 0.06 * an.body_a * k, an.eso_xy[1] - 0.08 * an.body_b * k


def lung_envelopes(an: Anatomy, x: F64, y: F64, z: float) -> tuple[Mask2D, Mask2D]:
    """(right, left) lung regions of the axial plane at height z, before the tumour is carved out: ellipses that
    taper to the apex, sit on domed diaphragms, and stop at the chest wall, mediastinum, heart, aorta and spine."""
    empty = np.zeros((y.size, x.size), dtype=bool)
    h = an.z_lung_apex - an.z_lung_base
    u = (z - an.z_lung_base) / h
    if not 0.0 < u < 1.0:
        return empty, empty.copy()
    w = 1.0 if u <= 0.45 else math.sqrt(max(1.0 - ((u - 0.45) / 0.55) ** 2, 0.0))
    a_z, b_z = an.body_axes(z)
    s = an.scale
    cwa, cwb = a_z - an.fat_mm - 8.0 * s, b_z - an.fat_mm - 8.0 * s
    delta = 4.0 * s / ((cwa + cwb) / 2.0)
    common = _ellipse(x, y, 0.0, an.body_yc, cwa, cwb) <= (1.0 - 1.6 * delta) ** 2
    med_w = 0.09 * an.body_a
    common &= ~((np.abs(x) < med_w)[None, :] & (y < an.spine_y)[:, None])
    common &= ~((np.abs(x) < an.vert_r + 6.0 * s)[None, :] & (y > an.spine_y)[:, None])
    common &= _ellipse(x, y, 0.0, an.spine_y, 1.0, 1.0) > (an.vert_r + 4.0 * s) ** 2
    common &= ~_heart(an, x, y, z, grow=4.0 * s)
    if _aorta_present(an, z):
        common &= _ellipse(x, y, an.aorta_xy[0], an.aorta_xy[1], 1.0, 1.0) > (an.aorta_r + 3.0 * s) ** 2
    ex, ey = _eso_centre(an, z)
    common &= _ellipse(x, y, ex, ey, an.eso_r[0] + 3.0 * s, an.eso_r[1] + 3.0 * s) > 1.0
    out: list[Mask2D] = []
    for side, dome in ((-1, an.dome_right_mm), (1, an.dome_left_mm)):
        cx = side * (0.47 - 0.10 * u) * an.body_a
        rho2 = _ellipse(x, y, cx, an.body_yc, an.lung_a, an.lung_b)
        lung = common & (rho2 <= w * w) & ((x * side) > 0.0)[None, :]
        dz = z - an.z_lung_base
        if dz < dome:  # dome centred slightly anteriorly: the posterior recesses reach lowest
            rho_dome = _ellipse(x, y, cx, an.body_yc - 0.3 * an.lung_b, an.lung_a, an.lung_b)
            lung &= rho_dome >= 1.0 - dz / dome
        out.append(lung)
    return out[0], out[1]


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


def _airways(an: Anatomy) -> Tubes:
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


def _ribs(an: Anatomy, x: F64, y: F64, z: float, a_z: float, b_z: float) -> Mask2D:
    """Ribs: bands on an ellipse inside the chest wall that descend by ``rib_drop`` from back to front."""
    s = an.scale
    if not an.z_lung_base - an.rib_drop <= z <= an.z_lung_apex:
        return np.zeros((y.size, x.size), dtype=bool)
    ra, rb = a_z - an.fat_mm - 7.0 * s, b_z - an.fat_mm - 7.0 * s
    px, py = (np.abs(x) / ra)[None, :], ((y - an.body_yc) / rb)[:, None]
    theta = np.arctan2(px, py)  # 0 at the spine, pi at the sternum
    zr = z + an.rib_drop * theta / math.pi
    band = np.abs(np.sqrt(px**2 + py**2) - 1.0) <= 3.5 * s / ((ra + rb) / 2.0)
    band &= (theta > 0.4) & (theta < 2.6) & (zr >= an.z_lung_base) & (zr <= an.z_lung_apex)
    return np.asarray(band & (((zr - an.z_lung_base) % an.rib_pitch) < an.rib_height))


@dataclass
class Phantom:
    """A synthesised study: ``hu`` (int16, HU, [z, y, x]) and uint8 truth ``masks`` (0/1) named as
    :data:`STRUCTURES`; ``bone`` marks the bony voxels (ribs, vertebrae, sternum; not a truth structure)."""

    geometry: VolumeGeometry
    anatomy: Anatomy
    tumour: Tumour
    hu: NDArray[np.int16]
    masks: dict[str, NDArray[np.uint8]]
    bone: NDArray[np.bool_]


def _paint_slice(
    an: Anatomy, tumour: Tumour, tubes: tuple[Tubes, Tubes], x: F64, y: F64, z: float
) -> tuple[NDArray[np.float32], dict[str, Mask2D], Mask2D]:
    """Nominal HU (before smoothing and noise), truth masks and bone mask of the axial plane at height z (mm)."""
    s, b = an.scale, an.body_b
    h = an.z_lung_apex - an.z_lung_base
    a_z, b_z = an.body_axes(z)
    img = np.full((y.size, x.size), HU.air, dtype=np.float32)
    body = _superellipse(x, y, an.body_yc, a_z, b_z)
    inner = _superellipse(x, y, an.body_yc, a_z - an.fat_mm, b_z - an.fat_mm)
    img[body] = HU.fat
    img[inner] = HU.muscle
    if z < an.z_lung_base + an.dome_right_mm + 10.0 * s:  # liver under the right dome
        img[inner & (_ellipse(x, y, -0.25 * an.body_a, an.body_yc, 0.55 * an.body_a, 0.7 * b) <= 1.0)] = HU.liver
    if an.z_lung_base <= z <= an.z_lung_apex:
        img[inner & (np.abs(x) < 0.16 * an.body_a)[None, :] & (y < an.spine_y)[:, None]] = HU.mediastinal_fat
    right, left = lung_envelopes(an, x, y, z)
    envelope = right | left
    lung_hu = an.lung_hu + HU.lung_gradient * np.clip((y - an.body_yc) / an.lung_b, -1.0, 1.0)
    img = np.where(envelope, lung_hu.astype(np.float32)[:, None], img)
    vessels, airways = tubes
    img[vessels.paint(x, y, z) & envelope] = HU.vessel
    img[airways.paint(x, y, z) & body] = HU.air
    if z >= an.z_carina:
        img[_ellipse(x, y, 0.0, an.trachea_y, an.trachea_r, an.trachea_r) <= 1.0] = HU.air
    heart = _heart(an, x, y, z)
    img[heart] = HU.heart
    if _aorta_present(an, z):
        img[_ellipse(x, y, an.aorta_xy[0], an.aorta_xy[1], an.aorta_r, an.aorta_r) <= 1.0] = HU.muscle
    ex, ey = _eso_centre(an, z)
    eso = _ellipse(x, y, ex, ey, an.eso_r[0], an.eso_r[1]) <= 1.0
    img[eso] = HU.esophagus
    if math.sin(z / (30.0 * s) + an.eso_lumen_phase) > 1.0 - 2.0 * an.eso_lumen_fraction:
        img[_ellipse(x, y, ex, ey, 0.3 * an.eso_r[0], 0.3 * an.eso_r[1]) <= 1.0] = HU.air
    ring = an.canal_r + 0.05 * b
    bone = _ellipse(x, y, 0.0, an.canal_y, ring, ring) <= 1.0  # laminae and pedicles
    bone |= _ellipse(x, y, 0.0, an.canal_y + an.canal_r + 0.1 * b, 0.03 * b, 0.1 * b) <= 1.0  # spinous process
    bone |= _ellipse(x, y, 0.0, an.canal_y, 0.3 * b, 0.03 * b) <= 1.0  # transverse processes
    vertebra = _ellipse(x, y, 0.0, an.spine_y, an.vert_r, an.vert_r) <= 1.0
    if (z - an.disc_phase) % (25.0 * s) < 5.0 * s:
        img[vertebra] = HU.disc
    else:
        bone |= vertebra
    bone |= _ribs(an, x, y, z, a_z, b_z) & body & ~envelope
    img[bone] = HU.bone
    if an.z_lung_base + 0.05 * h <= z <= an.z_lung_apex - 0.1 * h:
        sternum = _ellipse(x, y, 0.0, an.body_yc - b_z + an.fat_mm + 0.08 * b, 0.12 * b, 0.05 * b) <= 1.0
        img[sternum] = HU.sternum
        bone |= sternum
    canal = _ellipse(x, y, 0.0, an.canal_y, an.canal_r, an.canal_r) <= 1.0
    img[canal] = HU.csf
    bone &= ~canal
    cord = _ellipse(x, y, 0.0, an.canal_y, an.cord_r, an.cord_r) <= 1.0
    img[cord] = HU.cord
    gtv = tumour.paint(img, x, y, z)
    if (gtv & ~envelope).any():  # never happens with place_tumour's margin; keeps the GTV inside the lung
        gtv &= envelope
    masks = {
        "body": body, "lung_left": left & ~gtv, "lung_right": right & ~gtv, "heart": heart,
        "spinal_cord": cord, "esophagus": eso, "gtv": gtv,
    }  # fmt: skip
    return img, masks, bone


def stream_rng(seed: int, stream: int) -> np.random.Generator:
    """Independent, reproducible random stream number ``stream`` of ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def build_phantom(geometry: VolumeGeometry, seed: int) -> Phantom:
    """Synthesise the thorax for ``seed``: anatomy, vessels and tumour from random streams 1-3 and noise from 4;
    edges are smoothed in-plane (Gaussian, sigma 0.5 mm) and Gaussian noise (sigma 12 HU) is added."""
    an = draw_anatomy(stream_rng(seed, 1), geometry)
    tubes = (draw_vessels(stream_rng(seed, 2), an), _airways(an))
    tumour = place_tumour(stream_rng(seed, 3), an, geometry)
    x, y, zs = geometry.axis_mm(0), geometry.axis_mm(1), geometry.axis_mm(2)
    shape = geometry.array_shape
    vol = np.empty(shape, dtype=np.float32)
    masks = {name: np.zeros(shape, dtype=np.uint8) for name in STRUCTURES}
    bone = np.zeros(shape, dtype=bool)
    sigma = (0.5 / geometry.spacing_mm[1], 0.5 / geometry.spacing_mm[0])
    for k, z in enumerate(zs):
        img, slice_masks, bone[k] = _paint_slice(an, tumour, tubes, x, y, float(z))
        vol[k] = ndimage.gaussian_filter(img, sigma, truncate=3.0) if max(sigma) >= 0.2 else img
        for name, m in slice_masks.items():
            masks[name][k] = m
    noise = stream_rng(seed, 4).standard_normal(shape, dtype=np.float32)
    noise *= np.float32(HU.noise_sigma)
    vol += noise
    del noise
    np.rint(vol, out=vol)
    np.clip(vol, -1024.0, 3071.0, out=vol)
    return Phantom(geometry, an, tumour, vol.astype(np.int16), masks, bone)

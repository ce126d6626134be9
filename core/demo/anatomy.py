"""Synthetic thorax anatomy for the demo study: geometry, HU table, body, lungs, heart, mediastinum.

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

__all__ = [
    "F64",
    "HU",
    "Anatomy",
    "Mask2D",
    "VolumeGeometry",
    "aorta_present",
    "draw_anatomy",
    "ellipse",
    "eso_centre",
    "heart_mask",
    "lung_envelopes",
    "superellipse",
]

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


def ellipse(x: F64, y: F64, cx: float, cy: float, ra: float, rb: float) -> F64:
    """Squared normalised elliptical radius on the (rows, columns) grid spanned by 1-D x and y."""
    return ((x - cx) / ra)[None, :] ** 2 + ((y - cy) / rb)[:, None] ** 2


def superellipse(x: F64, y: F64, cy: float, ra: float, rb: float, p: float = 2.2) -> Mask2D:
    return np.asarray((np.abs(x / ra) ** p)[None, :] + (np.abs((y - cy) / rb) ** p)[:, None] <= 1.0)


def heart_mask(an: Anatomy, x: F64, y: F64, z: float, grow: float = 0.0) -> Mask2D:
    (hx, hy, hz), (ra, rb, rc) = an.heart_c, an.heart_r
    k = 1.0 - ((z - hz) / (rc + grow)) ** 2
    if k <= 0.0:
        return np.zeros((y.size, x.size), dtype=bool)
    return np.asarray(ellipse(x, y, hx, hy, ra + grow, rb + grow) <= k)


def aorta_present(an: Anatomy, z: float) -> bool:
    return z <= an.z_lung_base + 0.72 * (an.z_lung_apex - an.z_lung_base)


def eso_centre(an: Anatomy, z: float) -> tuple[float, float]:
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
    common = ellipse(x, y, 0.0, an.body_yc, cwa, cwb) <= (1.0 - 1.6 * delta) ** 2
    med_w = 0.09 * an.body_a
    common &= ~((np.abs(x) < med_w)[None, :] & (y < an.spine_y)[:, None])
    common &= ~((np.abs(x) < an.vert_r + 6.0 * s)[None, :] & (y > an.spine_y)[:, None])
    common &= ellipse(x, y, 0.0, an.spine_y, 1.0, 1.0) > (an.vert_r + 4.0 * s) ** 2
    common &= ~heart_mask(an, x, y, z, grow=4.0 * s)
    if aorta_present(an, z):
        common &= ellipse(x, y, an.aorta_xy[0], an.aorta_xy[1], 1.0, 1.0) > (an.aorta_r + 3.0 * s) ** 2
    ex, ey = eso_centre(an, z)
    common &= ellipse(x, y, ex, ey, an.eso_r[0] + 3.0 * s, an.eso_r[1] + 3.0 * s) > 1.0
    out: list[Mask2D] = []
    for side, dome in ((-1, an.dome_right_mm), (1, an.dome_left_mm)):
        cx = side * (0.47 - 0.10 * u) * an.body_a
        rho2 = ellipse(x, y, cx, an.body_yc, an.lung_a, an.lung_b)
        lung = common & (rho2 <= w * w) & ((x * side) > 0.0)[None, :]
        dz = z - an.z_lung_base
        if dz < dome:  # dome centred slightly anteriorly: the posterior recesses reach lowest
            rho_dome = ellipse(x, y, cx, an.body_yc - 0.3 * an.lung_b, an.lung_a, an.lung_b)
            lung &= rho_dome >= 1.0 - dz / dome
        out.append(lung)
    return out[0], out[1]

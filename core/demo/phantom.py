"""Hounsfield-unit synthesis of the demo thorax: paints anatomy (core/demo/anatomy.py), tumour and vessels
(core/demo/lesions.py) slice by slice into a CT volume and its truth masks.

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

from core.demo.anatomy import (
    F64,
    HU,
    Anatomy,
    Mask2D,
    VolumeGeometry,
    aorta_present,
    draw_anatomy,
    ellipse,
    eso_centre,
    heart_mask,
    lung_envelopes,
    superellipse,
)
from core.demo.lesions import Tubes, Tumour, airways, draw_vessels, lobe_of, place_tumour

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
    body = superellipse(x, y, an.body_yc, a_z, b_z)
    inner = superellipse(x, y, an.body_yc, a_z - an.fat_mm, b_z - an.fat_mm)
    img[body] = HU.fat
    img[inner] = HU.muscle
    if z < an.z_lung_base + an.dome_right_mm + 10.0 * s:  # liver under the right dome
        img[inner & (ellipse(x, y, -0.25 * an.body_a, an.body_yc, 0.55 * an.body_a, 0.7 * b) <= 1.0)] = HU.liver
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
        img[ellipse(x, y, 0.0, an.trachea_y, an.trachea_r, an.trachea_r) <= 1.0] = HU.air
    heart = heart_mask(an, x, y, z)
    img[heart] = HU.heart
    if aorta_present(an, z):
        img[ellipse(x, y, an.aorta_xy[0], an.aorta_xy[1], an.aorta_r, an.aorta_r) <= 1.0] = HU.muscle
    ex, ey = eso_centre(an, z)
    eso = ellipse(x, y, ex, ey, an.eso_r[0], an.eso_r[1]) <= 1.0
    img[eso] = HU.esophagus
    if math.sin(z / (30.0 * s) + an.eso_lumen_phase) > 1.0 - 2.0 * an.eso_lumen_fraction:
        img[ellipse(x, y, ex, ey, 0.3 * an.eso_r[0], 0.3 * an.eso_r[1]) <= 1.0] = HU.air
    ring = an.canal_r + 0.05 * b
    bone = ellipse(x, y, 0.0, an.canal_y, ring, ring) <= 1.0  # laminae and pedicles
    bone |= ellipse(x, y, 0.0, an.canal_y + an.canal_r + 0.1 * b, 0.03 * b, 0.1 * b) <= 1.0  # spinous process
    bone |= ellipse(x, y, 0.0, an.canal_y, 0.3 * b, 0.03 * b) <= 1.0  # transverse processes
    vertebra = ellipse(x, y, 0.0, an.spine_y, an.vert_r, an.vert_r) <= 1.0
    if (z - an.disc_phase) % (25.0 * s) < 5.0 * s:
        img[vertebra] = HU.disc
    else:
        bone |= vertebra
    bone |= _ribs(an, x, y, z, a_z, b_z) & body & ~envelope
    img[bone] = HU.bone
    if an.z_lung_base + 0.05 * h <= z <= an.z_lung_apex - 0.1 * h:
        sternum = ellipse(x, y, 0.0, an.body_yc - b_z + an.fat_mm + 0.08 * b, 0.12 * b, 0.05 * b) <= 1.0
        img[sternum] = HU.sternum
        bone |= sternum
    canal = ellipse(x, y, 0.0, an.canal_y, an.canal_r, an.canal_r) <= 1.0
    img[canal] = HU.csf
    bone &= ~canal
    cord = ellipse(x, y, 0.0, an.canal_y, an.cord_r, an.cord_r) <= 1.0
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
    tubes = (draw_vessels(stream_rng(seed, 2), an), airways(an))
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

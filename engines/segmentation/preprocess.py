"""Model input from a CT volume: anti-aliased resampling to the model spacing, intensity normalisation from the
manifest, padding to a multiple of ``divisible_by``. ``Prepared`` keeps what postprocess.restore needs to map the
model's probabilities back onto the source grid.

Grids: the source voxel (k, j, i) sits at (i*sx, j*sy, k*sz) mm (the origin does not matter here). The model grid
has n' = round(n*s/s') voxels per axis, centred on the source extent: first voxel at ((n-1)*s - (n'-1)*s') / 2.
Downsampling first smooths with a Gaussian of sigma = sqrt(s'^2 - s^2) / 2 mm per axis (none where s' <= s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813
from numpy.typing import NDArray
from scipy import ndimage

from core.segmentation.models import ModelManifest

__all__ = ["Prepared", "antialias_sigma_vox", "model_grid", "model_padding", "prepare", "resample_to_model"]

Vec3 = tuple[float, float, float]
Shape3 = tuple[int, int, int]


@dataclass(frozen=True)
class Prepared:
    """``image``: normalised float32 [Z, Y, X] on the model grid, padded; ``pad``: (before, after) per [z, y, x];
    ``model_shape``: the grid before padding; ``source_shape`` [z, y, x] and spacings (x, y, z) in mm."""

    image: NDArray[np.float32]
    source_shape: Shape3
    source_spacing_mm: Vec3
    model_spacing_mm: Vec3
    model_shape: Shape3
    model_origin_mm: Vec3  # model voxel 0 in source-grid mm (source voxel 0 at 0)
    pad: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]

    def crop(self, array: NDArray[Any]) -> NDArray[Any]:
        """Remove the padding from the last three axes of ``array``."""
        (z0, _), (y0, _), (x0, _) = self.pad
        z, y, x = self.model_shape
        return array[..., z0 : z0 + z, y0 : y0 + y, x0 : x0 + x]


def model_grid(source_shape: Shape3, source_spacing: Vec3, model_spacing: Vec3) -> tuple[Shape3, Vec3]:
    """Model grid shape [z, y, x] and the (x, y, z) mm position of its first voxel on the source grid."""
    size_xyz = [
        max(1, round(n * s / t)) for n, s, t in zip(source_shape[::-1], source_spacing, model_spacing, strict=True)
    ]
    origin = [
        ((n - 1) * s - (m - 1) * t) / 2.0
        for n, s, m, t in zip(source_shape[::-1], source_spacing, size_xyz, model_spacing, strict=True)
    ]
    return (size_xyz[2], size_xyz[1], size_xyz[0]), (origin[0], origin[1], origin[2])


def _image(array: NDArray[Any], spacing: Vec3, origin: Vec3 = (0.0, 0.0, 0.0)) -> Any:
    image: Any = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    return image


def antialias_sigma_vox(source_spacing: Vec3, model_spacing: Vec3) -> list[float] | None:
    """The anti-aliasing Gaussian's sigma per array axis (z, y, x), in source voxels: sqrt(s'^2 - s^2) / 2 mm (0 where
    s' <= s); None when no axis needs more than 0.2 voxel (no smoothing)."""
    pairs = zip(source_spacing[::-1], model_spacing[::-1], strict=True)
    sigma = [math.sqrt(max(t * t - s * s, 0.0)) / 2.0 / s for s, t in pairs]
    return sigma if max(sigma) > 0.2 else None


def model_padding(shape: Sequence[int], divisible_by: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(before, after) per axis [z, y, x] that makes ``shape`` a multiple of ``divisible_by`` (padding at the end)."""
    d = max(int(divisible_by), 1)
    z, y, x = ((0, (-int(n)) % d) for n in shape)
    return z, y, x


def resample_to_model(
    array: NDArray[Any], source_spacing: Vec3, model_spacing: Vec3, *, antialias: bool = True
) -> NDArray[np.float32]:
    """Linear resampling of a [z, y, x] array (HU, or a 0/1 mask giving fractions) onto the model grid."""
    data = np.asarray(array, dtype=np.float32)
    shape, origin = model_grid((data.shape[0], data.shape[1], data.shape[2]), source_spacing, model_spacing)
    sigma_vox = antialias_sigma_vox(source_spacing, model_spacing) if antialias else None
    if sigma_vox is not None:
        data = ndimage.gaussian_filter(data, sigma_vox, mode="nearest", truncate=3.0)
    out: Any = sitk.Resample(
        _image(data, source_spacing), (shape[2], shape[1], shape[0]), sitk.Transform(), sitk.sitkLinear, origin,
        tuple(float(s) for s in model_spacing), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), 0.0,
        sitk.sitkFloat32, True,
    )  # fmt: skip
    return np.asarray(sitk.GetArrayFromImage(out), dtype=np.float32)


def prepare(hu: NDArray[Any], spacing_mm: Vec3, manifest: ModelManifest) -> Prepared:
    """The model input for a CT volume ``hu`` [z, y, x] with voxel spacing (x, y, z) mm."""
    if np.ndim(hu) != 3:
        raise ValueError(f"a 3-D volume is needed, not shape {np.shape(hu)}")
    source_shape = (int(hu.shape[0]), int(hu.shape[1]), int(hu.shape[2]))
    spacing = (float(spacing_mm[0]), float(spacing_mm[1]), float(spacing_mm[2]))
    model_spacing = manifest.spacing_mm
    shape, origin = model_grid(source_shape, spacing, model_spacing)
    norm = manifest.normalisation
    # clip before smoothing so bone and metal do not bleed into soft tissue more than the model saw in training
    clipped = np.clip(np.asarray(hu, dtype=np.float32), norm.clip_hu[0], norm.clip_hu[1])
    image = norm.apply(resample_to_model(clipped, spacing, model_spacing))
    pad = model_padding(image.shape, manifest.divisible_by)
    pad_value = np.float32(norm.value_of(norm.clip_hu[0]))
    if any(after for _, after in pad):
        image = np.pad(image, pad, mode="constant", constant_values=pad_value)
    return Prepared(
        image=np.ascontiguousarray(image, dtype=np.float32),
        source_shape=source_shape,
        source_spacing_mm=spacing,
        model_spacing_mm=model_spacing,
        model_shape=shape,
        model_origin_mm=origin,
        pad=pad,
    )

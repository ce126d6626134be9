"""Back to the source grid: the model's probabilities are resampled (linear, per class) onto the source CT grid
and only then turned into labels (argmax), so boundaries are placed between model voxels rather than on them.
Then the manifest's rules give one mask per structure (``derived`` unions, largest connected component)."""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813
from numpy.typing import NDArray

from core.segmentation.edit import largest_component
from core.segmentation.models import ModelManifest
from engines.segmentation.preprocess import Prepared

__all__ = ["largest_component", "restore", "structure_masks"]


def _resample_back(channel: NDArray[np.float32], prepared: Prepared) -> NDArray[np.float32]:
    image: Any = sitk.GetImageFromArray(np.ascontiguousarray(channel, dtype=np.float32))
    image.SetSpacing(prepared.model_spacing_mm)
    image.SetOrigin(prepared.model_origin_mm)
    z, y, x = prepared.source_shape
    out: Any = sitk.Resample(
        image, (x, y, z), sitk.Transform(), sitk.sitkLinear, (0.0, 0.0, 0.0), prepared.source_spacing_mm,
        (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), 0.0, sitk.sitkFloat32, True,
    )  # fmt: skip
    return np.asarray(sitk.GetArrayFromImage(out), dtype=np.float32)


def restore(probs: NDArray[np.float32], prepared: Prepared) -> NDArray[np.uint8]:
    """Label map (class indices, uint8) on the source grid from model-grid probabilities [C, Z', Y', X'] (padded
    as ``prepared.image``): padding cropped, each class resampled linearly, then argmax (first class wins ties)."""
    if probs.ndim != 4 or probs.shape[1:] != prepared.image.shape:
        raise ValueError(f"probabilities of shape {probs.shape} do not match the prepared image {prepared.image.shape}")
    cropped = prepared.crop(probs)
    best = np.full(prepared.source_shape, -np.inf, dtype=np.float32)
    labels = np.zeros(prepared.source_shape, dtype=np.uint8)
    for c in range(cropped.shape[0]):
        p = _resample_back(cropped[c], prepared)
        better = p > best
        labels[better] = c
        np.maximum(best, p, out=best)
    return labels


def structure_masks(labels: NDArray[np.integer[Any]], manifest: ModelManifest) -> dict[str, NDArray[np.uint8]]:
    """One 0/1 mask per output structure (manifest ``derived`` unions, then its largest-component rule)."""
    return manifest.structure_masks(labels)

"""Back to the source grid: the model's probabilities are resampled (linear, per class) onto the source CT grid
and only then turned into labels (argmax), so boundaries are placed between model voxels rather than on them.
Then the manifest's rules give one mask per structure (``derived`` unions, largest connected component), and its
``refine`` rules re-draw a lesion's edge on the CT itself (core.segmentation.refine)."""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813
from numpy.typing import NDArray

from core.segmentation.edit import largest_component
from core.segmentation.models import ModelManifest
from core.segmentation.refine import refine_structures
from engines.segmentation.preprocess import Prepared

__all__ = ["final_masks", "largest_component", "restore", "structure_masks"]


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


def final_masks(
    labels: NDArray[np.integer[Any]], manifest: ModelManifest, hu: NDArray[Any], spacing_mm: tuple[float, float, float]
) -> tuple[dict[str, NDArray[np.uint8]], list[str]]:
    """Structure masks with the manifest's ``refine`` rules applied on the source CT (HU, [z, y, x], spacing x, y,
    z); returns the masks and one note per refined structure. Without rules: ``structure_masks``.

    Order: the lesion's own largest component -> edge refinement -> the refined lesion is taken out of every
    other structure that does not contain it by definition (a ``derived`` union such as the body) -> the other
    structures' largest components. Taking the lesion out first matters: the network can label part of a
    tumour as another soft-tissue class (held-out seed 0 had a "spinal cord" blob inside the tumour, larger than
    the real cord, which the largest-component rule then kept)."""
    if not manifest.refine:
        return structure_masks(labels, manifest), []
    masks = manifest.structure_masks(labels, clean=False)
    keep = dict(manifest.largest_component)
    for name in manifest.refine:
        if name in keep and name in masks:
            masks[name] = largest_component(masks[name], keep.pop(name)).astype(np.uint8)
    masks, notes = refine_structures(masks, hu, spacing_mm, manifest.refine)
    lesions = [masks[name] != 0 for name in manifest.refine if name in masks]
    lesion = np.logical_or.reduce(lesions) if lesions else None
    for name in list(masks):
        if name in manifest.refine:
            continue
        mask = masks[name] != 0
        contains = set(manifest.derived.get(name, ())) & set(manifest.refine)
        if lesion is not None and not contains:
            mask &= ~lesion
        elif lesion is not None:
            mask |= lesion
        if name in keep:
            mask = largest_component(mask, min_fraction=keep[name])
        masks[name] = mask.astype(np.uint8)
    return masks, notes

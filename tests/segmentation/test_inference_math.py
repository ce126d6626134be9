"""The backend-agnostic inference math: sliding window blending, resampling there and back, manifest rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.segmentation.models import CancelledError, ModelManifest, Normalisation
from engines.segmentation.postprocess import largest_component, restore, structure_masks
from engines.segmentation.preprocess import model_grid, prepare, resample_to_model
from engines.segmentation.sliding_window import gaussian_importance, patch_starts, sliding_window_predict, softmax


def manifest(spacing: tuple[float, float, float] = (2.4, 2.4, 2.5), divisible_by: int = 8) -> ModelManifest:
    return ModelManifest(
        directory=Path("."), name="test", version="0", task="segmentation", format="onnx", file="m.onnx",
        sha256="0", labels=("background", "body", "lesion"), roi_names={}, spacing_mm=spacing,
        patch_size=(16, 32, 32), divisible_by=divisible_by,
        normalisation=Normalisation("ct_clip", (-1000.0, 1000.0), -400.0, 500.0),
        derived={"body": ("body", "lesion")}, largest_component={"body": 1.0},
    )  # fmt: skip


def voxelwise(batch: np.ndarray) -> np.ndarray:
    """A 'model' whose logits depend on each voxel alone: blending must then reproduce them exactly."""
    x = batch[:, 0]
    return np.stack([np.zeros_like(x), 3.0 * x, -2.0 * x + 1.0], axis=1).astype(np.float32)


def test_patch_starts_cover_and_overlap() -> None:
    for length, patch in ((100, 32), (32, 32), (20, 32), (97, 48)):
        starts = patch_starts(length, patch, 0.5)
        covered = np.zeros(max(length, patch), bool)
        for s in starts:
            covered[s : s + patch] = True
        assert covered[:length].all() and starts[0] == 0 and starts[-1] + patch >= length
    assert len(patch_starts(100, 32, 0.5)) == 6  # step 16: ceil(68 / 16) + 1
    w = gaussian_importance((8, 16, 16))
    assert w.shape == (8, 16, 16) and w.max() == pytest.approx(1.0, abs=0.02) and w.min() > 0


def test_sliding_window_reproduces_a_voxelwise_model() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(40, 50, 45)).astype(np.float32)
    seen: list[float] = []
    probs = sliding_window_predict(
        image, voxelwise, patch_size=(16, 32, 32), num_classes=3, overlap=0.5, batch_size=3, progress=seen.append
    )
    expected = softmax(voxelwise(image[None, None]))[0]
    assert probs.shape == (3, 40, 50, 45)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    small = sliding_window_predict(image[:8, :10, :12], voxelwise, patch_size=(16, 32, 32), num_classes=3)
    np.testing.assert_allclose(small, expected[:, :8, :10, :12], atol=1e-5)


def test_sliding_window_cancel_and_shape_check() -> None:
    image = np.zeros((32, 64, 64), np.float32)
    calls = []

    def predict(batch: np.ndarray) -> np.ndarray:
        calls.append(1)
        return voxelwise(batch)

    with pytest.raises(CancelledError):
        sliding_window_predict(
            image, predict, patch_size=(16, 32, 32), num_classes=3, cancelled=lambda: len(calls) >= 2
        )
    assert len(calls) == 2
    with pytest.raises(ValueError, match="shape"):
        sliding_window_predict(image, lambda b: b, patch_size=(16, 32, 32), num_classes=3)


def sphere_volume(shape_zyx: tuple[int, int, int], spacing: tuple[float, float, float], centre_mm, radius_mm):
    z, y, x = np.ogrid[: shape_zyx[0], : shape_zyx[1], : shape_zyx[2]]
    d2 = (
        (x * spacing[0] - centre_mm[0]) ** 2
        + (y * spacing[1] - centre_mm[1]) ** 2
        + (z * spacing[2] - centre_mm[2]) ** 2
    )
    return (d2 <= radius_mm**2).astype(np.uint8)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_prepare_restore_round_trip_keeps_geometry() -> None:
    """Fractions resampled to the model grid and back land where the source mask was (no half-voxel shift)."""
    src_spacing = (0.8, 0.8, 2.5)
    shape = (40, 150, 140)  # z, y, x: 112 x 120 x 100 mm
    lesion = sphere_volume(shape, src_spacing, (47.0, 61.0, 52.0), 15.0)
    body = sphere_volume(shape, src_spacing, (56.0, 60.0, 50.0), 45.0) | lesion
    hu = np.where(body, 40.0, -1000.0).astype(np.float32)
    m = manifest()
    prepared = prepare(hu, src_spacing, m)
    grid_shape, _ = model_grid(shape, src_spacing, m.spacing_mm)
    assert prepared.model_shape == grid_shape == (40, 50, 47)
    assert all(n % 8 == 0 for n in prepared.image.shape)
    assert prepared.image.min() == pytest.approx(-1.2) and prepared.image.max() == pytest.approx(0.88, abs=0.01)
    frac = {
        k: resample_to_model(v, src_spacing, m.spacing_mm, antialias=False) for k, v in (("b", body), ("l", lesion))
    }
    p_lesion, p_body = frac["l"], np.clip(frac["b"] - frac["l"], 0, 1)
    probs = np.stack([1 - p_body - p_lesion, p_body, p_lesion])
    padded = np.zeros((3, *prepared.image.shape), np.float32)
    padded[0] = 1.0
    padded[:, : grid_shape[0], : grid_shape[1], : grid_shape[2]] = probs
    labels = restore(padded, prepared)
    assert labels.shape == shape and labels.dtype == np.uint8
    masks = structure_masks(labels, m)
    assert dice(masks["lesion"], lesion) > 0.97
    assert dice(masks["body"], body) > 0.99
    centroid = [np.argwhere(x).mean(axis=0) for x in (masks["lesion"], lesion)]
    assert np.abs((centroid[0] - centroid[1]) * np.array(src_spacing[::-1])).max() < 0.5


def test_structure_masks_union_and_largest_component() -> None:
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1:6, 1:6, 1:6] = 1
    labels[2:4, 2:4, 2:4] = 2
    labels[8:10, 8:10, 8:10] = 1  # a stray island of body
    masks = structure_masks(labels, manifest())
    assert masks["body"].sum() == 125 and masks["lesion"].sum() == 8
    assert masks["body"][9, 9, 9] == 0
    assert largest_component(labels == 1, min_fraction=0.05).sum() == 125 - 8 + 8

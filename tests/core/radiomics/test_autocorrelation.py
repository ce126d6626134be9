"""Moran's I / Geary's C by FFT convolution equal the pairwise double sums, for ROIs of any size."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from core.radiomics.autocorrelation import moran_geary, moran_geary_pairs
from core.radiomics.ibsi_check import check_phantom
from core.radiomics.morphology import morphology
from core.radiomics.preprocess import RadiomicsInputError

PHANTOM = Path(__file__).resolve().parents[2] / "data" / "ibsi1-digital-phantom"
Vec3 = tuple[float, float, float]


def _pairs(mask: NDArray[np.bool_], image: NDArray[np.float64], spacing: Vec3) -> tuple[float, float]:
    points = np.argwhere(mask).astype(np.float64) * np.asarray(spacing)
    return moran_geary_pairs(points, image[mask].astype(np.float64))


def _sphere(radius: float, shape: tuple[int, int, int] | None = None) -> NDArray[np.bool_]:
    size = 2 * math.ceil(radius) + 3
    grid = np.indices(shape or (size, size, size)) - (np.asarray(shape or (size,) * 3)[:, None, None, None] - 1) / 2
    return np.asarray((grid**2).sum(axis=0) <= radius**2)


def _blob() -> NDArray[np.bool_]:
    rng = np.random.default_rng(3)
    return np.asarray(rng.random((9, 12, 14)) < 0.35)


def _line() -> NDArray[np.bool_]:
    mask = np.zeros((5, 7, 30), bool)
    mask[2, 3, 1:27] = True  # one voxel wide along x
    return mask


def _edge() -> NDArray[np.bool_]:
    mask = np.zeros((6, 8, 10), bool)
    mask[:3, :, :4] = True  # touches five faces of the array
    mask[5, 7, 9] = True  # and the opposite corner
    return mask


CASES = {
    "sphere": (_sphere(4.2), (1.0, 1.0, 1.0)),
    "blob": (_blob(), (2.0, 1.5, 1.0)),
    "line": (_line(), (1.0, 1.0, 1.0)),
    "edge": (_edge(), (1.0, 1.0, 1.0)),
    "anisotropic": (_sphere(5.0), (2.5, 0.8, 0.8)),  # (z, y, x) as morphology passes it
    "anisotropic_blob": (_blob(), (2.5, 0.8, 0.8)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fft_equals_the_pairwise_sums(name: str) -> None:
    mask, spacing = CASES[name]
    rng = np.random.default_rng(7)
    z = np.indices(mask.shape)[0]
    image = rng.normal(100.0, 20.0, mask.shape) + 5.0 * z  # noise plus a gradient: Moran's I clearly non-zero
    image[~mask] = np.nan  # outside the ROI must not leak in
    expected = _pairs(mask, image, spacing)
    assert all(math.isfinite(v) for v in expected)
    assert moran_geary(mask, image, spacing) == pytest.approx(expected, rel=1e-9, abs=0)


def test_spacing_is_per_axis_in_array_order() -> None:
    mask, spacing = CASES["anisotropic_blob"]
    image = np.random.default_rng(5).normal(size=mask.shape)
    swapped = (spacing[2], spacing[1], spacing[0])
    assert moran_geary(mask, image, spacing) == pytest.approx(_pairs(mask, image, spacing), rel=1e-9)
    assert moran_geary(mask, image, swapped) != pytest.approx(moran_geary(mask, image, spacing), rel=1e-3)


@pytest.mark.parametrize("limit", [3_000, 1_200, 400])  # 3, 5 and 9 slabs of the 9-plane box
def test_slabs_along_z_give_the_same_result(limit: int) -> None:
    mask, spacing = CASES["anisotropic_blob"]
    image = np.random.default_rng(11).normal(size=mask.shape)
    expected = _pairs(mask, image, spacing)
    assert moran_geary(mask, image, spacing, max_fft_elements=limit) == pytest.approx(expected, rel=1e-9, abs=0)


def test_a_plane_over_the_limit_is_refused() -> None:
    mask, spacing = CASES["blob"]
    with pytest.raises(RadiomicsInputError, match="too large"):
        moran_geary(mask, np.indices(mask.shape)[0] * 1.0, spacing, max_fft_elements=10)


def test_degenerate_rois_are_nan() -> None:
    mask = _sphere(3.0)
    nan_pair = pytest.approx((math.nan, math.nan), nan_ok=True)
    assert moran_geary(mask, np.full(mask.shape, 0.1), (1.0, 1.0, 1.0)) == nan_pair  # constant intensity
    one = np.zeros((3, 3, 3), bool)
    one[1, 1, 1] = True
    assert moran_geary(one, np.arange(27.0).reshape(3, 3, 3), (1.0, 1.0, 1.0)) == nan_pair
    assert moran_geary(np.zeros((3, 3, 3), bool), np.zeros((3, 3, 3)), (1.0, 1.0, 1.0)) == nan_pair


def test_two_voxels() -> None:
    mask = np.zeros((4, 4, 4), bool)
    mask[0, 1, 1] = mask[3, 2, 1] = True
    image = np.zeros(mask.shape)
    image[3, 2, 1] = 10.0
    # dev = (-5, 5): Moran = 2 / (2 w) * (2 w * -25) / 50 = -1; Geary = 1 / (4 w) * 2 w * 100 / 50 = 1
    assert moran_geary(mask, image, (2.0, 1.0, 1.0)) == pytest.approx((-1.0, 1.0), rel=1e-12)
    assert moran_geary(mask, image, (2.0, 1.0, 1.0)) == pytest.approx(_pairs(mask, image, (2.0, 1.0, 1.0)))


def test_above_the_former_40000_voxel_limit() -> None:
    mask = _sphere(23.0)
    assert mask.sum() > 50_000
    z, y, x = np.indices(mask.shape)
    spacing = (1.0, 1.0, 1.0)
    smooth = moran_geary(mask, z + 0.5 * y + 0.25 * x, spacing)
    checker = moran_geary(mask, ((z + y + x) % 2).astype(np.float64), spacing)
    assert smooth[0] > 0.1 and smooth[1] < 0.9  # a gradient: positive autocorrelation
    assert checker[0] < 0 and checker[1] > 1  # neighbours alternate: negative autocorrelation
    sliced = moran_geary(mask, z + 0.5 * y + 0.25 * x, spacing, max_fft_elements=100_000)  # 5 slabs
    assert sliced == pytest.approx(smooth, rel=1e-9)
    features = morphology(mask, mask, ((z + y + x) % 2).astype(np.float64), spacing)
    assert (features["morph_moran_i"], features["morph_geary_c"]) == pytest.approx(checker, rel=1e-12)


@pytest.mark.slow
def test_above_the_former_limit_equals_the_pairwise_sums() -> None:
    mask = _sphere(22.9)
    assert mask.sum() > 50_000
    image = np.random.default_rng(0).normal(size=mask.shape) + 0.05 * np.indices(mask.shape)[0]
    spacing = (2.5, 0.8, 0.8)
    assert moran_geary(mask, image, spacing) == pytest.approx(_pairs(mask, image, spacing), rel=1e-9, abs=0)


def test_ibsi_digital_phantom_reference_values() -> None:
    rows = {r.tag: r for r in check_phantom(PHANTOM) if r.tag in ("morph_moran_i", "morph_geary_c")}
    assert set(rows) == {"morph_moran_i", "morph_geary_c"}
    for row in rows.values():
        assert row.passed, (row.tag, row.reference, row.ours)

"""The scanline even-odd fill of rtstruct_to_masks against skimage.draw.polygon (pixel centre inside), on random
polygons with vertices off the pixel grid (so no centre lies exactly on an edge), self-intersecting ones too."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import polygon

from core.dicom.writers.rtstruct import _crossings


def scanline(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    toggles = np.zeros((shape[0], shape[1] + 1), dtype=bool)
    rr, cc = _crossings(rows, cols, shape)
    np.logical_xor.at(toggles, (rr, cc), True)
    return np.logical_xor.accumulate(toggles[:, : shape[1]], axis=1)


@pytest.mark.parametrize("seed", range(40))
def test_scanline_fill_matches_skimage(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 40))
    shape = (64, 80)
    if seed % 2:  # star-shaped, simple
        angle = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(5, 30, n)
        rows, cols = 32 + radius * np.sin(angle) + 0.37, 40 + radius * np.cos(angle) + 0.21
    else:  # random vertices: self-intersecting, partly outside the grid
        rows, cols = rng.uniform(-10, 74, n) + 0.013, rng.uniform(-10, 90, n) + 0.017
    expected = np.zeros(shape, dtype=bool)
    rr, cc = polygon(rows, cols, shape=shape)
    expected[rr, cc] = True
    np.testing.assert_array_equal(scanline(rows, cols, shape), expected)


def test_a_degenerate_contour_fills_nothing() -> None:
    flat = np.array([5.5, 5.5, 5.5]), np.array([1.0, 9.0, 4.0])
    assert not scanline(*flat, (10, 10)).any()
    outside = np.array([-5.0, -5.0, -2.0]), np.array([1.0, 9.0, 4.0])
    assert not scanline(*outside, (10, 10)).any()

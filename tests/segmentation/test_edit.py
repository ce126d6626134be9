"""Mask edit operations and seeded region growing (core.segmentation.edit)."""

from __future__ import annotations

import numpy as np
import pytest

from core.demo.phantom import VolumeGeometry, build_phantom
from core.segmentation.edit import (
    EditError,
    add,
    erase,
    expand_margin_mm,
    fill_holes,
    fill_holes_2d,
    largest_component,
    mm_to_voxel,
    region_grow,
    sphere,
)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_add_erase_and_shape_check() -> None:
    a = np.zeros((4, 5, 6), np.uint8)
    a[1:3, 1:3, 1:3] = 1
    b = np.zeros_like(a)
    b[2:4, 2:4, 2:4] = 1
    assert add(a, b).sum() == 8 + 8 - 1 and add(a, b).dtype == np.uint8
    assert erase(a, b).sum() == 7 and erase(a, b)[2, 2, 2] == 0
    assert a.sum() == 8  # inputs untouched
    with pytest.raises(EditError, match="different shapes"):
        add(a, np.zeros((4, 5, 7), np.uint8))


def test_fill_holes_3d_and_2d() -> None:
    shell = np.zeros((9, 9, 9), np.uint8)
    shell[1:8, 1:8, 1:8] = 1
    shell[3:6, 3:6, 3:6] = 0  # a closed cavity
    assert fill_holes(shell).sum() == 7**3
    tube = np.zeros((5, 9, 9), np.uint8)
    tube[:, 1:8, 1:8] = 1
    tube[:, 3:6, 3:6] = 0  # open at both ends: not a 3-D hole, but a hole in every slice
    assert fill_holes(tube).sum() == tube.sum()
    assert fill_holes_2d(tube).sum() == 5 * 49


def test_expand_margin_mm_matches_sphere_volumes() -> None:
    spacing = (1.0, 1.0, 2.0)  # x, y, z
    shape = (40, 80, 80)
    ball = sphere(shape, spacing, (20, 40, 40), 10.0)
    grown = expand_margin_mm(ball, spacing, 5.0)
    # the ball's outermost voxel centres lie between 9 and 10 mm out (z spacing 2 mm): everything within 14 mm of
    # the centre is reached, nothing beyond 15 mm
    assert (grown >= sphere(shape, spacing, (20, 40, 40), 14.0)).all()
    assert (grown <= sphere(shape, spacing, (20, 40, 40), 15.0)).all()
    assert (grown >= ball).all()
    shrunk = expand_margin_mm(ball, spacing, -4.0)
    # shrinking is growing the outside: a voxel stays when no outside voxel centre is within 4 mm
    np.testing.assert_array_equal(shrunk, 1 - expand_margin_mm(1 - ball, spacing, 4.0))
    assert (shrunk <= sphere(shape, spacing, (20, 40, 40), 7.0)).all()
    assert (shrunk >= sphere(shape, spacing, (20, 40, 40), 5.0)).all()
    np.testing.assert_array_equal(expand_margin_mm(ball, spacing, 0.0), ball)
    # a margin only along z (x, y, z): the in-plane extent at the centre slice does not change
    zonly = expand_margin_mm(ball, spacing, (0.0, 0.0, 6.0))
    np.testing.assert_array_equal(zonly[20], ball[20])
    assert zonly[:, 40, 40].sum() == ball[:, 40, 40].sum() + 6
    with pytest.raises(EditError):
        expand_margin_mm(ball, spacing, (1.0, -1.0, 0.0))


def test_largest_component_keeps_the_biggest() -> None:
    m = np.zeros((10, 10, 10), np.uint8)
    m[0:4, 0:4, 0:4] = 1
    m[6:8, 6:8, 6:8] = 1
    assert largest_component(m).sum() == 64
    assert largest_component(m, min_fraction=0.1).sum() == 72


def test_region_grow_on_a_synthetic_lesion() -> None:
    rng = np.random.default_rng(1)
    spacing = (1.0, 1.0, 2.0)
    shape = (30, 64, 64)
    truth = sphere(shape, spacing, (15, 32, 32), 12.0)
    hu = np.where(truth, 35.0, -850.0) + rng.normal(0, 12, shape)
    grown = region_grow(hu, spacing, (15, 32, 32))
    assert dice(grown, truth) > 0.97
    by_mm = region_grow(hu, spacing, (32.0, 32.0, 30.0), seed_in_mm=True, lower=-300, upper=300)
    assert dice(by_mm, truth) > 0.97
    assert mm_to_voxel((32.0, 32.0, 30.0), spacing) == (15, 32, 32)
    with pytest.raises(EditError, match="outside the image"):
        region_grow(hu, spacing, (40, 0, 0))
    with pytest.raises(EditError, match="outside the window"):
        region_grow(hu, spacing, (15, 32, 32), lower=-1000, upper=-500)


@pytest.mark.slow
def test_region_grow_segments_the_demo_tumour() -> None:
    """On a demo phantom, a click on the tumour centre with a soft-tissue window finds the GTV."""
    geometry = VolumeGeometry.centred((160, 160, 60), (2.5, 2.5, 5.0))
    phantom = build_phantom(geometry, seed=7)
    centre = phantom.tumour.centre_mm
    seed = mm_to_voxel(centre, geometry.spacing_mm, geometry.origin_mm)
    grown = region_grow(phantom.hu, geometry.spacing_mm, seed, lower=-400, upper=400)
    assert dice(grown, phantom.masks["gtv"]) > 0.85

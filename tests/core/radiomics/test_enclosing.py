"""OMBB and MVEE (core.radiomics.enclosing) against shapes whose box and ellipsoid are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.radiomics.enclosing import min_area_rectangle, min_volume_ellipsoid, oriented_min_box
from core.radiomics.morphology import morphology


def _box_points(lengths: tuple[float, float, float], rotation: Rotation, rng: np.random.Generator) -> np.ndarray:
    half = np.asarray(lengths) / 2
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
    inside = rng.uniform(-1, 1, size=(500, 3)) * half
    return np.asarray(rotation.apply(np.vstack([corners, inside])) + np.array([10.0, -4.0, 7.0]))


def test_min_area_rectangle_of_a_rotated_rectangle() -> None:
    angle = math.radians(27)
    u, v = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
    corners = np.array([0 * u, 6 * u, 6 * u + 2 * v, 2 * v])
    area, found = min_area_rectangle(np.vstack([corners, corners.mean(axis=0)]))
    assert area == pytest.approx(12.0)
    assert math.remainder(found - angle, math.pi / 2) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oriented_box_finds_a_rotated_box(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rotation = Rotation.random(random_state=seed)
    pts = _box_points((40.0, 25.0, 10.0), rotation, rng)
    box = oriented_min_box(pts)
    assert box.lengths == pytest.approx((40.0, 25.0, 10.0), rel=1e-6)
    aabb = float(np.prod(pts.max(axis=0) - pts.min(axis=0)))
    assert box.volume <= aabb * (1 + 1e-12)
    proj = (pts - pts.mean(axis=0)) @ box.axes.T
    assert np.all(proj.max(axis=0) - proj.min(axis=0) <= np.asarray(box.lengths) + 1e-9)  # every point inside


def test_box_corners_give_the_known_ellipsoid() -> None:
    """The minimum ellipsoid around a box of half-sides a, b, c has semi-axes sqrt(3) a, sqrt(3) b, sqrt(3) c."""
    rotation = Rotation.from_euler("zyx", [30, 20, 10], degrees=True)
    pts = _box_points((8.0, 4.0, 2.0), rotation, np.random.default_rng(3))
    ell = min_volume_ellipsoid(pts)
    assert ell.semi_axes == pytest.approx((4 * math.sqrt(3), 2 * math.sqrt(3), math.sqrt(3)), rel=1e-3)
    diff = pts - ell.centre
    assert np.einsum("ij,jk,ik->i", diff, ell.shape, diff).max() <= 1 + 1e-9
    assert ell.centre == pytest.approx([10.0, -4.0, 7.0], abs=1e-3)


def test_points_on_an_ellipsoid_give_that_ellipsoid() -> None:
    rng = np.random.default_rng(4)
    direction = rng.normal(size=(2000, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    pts = Rotation.random(random_state=4).apply(direction * [30.0, 12.0, 5.0])
    ell = min_volume_ellipsoid(pts)
    assert ell.semi_axes == pytest.approx((30.0, 12.0, 5.0), rel=1e-3)
    assert ell.volume == pytest.approx(4 / 3 * math.pi * 30 * 12 * 5, rel=3e-3)


def test_too_few_points_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 4 points"):
        min_volume_ellipsoid(np.zeros((3, 3)))


def _voxel_box(angle_deg: float) -> np.ndarray:
    z, y, x = np.mgrid[0:20, 0:60, 0:60].astype(float)
    a = math.radians(angle_deg)
    u = (x - 30) * math.cos(a) + (y - 30) * math.sin(a)
    v = -(x - 30) * math.sin(a) + (y - 30) * math.cos(a)
    return (np.abs(u) <= 18) & (np.abs(v) <= 6) & (z >= 4) & (z < 16)


def test_densities_of_a_rotated_voxel_box() -> None:
    """A box turned 30 degrees in-plane: its axis-aligned box is loose, its oriented box is tight."""
    mask = _voxel_box(30)
    f = morphology(mask, mask, np.ones(mask.shape), (1.0, 1.0, 1.0))
    assert f["morph_vol_dens_aabb"] < 0.6
    assert f["morph_vol_dens_ombb"] > 0.9
    assert f["morph_vol_dens_aabb"] <= f["morph_vol_dens_ombb"] <= f["morph_vol_dens_conv_hull"] + 1e-12
    assert f["morph_vol_dens_mvee"] <= f["morph_vol_dens_conv_hull"]
    # a box fills 1 / (4/3 pi (sqrt 3 / 2)^3) = 0.368 of its minimum ellipsoid; the mesh's cut corners raise it
    assert 0.368 < f["morph_vol_dens_mvee"] < 0.5
    assert 0 < f["morph_area_dens_ombb"] <= 1.0
    assert 0 < f["morph_area_dens_mvee"] <= 1.0


def test_axis_aligned_box_has_equal_aabb_and_ombb_densities() -> None:
    mask = _voxel_box(0)
    f = morphology(mask, mask, np.ones(mask.shape), (2.0, 0.8, 0.8))
    assert f["morph_vol_dens_ombb"] == pytest.approx(f["morph_vol_dens_aabb"], rel=1e-9)
    assert f["morph_area_dens_ombb"] == pytest.approx(f["morph_area_dens_aabb"], rel=1e-9)

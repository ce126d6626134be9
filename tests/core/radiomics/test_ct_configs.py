"""IBSI image processing and the CT configurations A-E on small CT cases whose features are computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from core.radiomics.configs import CONFIGS, get_config
from core.radiomics.extract import compute_ibsi
from core.radiomics.preprocess import (
    RadiomicsInputError,
    Volume,
    crop_to_roi,
    discretise_fbn,
    discretise_fbs,
    resample,
    resegment,
)


def _row(values: list[float], spacing_x: float = 1.0) -> Volume:
    arr = np.array([[values]], dtype=np.float64)
    return Volume(arr, np.ones(arr.shape, bool), (1.0, 1.0, spacing_x))


def test_resampling_aligns_grid_centres() -> None:
    # 4 samples at 0..3 mm -> 2 mm: ceil(4 * 1 / 2) = 2 samples, first at (1 * 3 - 2 * 1) / 2 = 0.5 mm
    out = resample(_row([0, 10, 20, 30]), (None, None, 2.0), order=1)
    assert out.image.ravel().tolist() == pytest.approx([5.0, 25.0])
    assert out.spacing_mm == (1.0, 1.0, 2.0)
    assert out.origin_mm[2] == pytest.approx(0.5)
    # 5 samples -> 3 samples at 0, 2, 4 mm (shift 0)
    assert resample(_row([0, 10, 20, 30, 40]), (None, None, 2.0), order=1).image.ravel().tolist() == [0, 20, 40]


def test_mask_partial_volume_threshold() -> None:
    vol = Volume(np.zeros((1, 1, 4)), np.array([[[False, True, True, False]]]), (1.0, 1.0, 1.0))
    # linear mask values at 0.5 and 2.5 mm are both 0.5: kept (>= 0.5)
    assert resample(vol, (None, None, 2.0), order=1).mask.ravel().tolist() == [True, True]


def test_cubic_spline_keeps_values_on_an_unchanged_grid() -> None:
    rng = np.random.default_rng(0)
    vol = Volume(rng.normal(size=(5, 6, 7)) * 100, np.ones((5, 6, 7), bool), (2.0, 2.0, 2.0))
    out = resample(vol, (2.0, 2.0, 2.0), order=3)
    assert np.allclose(out.image, vol.image, atol=1e-9)


def test_fixed_bin_size_edges_start_at_the_range_bound() -> None:
    hu = np.array([-500.0, -476.0, -475.0, 0.0, 400.0])
    assert discretise_fbs(hu, 25.0, -500.0).tolist() == [1, 1, 2, 21, 37]
    assert discretise_fbn(np.array([0.0, 5.0, 10.0]), 4).tolist() == [1, 3, 4]
    assert discretise_fbn(np.array([7.0, 7.0]), 32).tolist() == [1, 1]


def test_resegmentation_range_and_outliers() -> None:
    image = np.array([-1200.0, 40, 40, 40, 40, 40, 40, 40, 40, 40, 300, 900])
    mask = np.ones(image.shape, bool)
    assert resegment(image, mask, (-1000, 400), None).tolist() == [False] + [True] * 10 + [False]
    kept = resegment(image, mask, (-1000, 400), 1.0)  # mean +- 1 SD of the range-kept voxels drops the 300 HU one
    assert kept.tolist() == [False] + [True] * 9 + [False, False]
    with pytest.raises(RadiomicsInputError, match="re-segmentation"):
        resegment(image, mask, (500, 600), None)


def test_crop_keeps_a_margin_and_moves_the_origin() -> None:
    mask = np.zeros((20, 20, 20), bool)
    mask[10, 10, 10] = True
    out = crop_to_roi(Volume(np.zeros(mask.shape), mask, (2.0, 1.0, 1.0)), 3.0)
    assert out.mask.shape == (5, 7, 7)  # ceil(3 / 2) = 2 and 3 voxels each side
    assert out.origin_mm == (16.0, 7.0, 7.0)
    with pytest.raises(RadiomicsInputError, match="empty"):
        crop_to_roi(Volume(np.zeros(mask.shape), np.zeros(mask.shape, bool), (1.0, 1.0, 1.0)), 3.0)


def _ct_cube() -> Volume:
    """8 x 8 x 8 voxels of 2 mm, air around a 4 x 4 x 4 cube: 40 HU for x < 4, 60 HU for x >= 4, one 1000 HU voxel."""
    image = np.full((8, 8, 8), -1000.0)
    image[2:6, 2:6, 2:4] = 40.0
    image[2:6, 2:6, 4:6] = 60.0
    image[5, 5, 5] = 1000.0  # e.g. a metal marker: re-segmented away (above 400 HU)
    mask = np.zeros(image.shape, bool)
    mask[2:6, 2:6, 2:6] = True
    return Volume(image, mask, (2.0, 2.0, 2.0))


@pytest.mark.parametrize("name", ["ibsi-a", "ibsi-b", "ibsi-c", "ibsi-d", "ibsi-e"])
def test_ct_configurations_by_hand(name: str) -> None:
    f = compute_ibsi(_ct_cube(), get_config(name))
    assert f["morph_vol_approx"] == pytest.approx(64 * 8.0)  # the morphological mask keeps the 1000 HU voxel
    assert f["stat_max"] == 60.0 and f["stat_min"] == 40.0
    assert f["stat_mean"] == pytest.approx((32 * 40 + 31 * 60) / 63)
    if name == "ibsi-a":  # FBS 25 HU from -500: 40 -> 22, 60 -> 23
        assert (f["ih_min"], f["ih_max"]) == (22.0, 23.0)
    elif name == "ibsi-c":  # FBS 25 HU from -1000: 40 -> 42, 60 -> 43
        assert (f["ih_min"], f["ih_max"]) == (42.0, 43.0)
    else:  # FBN 32: min -> 1, max -> 32
        assert (f["ih_min"], f["ih_max"]) == (1.0, 32.0)
    if get_config(name).dims == "2D":
        assert "szm_sze_2D" in f and "szm_sze_3D" not in f and "cm_joint_max_2_5D_comb" in f
        # per slice: zones of 8 and 8 voxels, or 8 and 7 in the slice holding the removed voxel
        assert f["szm_sze_2D"] == pytest.approx((3 * (2 / 64) + (1 / 64 + 1 / 49)) / 4 / 2)
    else:
        assert "szm_sze_3D" in f and "szm_sze_2D" not in f and "cm_joint_max_3D_avg" in f
        assert f["szm_sze_3D"] == pytest.approx((1 / 32**2 + 1 / 31**2) / 2)  # two zones: 32 and 31 voxels
        assert f["szm_z_perc_3D"] == pytest.approx(2 / 63)


def test_interpolating_configurations_agree_on_an_unchanged_grid() -> None:
    d, e = compute_ibsi(_ct_cube(), get_config("ibsi-d")), compute_ibsi(_ct_cube(), get_config("ibsi-e"))
    assert d == pytest.approx(e)  # trilinear and tricubic agree where no interpolation is needed


def test_outlier_resegmentation_of_configuration_d() -> None:
    vol = _ct_cube()
    vol.image[2, 2, 2] = -900.0  # within [-1000, 400] but far below mean - 3 SD
    c, d = compute_ibsi(vol, get_config("ibsi-c")), compute_ibsi(vol, get_config("ibsi-d"))
    assert c["stat_min"] == -900.0
    assert d["stat_min"] == 40.0


def test_cropping_does_not_change_features() -> None:
    small = _ct_cube()
    big_img = np.full((30, 30, 30), -1000.0)
    big_mask = np.zeros((30, 30, 30), bool)
    big_img[10:18, 10:18, 10:18] = small.image
    big_mask[10:18, 10:18, 10:18] = small.mask
    cfg = get_config("ibsi-c")
    assert compute_ibsi(Volume(big_img, big_mask, (2.0, 2.0, 2.0)), cfg) == pytest.approx(compute_ibsi(small, cfg))


def test_named_configurations() -> None:
    assert {"clinical", "ibsi-digital-phantom", "ibsi-a", "ibsi-b", "ibsi-c", "ibsi-d", "ibsi-e"} <= set(CONFIGS)
    assert get_config("ibsi-b").spacing_mm == (None, 2.0, 2.0)
    assert get_config("ibsi-e").interpolation_order == 3
    with pytest.raises(KeyError, match="known: clinical"):
        get_config("nope")


def test_digital_phantom_config_refuses_non_integer_levels() -> None:
    vol = Volume(np.full((3, 3, 3), 1.5), np.ones((3, 3, 3), bool), (1.0, 1.0, 1.0))
    with pytest.raises(RadiomicsInputError, match="integer grey levels"):
        compute_ibsi(vol, get_config("ibsi-digital-phantom"))

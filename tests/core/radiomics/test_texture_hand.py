"""Texture and intensity features on ROIs small enough to compute by hand (IBSI 1 definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.radiomics import texture_matrices as tm
from core.radiomics.intensity import intensity_histogram, ivh_features, statistics
from core.radiomics.texture_features import glcm_features, ngtdm_features, size_features, texture_features

#: One row of four voxels along x with grey levels 1, 1, 2, 3 (array order z, y, x).
ROW = np.array([[[1, 1, 2, 3]]], dtype=np.int64)


def test_glcm_of_a_row() -> None:
    mats = tm.glcm(ROW, 3, planar=False)
    assert len(mats) == 13
    along_x = mats[tm.DIRECTIONS_3D.index((0, 0, 1))]
    # pairs (1,1), (1,2), (2,3), counted both ways
    assert along_x.tolist() == [[2, 1, 0], [1, 0, 1], [0, 1, 0]]
    assert sum(m.sum() for m in mats) == along_x.sum()  # no pair in any other direction
    f = glcm_features(along_x)
    assert f["joint_max"] == pytest.approx(1 / 3)
    assert f["joint_avg"] == pytest.approx(5 / 3)
    assert f["contrast"] == pytest.approx(4 / 6)
    assert f["dissimilarity"] == pytest.approx(4 / 6)
    assert f["energy"] == pytest.approx(2 / 9)
    assert f["inv_diff"] == pytest.approx(1 / 3 + 4 / 6 / 2)
    assert f["joint_entr"] == pytest.approx(-(1 / 3 * math.log2(1 / 3) + 4 / 6 * math.log2(1 / 6)))


def test_run_lengths_zones_and_dependences_of_a_row() -> None:
    runs = tm.glrlm(ROW, planar=False)[tm.DIRECTIONS_3D.index((0, 0, 1))]
    assert sorted(zip(runs.level.tolist(), runs.second.tolist(), strict=True)) == [(1, 2), (2, 1), (3, 1)]
    f = size_features(runs, 3, 4, "rlm")
    assert f["sre"] == pytest.approx((1 / 4 + 1 + 1) / 3)
    assert f["lre"] == pytest.approx((4 + 1 + 1) / 3)
    assert f["r_perc"] == pytest.approx(3 / 4)

    zones = tm.glszm(ROW, 3, planar=False)
    assert sorted(zip(zones.level.tolist(), zones.second.tolist(), strict=True)) == [(1, 2), (2, 1), (3, 1)]
    z = size_features(zones, 3, 4, "szm")
    assert z["zsnu"] == pytest.approx((2**2 + 1**2) / 3)  # two zones of size 1, one of size 2
    assert z["glnu"] == pytest.approx(1.0)

    assert tm.gldzm(ROW, 3, planar=False).second.tolist() == [1, 1, 1]  # every voxel touches the ROI edge

    dep = tm.ngldm(ROW, planar=False)
    assert dep.second.tolist() == [2, 2, 1, 1]  # 1 + neighbours of the same grey level
    d = size_features(dep, 3, 4, "ngl")
    assert d["lde"] == pytest.approx((1 / 4 + 1 / 4 + 1 + 1) / 4)
    assert d["hde"] == pytest.approx((4 + 4 + 1 + 1) / 4)


def test_ngtdm_of_a_row() -> None:
    parts = tm.ngtdm(ROW, 3, planar=False)
    # |1 - 1|, |1 - 1.5|, |2 - 2|, |3 - 2|
    assert parts.n.tolist() == [2, 1, 1]
    assert parts.s.tolist() == [0.5, 0.0, 1.0]
    f = ngtdm_features(parts)
    assert f["coarseness"] == pytest.approx(2.0)
    assert f["strength"] == pytest.approx(2 * (0.75 * 1 + 0.75 * 4 + 0.5 * 1) / 1.5)
    assert f["contrast"] == pytest.approx(2 * (0.125 + 0.5 + 0.0625) / 6 * (1.5 / 4))


def test_2d_aggregation_uses_slices() -> None:
    # two slices of a 2 x 2 checkerboard: diagonal neighbours (8-connected) in-plane, same level across slices
    board = np.array([[[1, 2], [2, 1]], [[1, 2], [2, 1]]], dtype=np.int64)
    f = texture_features(board, 2)
    assert f["szm_sze_2D"] == pytest.approx(1 / 4)  # per slice: two zones of 2 voxels
    assert f["szm_zsnu_2_5D"] == pytest.approx(4**2 / 4)  # slices merged: four zones of size 2
    assert f["szm_sze_3D"] == pytest.approx(1 / 16)  # 26-connected: two zones of 4 voxels
    assert f["szm_z_perc_3D"] == pytest.approx(2 / 8)
    # in-plane GLCM: horizontal and vertical pairs always differ, diagonal pairs never do
    assert f["cm_contrast_2D_comb"] == pytest.approx(8 / 12)  # merged: 8 of 12 counts differ by 1
    assert f["cm_contrast_2D_avg"] == pytest.approx((1 + 1 + 0 + 0) / 4)  # per direction, averaged


def test_statistics_and_histogram_by_hand() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    s = statistics(x)
    assert s["stat_mean"] == 2.5
    assert s["stat_var"] == pytest.approx(1.25)  # divided by N
    assert s["stat_skew"] == pytest.approx(0.0)
    assert s["stat_kurt"] == pytest.approx(2.5625 / 1.5625 - 3)  # excess kurtosis
    assert s["stat_energy"] == 30.0
    h = intensity_histogram(np.array([1, 1, 1, 3]), 3)
    assert h["ih_mode"] == 1
    assert h["ih_uniformity"] == pytest.approx(0.75**2 + 0.25**2)
    assert h["ih_min_grad"] == -3 and h["ih_min_grad_g"] == 1  # H(2) - H(1)
    v = ivh_features(np.array([1.0, 1.0, 2.0, 4.0]), 1.0)
    assert v["ivh_v10"] == pytest.approx(0.5)  # intensity fraction >= 0.1 starts at 2: half the volume
    assert v["ivh_v90"] == pytest.approx(0.25)
    assert v["ivh_i90"] == 2.0


def test_moran_and_geary_match_their_double_sums() -> None:
    from core.radiomics.autocorrelation import moran_geary_pairs as _autocorrelation

    rng = np.random.default_rng(1)
    pts = rng.integers(0, 6, size=(40, 3)).astype(float) * 2.0
    pts = np.unique(pts, axis=0)
    x = rng.normal(size=len(pts))
    n, d = len(x), x - x.mean()
    w = np.array([[0.0 if i == j else 1 / np.linalg.norm(pts[i] - pts[j]) for j in range(n)] for i in range(n)])
    moran = n / w.sum() * sum(w[i, j] * d[i] * d[j] for i in range(n) for j in range(n)) / (d**2).sum()
    geary = (
        (n - 1) / (2 * w.sum()) * sum(w[i, j] * (x[i] - x[j]) ** 2 for i in range(n) for j in range(n)) / (d**2).sum()
    )
    assert _autocorrelation(pts, x) == pytest.approx((moran, geary))

"""BED and EQD2 (linear-quadratic model): exact values worked by hand, and refusal of bad input."""

from __future__ import annotations

import numpy as np
import pytest

from core.plan.radiobiology import AlphaBetaTable, bed_gy, biological_dose, eqd2_gy


@pytest.mark.parametrize(
    ("total", "n", "ab", "bed", "eqd2"),
    [
        (60.0, 30, 10.0, 72.0, 60.0),  # 2 Gy fractions: EQD2 is the physical dose
        (60.0, 30, 3.0, 100.0, 60.0),
        (54.0, 3, 10.0, 151.2, 126.0),  # RTOG 0236: 18 Gy x 3; BED10 = 54 (1 + 18/10)
        (54.0, 3, 3.0, 378.0, 226.8),
        (48.0, 4, 10.0, 105.6, 88.0),  # RTOG 0915 arm 2
        (34.0, 1, 10.0, 149.6, 124.66666666666667),  # RTOG 0915 arm 1
        (50.0, 5, 10.0, 100.0, 83.33333333333333),  # RTOG 0813 10 Gy x 5
        (55.0, 20, 10.0, 70.125, 58.4375),  # 2.75 Gy x 20
        (0.0, 5, 3.0, 0.0, 0.0),
    ],
)
def test_bed_and_eqd2_exact(total: float, n: int, ab: float, bed: float, eqd2: float) -> None:
    assert float(bed_gy(total, n, ab)) == pytest.approx(bed, rel=1e-12)
    assert float(eqd2_gy(total, n, ab)) == pytest.approx(eqd2, rel=1e-12)
    b = biological_dose(total, n, ab)
    assert (b.physical_gy, b.fractions, b.alpha_beta_gy) == (total, n, ab)
    assert b.bed_gy == pytest.approx(bed, rel=1e-12) and b.eqd2_gy == pytest.approx(eqd2, rel=1e-12)


def test_dvh_points_use_their_own_dose_per_fraction() -> None:
    """A DVH point at total dose D_i over n fractions has d_i = D_i / n: element-wise on arrays."""
    doses = np.array([0.0, 10.0, 30.0, 60.0])
    np.testing.assert_allclose(bed_gy(doses, 5, 3.0), doses * (1 + doses / 15.0), rtol=1e-14)
    np.testing.assert_allclose(eqd2_gy(doses, 5, 3.0), doses * (doses / 5 + 3.0) / 5.0, rtol=1e-14)


def test_eqd2_identity_for_any_alpha_beta_at_2_gy_per_fraction() -> None:
    for ab in (0.5, 1.5, 3.0, 10.0, 20.0):
        assert float(eqd2_gy(70.0, 35, ab)) == pytest.approx(70.0, rel=1e-14)


@pytest.mark.parametrize(
    ("total", "n", "ab", "message"),
    [
        (60.0, 0, 10.0, "fractions"),
        (60.0, 2.5, 10.0, "fractions"),
        (60.0, 30, 0.0, "alpha/beta"),
        (60.0, 30, float("nan"), "alpha/beta"),
        (-1.0, 30, 10.0, "non-negative"),
        (float("inf"), 30, 10.0, "finite"),
    ],
)
def test_bad_input_is_refused(total: float, n: int, ab: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bed_gy(total, n, ab)


def test_alpha_beta_per_structure_defaults_and_overrides() -> None:
    table = AlphaBetaTable()
    assert table.for_structure("GTV", "GTV") == 10.0
    assert table.for_structure("PTV_60", "") == 10.0
    assert table.for_structure("SpinalCord", "ORGAN") == 3.0
    edited = AlphaBetaTable(overrides={"spinalcord": 2.0, "GTV": 12.0})
    assert edited.for_structure("SpinalCord", "ORGAN") == 2.0
    assert edited.for_structure("GTV", "GTV") == 12.0
    assert edited.for_structure("Heart", "ORGAN") == 3.0
    with pytest.raises(ValueError, match="positive"):
        AlphaBetaTable(overrides={"Heart": -3.0})

"""Constraint sets (selection, sources) and evaluation to value / limit / pass-warning-fail / source."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analytic_dvh import Shape

from core.plan.constraints import CONSTRAINT_SETS, ConstraintSet, _c, constraint_set, select_constraint_set
from core.plan.dvh import DoseVolume
from core.plan.evaluation import DOSE_NOT_COMPUTED, evaluate_constraints
from core.plan.structures import PlanarStructure, StructureSet


def test_selection_by_fractionation() -> None:
    assert select_constraint_set(30, "3D-CRT").identifier == "quantec-conventional"  # type: ignore[union-attr]
    assert select_constraint_set(3, "SBRT").identifier == "tg101-3fx"  # type: ignore[union-attr]
    assert select_constraint_set(5, "SABR").identifier == "tg101-5fx"  # type: ignore[union-attr]
    assert select_constraint_set(5, "SBRT", central=True).identifier == "rtog0813"  # type: ignore[union-attr]
    assert select_constraint_set(4, "SBRT").identifier == "rtog0915"  # type: ignore[union-attr]
    assert select_constraint_set(8, "SBRT") is None and select_constraint_set(6, "IMRT") is None
    with pytest.raises(ValueError, match="unknown constraint set"):
        constraint_set("nope")


def test_every_constraint_has_a_source_unit_and_positive_limit() -> None:
    for cs in CONSTRAINT_SETS.values():
        assert cs.constraints
        for c in cs.constraints:
            assert c.source and c.unit in ("Gy", "%", "cc")
            assert c.limit_for(50.0) > 0
    rx = next(c for c in CONSTRAINT_SETS["rtog0813"].constraints if c.organ == "heart" and c.metric == "Dmax")
    assert rx.limit_for(50.0) == pytest.approx(52.5)  # 105 % of the prescription


def block(name: str, centre: tuple[float, float, float], radius: float, kind: str = "ORGAN") -> PlanarStructure:
    s = Shape("cylinder", radius, 20.0, centre=centre).contoured(1.0, name)
    return PlanarStructure(name, s.planes_z, s.polygons, 1.0, interpreted_type=kind)


def ramp_x() -> DoseVolume:
    """D = x Gy for x in [0, 80] mm (so a structure's dose is where it sits)."""
    x = np.arange(-10.0, 91.0)
    dose = np.broadcast_to(np.clip(x, 0, None), (41, 41, x.size)).copy()
    return DoseVolume(dose, (-10.0, -20.0, -20.0), (1.0, 1.0, 1.0))


def test_pass_warning_fail_with_values_and_sources() -> None:
    structures = StructureSet(
        {
            "SpinalCord": block("SpinalCord", (30.0, 0.0, 0.0), 3.0),  # max ~33 Gy
            "Heart": block("Heart", (20.0, 0.0, 0.0), 5.0),  # mean 20 Gy
            "Esophagus": block("Esophagus", (40.0, 0.0, 0.0), 3.0),  # mean 40 Gy
            "Lung_L": block("Lung_L", (10.0, 0.0, 0.0), 8.0),
            "Lung_R": block("Lung_R", (60.0, 0.0, 0.0), 8.0),
            "GTV": block("GTV", (60.0, 0.0, 0.0), 2.0, "GTV"),
        },
        1.0,
    )
    custom = ConstraintSet("t", "test", (1,), "test", (
        _c("spinal_cord", "Dmax", 30.0, "Gy", "src-a"), _c("spinal_cord", "Dmax", 40.0, "Gy", "src-b"),
        _c("heart", "Dmean", 19.0, "Gy", "src-c", warning_limit=21.0),
        _c("esophagus", "Dmean", 34.0, "Gy", "src-d"), _c("lungs", "V50Gy", 30.0, "%", "src-e"),
        _c("lungs", "CV50Gy", 3.0, "cc", "src-f"), _c("chest_wall", "V30Gy", 30.0, "cc", "src-g"),
    ))  # fmt: skip
    results = evaluate_constraints(custom, structures, ramp_x(), prescription_gy=50.0)
    by_source = {r.source: r for r in results}
    # Dmax is D0.03cc: a 1.5 mm2 circular segment of the 3 mm radius cord, 0.6 mm deep, so 33 - 0.6 Gy
    assert by_source["src-a"].status == "fail" and by_source["src-a"].value == pytest.approx(32.4, abs=0.1)
    assert by_source["src-b"].status == "pass"
    assert by_source["src-c"].status == "warning" and by_source["src-c"].value == pytest.approx(20.0, abs=0.05)
    assert by_source["src-d"].status == "fail" and by_source["src-d"].value == pytest.approx(40.0, abs=0.05)
    lungs = by_source["src-e"]
    assert lungs.structure == "Lung_L + Lung_R - GTV"
    # left lung all below 50 Gy; right lung (52-68 Gy) minus the GTV is above: about half the volume
    left, right, gtv = (np.pi * r * r * 20 / 1000 for r in (8.0, 8.0, 2.0))
    assert lungs.value == pytest.approx(100 * (right - gtv) / (left + right - gtv), rel=0.02)
    assert lungs.status == "fail"
    assert by_source["src-f"].value == pytest.approx(left, rel=0.02) and by_source["src-f"].comparison == ">="
    assert by_source["src-f"].status == "pass"
    assert by_source["src-g"].status == "not_evaluated" and "no ROI" in by_source["src-g"].note


def test_prescription_only_plan_says_dose_not_computed() -> None:
    results = evaluate_constraints(CONSTRAINT_SETS["quantec-conventional"], None, None, prescription_gy=60.0)
    assert len(results) == 6
    assert all(r.status == "not_evaluated" and r.note == DOSE_NOT_COMPUTED and r.value is None for r in results)


def test_dmax_of_a_structure_smaller_than_0_03_cc_is_its_true_maximum() -> None:
    tiny = Shape("sphere", 1.5, centre=(30.0, 0.0, 0.0)).contoured(1.0, "SpinalCord")  # 0.014 cc, 28.5-31.5 Gy
    structures = StructureSet({"SpinalCord": tiny}, 1.0)
    custom = ConstraintSet("t", "test", (1,), "test", (_c("spinal_cord", "Dmax", 30.0, "Gy", "src"),))
    (result,) = evaluate_constraints(custom, structures, ramp_x(), prescription_gy=50.0)
    assert result.value is not None and result.value > 31.0 and result.status == "fail"

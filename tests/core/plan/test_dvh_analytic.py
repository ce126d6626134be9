"""The DVH engine against analytic DVHs: spheres, cylinders and cones of 2-30 mm in linear dose gradients along x
(in-plane) and z (through the contour planes), dose grids of 1, 2 and 3 mm, contours on 1 mm (and 2 mm) CT slices.

Two references: the continuous shape (what a clinician means) and the contoured shape itself (each contour
extruded over its slab: the exact DVH of the RTSTRUCT the engine is given), which separates the engine's own error
from the error of contouring on slices. Run this file as a script for the full accuracy table (docs/plan.md).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import fields
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analytic_dvh import AnalyticDvh, Shape, analytic_dvh, linear_dose

from core.plan.dvh import DvhMetrics, compute_dvh

D_CENTRE, GRADIENT = 40.0, 1.0  # Gy at the shape's centre; Gy/mm (a steep, field-edge-like gradient)
LARGE = [Shape("sphere", 10.0), Shape("sphere", 15.0), Shape("cylinder", 10.0, 20.0), Shape("cone", 15.0, 32.0)]
SMALL = [Shape("sphere", 1.0), Shape("sphere", 2.5), Shape("sphere", 5.0), Shape("cylinder", 2.0, 12.0),
         Shape("cone", 5.0, 12.0)]  # fmt: skip
DOSE_KEYS = ("mean_gy", "d99_gy", "d95_gy", "d5_gy", "d1_gy", "d0_03cc_gy")


def errors(measured: DvhMetrics, reference: AnalyticDvh) -> dict[str, float]:
    """Relative errors in % of the volume and the doses (Dmin and Dmax, points on the surface, are checked apart)."""
    return {
        f.name: 100.0 * (getattr(measured, f.name) - getattr(reference, f.name)) / getattr(reference, f.name)
        for f in fields(reference)
        if f.name not in ("min_gy", "max_gy")
    }


def run(shape: Shape, axis: str, grid_mm: float, slice_mm: float) -> tuple[DvhMetrics, AnalyticDvh, AnalyticDvh]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quad's roundoff notes on the kinked staircase integrands
        exact = analytic_dvh(shape, axis, D_CENTRE, GRADIENT)
        staircase = analytic_dvh(shape, axis, D_CENTRE, GRADIENT, staircase_slice_mm=slice_mm)
    dose = linear_dose(shape, axis, grid_mm, D_CENTRE, GRADIENT)
    return compute_dvh(dose, [shape.contoured(slice_mm)]).metrics(), exact, staircase


@pytest.mark.parametrize("grid_mm", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("axis", ["x", "z"])
@pytest.mark.parametrize("shape", LARGE, ids=lambda s: f"{s.kind}-R{s.radius:g}-H{s.height:g}")
def test_structures_of_3cc_and_more_are_within_1_percent_of_analytic(shape: Shape, axis: str, grid_mm: float) -> None:
    measured, exact, staircase = run(shape, axis, grid_mm, slice_mm=1.0)
    assert exact.volume_cc >= 3.0
    err = errors(measured, exact)
    assert abs(measured.volume_cc - exact.volume_cc) <= max(0.01 * exact.volume_cc, 0.1)
    for key in DOSE_KEYS:
        assert abs(err[key]) <= 1.0, (key, err[key])
    # the engine alone (against the exact DVH of the contoured structure) is several times better
    for key, value in errors(measured, staircase).items():
        assert abs(value) <= 0.5, (key, value)
    assert measured.min_gy >= exact.min_gy - 0.5 * GRADIENT and measured.max_gy <= exact.max_gy + 0.5 * GRADIENT


@pytest.mark.parametrize("axis", ["x", "z"])
@pytest.mark.parametrize("shape", LARGE, ids=lambda s: f"{s.kind}-R{s.radius:g}-H{s.height:g}")
def test_two_mm_ct_slices_engine_within_half_percent_of_the_contoured_structure(shape: Shape, axis: str) -> None:
    """On 2 mm CT slices the contours themselves deviate from a 10 mm sphere by up to 1.6 % in D99 (z gradient):
    that is contouring, not DVH, error; the engine stays within 0.5 % of the contoured structure's exact DVH."""
    measured, exact, staircase = run(shape, axis, grid_mm=2.0, slice_mm=2.0)
    assert abs(measured.volume_cc - exact.volume_cc) <= max(0.01 * exact.volume_cc, 0.1)
    for key, value in errors(measured, staircase).items():
        assert abs(value) <= 0.5, (key, value)
    for key, value in errors(measured, exact).items():
        assert abs(value) <= 2.0, (key, value)


@pytest.mark.parametrize("grid_mm", [1.0, 3.0])
@pytest.mark.parametrize("axis", ["x", "z"])
@pytest.mark.parametrize("shape", SMALL, ids=lambda s: f"{s.kind}-R{s.radius:g}-H{s.height:g}")
def test_small_structures_engine_error_is_small_and_contouring_error_is_reported(
    shape: Shape, axis: str, grid_mm: float
) -> None:
    """Below 3 cc the contours themselves differ from the shape (a 2 mm sphere on 1 mm slices is 12 % too big);
    the engine's error on the contoured structure stays below 1 %, and the shape error is bounded as documented."""
    measured, exact, staircase = run(shape, axis, grid_mm, slice_mm=1.0)
    for key, value in errors(measured, staircase).items():
        assert abs(value) <= 1.0, (key, value)
    err = errors(measured, exact)
    assert abs(err["volume_cc"]) <= 15.0
    for key in DOSE_KEYS:
        assert abs(err[key]) <= 1.5, (key, err[key])


def accuracy_table() -> str:
    """The markdown table of docs/plan.md (max |error| % over the axes x and z)."""
    lines = [
        "| shape | volume cc | grid mm | CT slice mm | volume % | Dmean % | D99 % | D95 % | D5 % | D1 % | D0.03cc % "
        "| engine only, max % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for slice_mm in (1.0, 2.0):
        for shape in SMALL + LARGE:
            if not shape.contourable(slice_mm):
                continue
            for grid_mm in (1.0, 2.0, 3.0):
                worst: dict[str, float] = {}
                engine = 0.0
                for axis in ("x", "z"):
                    measured, exact, staircase = run(shape, axis, grid_mm, slice_mm)
                    for key, value in errors(measured, exact).items():
                        worst[key] = max(worst.get(key, 0.0), abs(value))
                    engine = max(engine, *(abs(v) for v in errors(measured, staircase).values()))
                name = f"{shape.kind} R{shape.radius:g}" + (f" H{shape.height:g}" if shape.height else "")
                cells = " | ".join(f"{worst[k]:.2f}" for k in ("volume_cc", *DOSE_KEYS))
                lines.append(
                    f"| {name} | {exact.volume_cc:.3f} | {grid_mm:g} | {slice_mm:g} | {cells} | {engine:.2f} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    print(accuracy_table())

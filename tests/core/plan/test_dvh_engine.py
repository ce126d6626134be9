"""DVH engine behaviour: end caps, holes, unions and differences, V_x, D_xcc, curves, grids, bad input; and an
end-to-end check on the demo study, whose RT Dose samples an analytic dose model."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analytic_dvh import Shape, circle, linear_dose

from core.demo import DemoManifest, generate_demo_study
from core.plan.dose_io import dose_volume_from_rtdose, dvh_metrics, read_dose_file, read_mask_file, read_struct_file
from core.plan.dvh import DoseVolume, compute_dvh, sample_structure
from core.plan.margins import grid_mask_to_structure
from core.plan.structures import PlanarStructure


def uniform(value: float, half: float = 40.0, spacing: float = 2.0) -> DoseVolume:
    n = int(2 * half / spacing) + 1
    return DoseVolume(np.full((n, n, n), value), (-half, -half, -half), (spacing, spacing, spacing))


def cylinder(end_caps: str = "half_slice", slices: int = 10, radius: float = 8.0) -> PlanarStructure:
    planes = tuple(0.5 + k for k in range(slices))  # 1 mm CT slices from z = 0 to z = slices
    return PlanarStructure("Cyl", planes, tuple((circle(0, 0, radius),) for _ in planes), 1.0, end_caps=end_caps)  # type: ignore[arg-type]


def test_end_caps_half_slice_and_none() -> None:
    area = math.pi * 64.0
    half = compute_dvh(uniform(10.0), [cylinder("half_slice")])
    none = compute_dvh(uniform(10.0), [cylinder("none")])
    assert half.volume_cc == pytest.approx(area * 10 / 1000, rel=2e-3)  # 10 slices x 1 mm
    assert none.volume_cc == pytest.approx(area * 9 / 1000, rel=2e-3)  # stops at the outer contour planes
    assert cylinder().polygon_volume_cc() == pytest.approx(area * 10 / 1000, rel=1e-9)
    assert half.mean_gy == pytest.approx(10.0)
    assert half.min_gy == pytest.approx(10.0) and half.max_gy == pytest.approx(10.0)


def test_holes_by_even_odd_rule() -> None:
    planes = tuple(0.5 + k for k in range(10))
    ring = PlanarStructure("Ring", planes, tuple((circle(0, 0, 10), circle(0, 0, 5)) for _ in planes), 1.0)
    assert compute_dvh(uniform(5.0), [ring]).volume_cc == pytest.approx(math.pi * 75 * 10 / 1000, rel=3e-3)
    assert ring.polygon_volume_cc() == pytest.approx(math.pi * 75 * 10 / 1000, rel=1e-9)


def test_union_minus_exclusion_like_lungs_minus_gtv() -> None:
    dose = uniform(1.0)
    left = Shape("sphere", 10.0, centre=(-12.0, 0.0, 0.0)).contoured(1.0, "L")
    right = Shape("sphere", 10.0, centre=(12.0, 0.0, 0.0)).contoured(1.0, "R")
    inner = Shape("sphere", 4.0, centre=(12.0, 0.0, 0.0)).contoured(1.0, "G")
    both = compute_dvh(dose, [left, right], [inner], name="Lungs-GTV")
    expected = compute_dvh(dose, [left]).volume_cc * 2 - compute_dvh(dose, [inner]).volume_cc
    assert both.roi == "Lungs-GTV"
    assert both.volume_cc == pytest.approx(expected, rel=5e-3)


def test_v_x_and_d_xcc_in_a_linear_gradient() -> None:
    """A 20 mm cube-like cylinder (radius 10 mm, height 20 mm) in D = 40 + z Gy (z from the centre): V(>= D) is
    linear in D, so V40Gy is half the volume, V45Gy a quarter, D2cc is 40 + 10 - 20 * 2/V."""
    shape = Shape("cylinder", 10.0, 20.0, centre=(0.0, 0.0, 0.0))
    dvh = compute_dvh(linear_dose(shape, "z", 2.0, 40.0, 1.0), [shape.contoured(1.0)])
    volume = math.pi * 100 * 20 / 1000
    assert dvh.volume_cc == pytest.approx(volume, rel=2e-3)
    assert dvh.volume_at_dose_percent(40.0) == pytest.approx(50.0, abs=0.3)
    assert dvh.volume_at_dose_cc(45.0) == pytest.approx(volume / 4, rel=5e-3)
    assert dvh.volume_below_dose_cc(35.0) == pytest.approx(volume / 4, rel=5e-3)
    assert dvh.dose_at_volume_cc(2.0) == pytest.approx(50.0 - 20.0 * 2.0 / volume, abs=0.02)
    assert dvh.dose_at_volume_cc(1000.0) == pytest.approx(dvh.min_gy)  # capped at the whole volume
    edges, cumulative = dvh.cumulative(0.5)
    assert cumulative[0] == pytest.approx(dvh.volume_cc) and np.all(np.diff(cumulative) <= 1e-12)
    assert float(np.interp(40.0, edges, cumulative)) == pytest.approx(volume / 2, rel=5e-3)
    d_edges, differential = dvh.differential(1.0)
    assert differential.sum() == pytest.approx(dvh.volume_cc)
    inside = (d_edges[:-1] >= 31.0) & (d_edges[:-1] < 49.0)
    np.testing.assert_allclose(differential[inside], volume / 20, rtol=0.03)  # flat: 1 mm per Gy


def test_volume_outside_the_dose_grid_is_reported_not_counted() -> None:
    shape = Shape("sphere", 10.0, centre=(0.0, 0.0, 0.0))
    small = DoseVolume(np.full((11, 41, 41), 3.0), (-40.0, -40.0, 0.0), (2.0, 2.0, 2.0))  # z from -1 mm
    dvh = compute_dvh(small, [shape.contoured(1.0)])
    total = 4 / 3 * math.pi
    assert dvh.outside_dose_grid_cc + dvh.volume_cc == pytest.approx(total, rel=5e-3)
    assert 0.4 * total < dvh.outside_dose_grid_cc < 0.5 * total
    with pytest.raises(ValueError, match="no volume inside"):
        compute_dvh(
            DoseVolume(np.ones((2, 2, 2)), (100.0, 100.0, 100.0), (1.0, 1.0, 1.0)), [shape.contoured(1.0)]
        ).metrics()


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="3-D"):
        DoseVolume(np.ones((3, 3)), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        DoseVolume(np.ones((3, 3, 3)), (0.0, 0.0, 0.0), (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="sorted"):
        PlanarStructure("X", (1.0, 0.0), ((circle(0, 0, 1),), (circle(0, 0, 1),)), 1.0)
    with pytest.raises(ValueError, match="no contours"):
        PlanarStructure("X", (), (), 1.0)
    with pytest.raises(ValueError, match="nothing"):
        sample_structure([], step_mm=1.0, max_dz_mm=1.0)
    dvh = compute_dvh(uniform(1.0), [cylinder()])
    with pytest.raises(ValueError, match="0-100"):
        dvh.dose_at_percent(101.0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoManifest]:
    out = tmp_path_factory.mktemp("dvh-demo") / "study"
    return out, generate_demo_study(out, seed=3, shape=(128, 128, 40), spacing_mm=(2.0, 2.0, 2.5))


def test_demo_study_end_to_end_against_its_analytic_dose(demo: tuple[Path, DemoManifest]) -> None:
    """The RT Dose samples DoseModel on a 4 mm grid; the DVH of each ROI from the file is compared with the same
    structure sampled in the analytic dose itself (so only the dose grid's interpolation differs)."""
    out, manifest = demo
    dose = read_dose_file(out / "rtdose.dcm")
    structures = read_struct_file(out / "rtstruct.dcm")
    assert structures.slice_thickness_mm == pytest.approx(2.5)
    results = {m.roi: m for m in dvh_metrics(dose, structures)}
    assert set(results) == set(manifest.roi_names.values())
    for key, roi in manifest.roi_names.items():
        # exact for the contours as drawn; the voxel-count truth differs by the corner-cutting of the traced contours
        assert results[roi].volume_cc == pytest.approx(structures.get(roi).polygon_volume_cc(), rel=3e-3), roi
        assert results[roi].volume_cc == pytest.approx(manifest.structure_volumes_cc[key], rel=0.06), roi
    for roi, tolerance in (("SpinalCord", 0.01), ("Heart", 0.01), ("Esophagus", 0.01), ("GTV", 0.015)):
        planes, _ = sample_structure([structures.get(roi)], step_mm=0.5, max_dz_mm=0.5)
        d = np.concatenate([manifest.dose_model.dose_gy(np.column_stack([x, y, z])) for _, x, y, z in planes])
        w = np.concatenate([np.full(x.size, cell) for cell, x, _, _ in planes])
        assert results[roi].mean_gy == pytest.approx(float(np.dot(d, w) / w.sum()), rel=tolerance), roi
    assert results["GTV"].max_gy <= manifest.dose_model.prescription_gy + 1e-6
    assert results["GTV"].d95_gy > 0.9 * manifest.dose_model.prescription_gy


def test_rtdose_frames_stored_head_to_feet_are_flipped(demo: tuple[Path, DemoManifest]) -> None:
    out, _ = demo
    ds = pydicom.dcmread(out / "rtdose.dcm")
    normal = dose_volume_from_rtdose(ds)
    frames = int(ds.NumberOfFrames)
    dz = float(ds.GridFrameOffsetVector[1])
    flipped = pydicom.dcmread(out / "rtdose.dcm")
    array = flipped.pixel_array[::-1].copy()
    flipped.PixelData = array.astype("<u4").tobytes()
    flipped.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + dz * (frames - 1)
    flipped.GridFrameOffsetVector = [-k * dz for k in range(frames)]
    other = dose_volume_from_rtdose(flipped)
    assert other.origin_mm == pytest.approx(normal.origin_mm)
    np.testing.assert_array_equal(other.dose_gy, normal.dose_gy)


def test_wrong_files_are_refused(demo: tuple[Path, DemoManifest], tmp_path: Path) -> None:
    out, _ = demo
    with pytest.raises(ValueError, match="expected RTDOSE"):
        read_dose_file(out / "rtstruct.dcm")
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    with pytest.raises(ValueError, match="not a readable DICOM"):
        read_struct_file(junk)
    with pytest.raises(KeyError, match="no ROI 'Liver'"):
        dvh_metrics(read_dose_file(out / "rtdose.dcm"), read_struct_file(out / "rtstruct.dcm"), ["Liver"])


def test_mask_images_give_the_same_dvh_as_the_contours_traced_from_them(
    demo: tuple[Path, DemoManifest], tmp_path: Path
) -> None:
    out, _ = demo
    dose = read_dose_file(out / "rtdose.dcm")
    structures = read_struct_file(out / "rtstruct.dcm")
    mask = read_mask_file(out / "truth" / "gtv.nii.gz", "gtv_truth")
    (from_struct, from_mask) = dvh_metrics(dose, structures, ["GTV"], extra=[mask])
    assert from_mask.roi == "gtv_truth"
    for key in ("volume_cc", "mean_gy", "d99_gy", "d95_gy", "d5_gy", "d1_gy", "d0_03cc_gy"):
        assert getattr(from_mask, key) == pytest.approx(getattr(from_struct, key), rel=1e-3), key
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"nothing")
    with pytest.raises(ValueError, match="not a readable mask image"):
        read_mask_file(junk, "x")
    with pytest.raises(ValueError, match="empty"):
        grid_mask_to_structure("x", np.zeros((3, 3, 3), bool), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

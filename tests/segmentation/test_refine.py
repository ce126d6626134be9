"""Lesion edge refinement (core.segmentation.refine) on small synthetic CTs whose truth is known: a solid sphere in
lung, a vessel and the chest wall touching it, and an under-segmented "network" mask inside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.segmentation.edit import EditError
from core.segmentation.models import ModelError, get_model, load_manifest
from core.segmentation.refine import LesionRefinement, refine_lesion, refine_structures

SPACING = (0.8, 0.8, 2.5)  # x, y, z mm, as the demo CT
SHAPE = (40, 120, 120)  # z, y, x


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def grid_mm() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    return z * SPACING[2], y * SPACING[1], x * SPACING[0]


def sphere_mm(centre: tuple[float, float, float], radius: float) -> np.ndarray:
    z, y, x = grid_mm()
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius**2


def phantom(wall_x_mm: float = 80.0) -> dict[str, np.ndarray]:
    """Lung (x < wall_x_mm) at -865 HU with noise, chest wall (40 HU) beyond, a 10 mm radius tumour (30 HU) at
    x = 48 mm and a 1.6 mm radius vessel (40 HU) leaving the tumour's top towards the head (+z)."""
    rng = np.random.default_rng(7)
    z, y, x = grid_mm()
    lung = np.broadcast_to(x < wall_x_mm, SHAPE).copy()
    tumour = sphere_mm((48.0, 48.0, 50.0), 10.0)
    vessel = ((x - 48.0) ** 2 + (y - 48.0) ** 2 <= 1.6**2) & (z > 50.0) & lung
    hu = np.where(lung, -865.0, 40.0)
    hu[vessel] = 40.0
    hu[tumour] = 30.0
    hu += rng.normal(0.0, 12.0, SHAPE)
    return {"hu": hu.astype(np.float32), "lung": lung & ~tumour, "tumour": tumour, "vessel": vessel & ~tumour}


def network_guess(tumour_centre=(48.0, 48.0, 50.0), radius=6.0) -> np.ndarray:
    """An under-segmented AI mask: the right place, 4 mm too small (what the shipped network does)."""
    return sphere_mm(tumour_centre, radius).astype(np.uint8)


def test_the_edge_is_redrawn_and_the_vessel_cut_off() -> None:
    p = phantom()
    guess = network_guess()
    assert dice(guess, p["tumour"]) < 0.5
    params = LesionRefinement(threshold_hu=-400.0, search_mm=20.0, open_mm=2.0, within=("lung",))
    out = refine_lesion(p["hu"], guess, SPACING, params, envelope=p["lung"])
    assert out.applied and out.voxels_before == int(guess.sum()) and out.voxels_after == int(out.mask.sum())
    assert dice(out.mask, p["tumour"]) > 0.97
    far = p["vessel"] & ~sphere_mm((48.0, 48.0, 50.0), 10.0 + 3.0)  # vessel beyond a 3 mm stub
    assert not ((out.mask != 0) & far).any(), "the vessel joined the tumour"
    # without the opening the same vessel leaks along the whole search distance: the opening is what stops it
    loose = refine_lesion(p["hu"], guess, SPACING, LesionRefinement(-400.0, 20.0, 0.0), envelope=p["lung"])
    assert ((loose.mask != 0) & far).sum() > 30


def test_the_envelope_keeps_the_chest_wall_out() -> None:
    p = phantom(wall_x_mm=57.0)  # the tumour (x 38-58 mm) abuts the chest wall from x = 57 mm
    wall = ~np.broadcast_to(grid_mm()[2] < 57.0, SHAPE) & ~p["tumour"]
    params = LesionRefinement(-400.0, 10.0, 2.0)
    inside = refine_lesion(p["hu"], network_guess(), SPACING, params, envelope=p["lung"])
    assert not ((inside.mask != 0) & wall).any()
    assert dice(inside.mask, p["tumour"]) > 0.95
    # with no envelope the threshold alone walks into the wall: the envelope is what prevents it
    bare = refine_lesion(p["hu"], network_guess(), SPACING, params, envelope=None)
    assert ((bare.mask != 0) & wall).sum() > 100


def test_search_distance_bounds_the_growth() -> None:
    p = phantom()
    out = refine_lesion(p["hu"], network_guess(), SPACING, LesionRefinement(-400.0, 2.0, 0.0), envelope=p["lung"])
    grown = sphere_mm((48.0, 48.0, 50.0), 6.0 + 2.0 + 2.5)  # 2 mm, plus the z voxel of the distance grid
    assert out.applied and not ((out.mask != 0) & ~grown).any()
    assert out.voxels_after > out.voxels_before


def test_a_lesion_without_contrast_is_left_as_the_network_drew_it() -> None:
    p = phantom()
    in_lung = network_guess((20.0, 20.0, 20.0), 4.0)  # nothing above -400 HU there
    out = refine_lesion(p["hu"], in_lung, SPACING, LesionRefinement(), envelope=p["lung"])
    assert not out.applied and "above -400 HU" in out.reason
    assert np.array_equal(out.mask, in_lung)
    empty = refine_lesion(p["hu"], np.zeros(SHAPE, np.uint8), SPACING)
    assert not empty.applied and empty.voxels_after == 0


def test_grids_must_match_and_parameters_be_sane() -> None:
    p = phantom()
    with pytest.raises(EditError, match="grid"):
        refine_lesion(p["hu"], network_guess()[:, :, :50], SPACING)
    with pytest.raises(EditError, match="search_mm"):
        LesionRefinement(search_mm=0.0)
    rule = LesionRefinement(open_mm=2.0, open_fraction=0.25)
    assert rule.opening_mm(4.0 / 3.0 * np.pi * 20.0**3) == pytest.approx(5.0)  # 25 % of a 20 mm radius
    assert rule.opening_mm(100.0) == 2.0


def test_refine_structures_takes_the_lesion_out_of_the_lung() -> None:
    p = phantom()
    masks = {"gtv": network_guess(), "lung": (p["lung"] | p["tumour"]) & ~network_guess().astype(bool)}
    masks = {k: v.astype(np.uint8) for k, v in masks.items()}
    out, notes = refine_structures(masks, p["hu"], SPACING, {"gtv": LesionRefinement(within=("lung",))})
    assert not (out["gtv"].astype(bool) & out["lung"].astype(bool)).any()
    assert dice(out["lung"], p["lung"]) > 0.99 and dice(out["gtv"], p["tumour"]) > 0.97
    assert len(notes) == 1 and notes[0].startswith("gtv: edge refinement applied")
    assert masks["gtv"].sum() == network_guess().sum(), "inputs are not modified"


def test_the_shipped_manifest_refines_the_gtv_in_the_lungs() -> None:
    rule = get_model().refine["gtv"]
    assert rule.within == ("lung_left", "lung_right") and rule.threshold_hu == -400.0


@pytest.mark.parametrize(
    ("refine", "message"),
    [({"liver": {}}, "liver"), ({"gtv": {"within": ["bone"]}}, "bone"), ({"gtv": {"search_mm": -1}}, "search_mm")],
)
def test_a_manifest_with_a_bad_refine_rule_is_refused(tmp_path: Path, refine: dict, message: str) -> None:
    shipped = get_model().directory
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(shipped / "manifest.json", folder / "manifest.json")
    data = json.loads((folder / "manifest.json").read_text())
    data["refine"] = refine
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=message):
        load_manifest(folder)

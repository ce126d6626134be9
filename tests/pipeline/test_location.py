"""Image-derived RTOG 0813 tumour location (core.pipeline.results.tumour_location) on simple two-lung phantoms
whose distances are known: a slab mediastinum between two box lungs, a tumour placed at a chosen distance."""

from __future__ import annotations

import numpy as np
import pytest

from core.pipeline.results import tumour_location

SPACING = (2.0, 2.0, 2.5)  # x, y, z mm
SHAPE = (12, 60, 100)  # z, y, x: lungs x 10-44 and 56-90 (mediastinum 45-55: 22 mm wide)


def phantom(tumour_x: int) -> dict[str, np.ndarray]:
    right = np.zeros(SHAPE, dtype=bool)
    left = np.zeros(SHAPE, dtype=bool)
    right[:, 10:50, 10:45] = True
    left[:, 10:50, 56:91] = True
    gtv = np.zeros(SHAPE, dtype=bool)
    gtv[4:8, 26:32, tumour_x : tumour_x + 4] = True
    return {"Lung_R": right & ~gtv, "Lung_L": left, "GTV": gtv}


@pytest.mark.parametrize(("tumour_x", "expected"), [(14, "peripheral"), (36, "central")])
def test_distance_to_the_mediastinum_decides(tumour_x: int, expected: str) -> None:
    where, distance = tumour_location(phantom(tumour_x), SPACING)
    gap_mm = (45 - (tumour_x + 4)) * SPACING[0] + 2.0  # to the first mediastinal voxel (x = 45), 2 mm voxels
    assert where == expected and distance == pytest.approx(gap_mm, abs=1.0)


def test_holes_in_a_lung_mask_are_not_mediastinum() -> None:
    """A vessel the segmentation left out of the lung next to a peripheral tumour must not make it central."""
    masks = phantom(14)
    masks["Lung_R"][:, 26:32, 20:23] = False  # a hole 2 voxels from the tumour, wholly inside the right lung
    where, distance = tumour_location(masks, SPACING)
    assert where == "peripheral" and distance == pytest.approx(tumour_location(phantom(14), SPACING)[1])


def test_a_ptv_touching_the_oesophagus_is_ultracentral_and_missing_lungs_give_none() -> None:
    masks = phantom(40)  # tumour x 40-43, lung edge 44
    eso = np.zeros(SHAPE, dtype=bool)
    eso[:, 26:32, 45:48] = True  # 2 voxels (4 mm) from the tumour: the 5 mm PTV reaches it
    assert tumour_location({**masks, "Esophagus": eso}, SPACING)[0] == "ultracentral"
    assert tumour_location({"GTV": masks["GTV"], "Lung_L": masks["Lung_L"]}, SPACING) == (None, None)


def test_the_slab_search_equals_the_whole_volume_answer() -> None:
    """Mediastinum only far along z (the left lung starts 65 mm above the tumour): the slab around the GTV holds
    none, so the search widens; the answer equals the brute-force distance over the whole volume."""
    from scipy import ndimage

    from core.pipeline.results import _mediastinum

    shape = (40, 60, 100)
    right, left, gtv = (np.zeros(shape, dtype=bool) for _ in range(3))
    right[:, 10:50, 10:45] = True
    left[30:, 10:50, 56:91] = True
    gtv[2:5, 26:32, 30:34] = True
    right &= ~gtv
    where, distance = tumour_location({"Lung_R": right, "Lung_L": left, "GTV": gtv}, SPACING)
    sampling = (SPACING[2], SPACING[1], SPACING[0])
    brute = float(ndimage.distance_transform_edt(~_mediastinum(left, right, gtv), sampling=sampling)[gtv].min())
    assert where == "peripheral" and distance == pytest.approx(round(brute, 1)) and brute > 60.0

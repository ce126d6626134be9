"""Anisotropic margin expansion on the CT grid and masks back to planar contours."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, generate_uid

from core.dicom.writers.rtstruct import ImageSeriesReference
from core.plan.margins import expand_mask, mask_to_structure


def test_single_voxel_grows_to_the_ellipsoid_of_the_margins() -> None:
    mask = np.zeros((21, 41, 41), dtype=bool)  # [z, y, x]
    mask[10, 20, 20] = True
    grown = expand_mask(mask, (1.0, 1.0, 2.0), (5.0, 3.0, 4.0))  # x 5 mm, y 3 mm, z 4 mm
    zz, yy, xx = np.nonzero(grown)
    assert (xx.min(), xx.max()) == (15, 25) and (yy.min(), yy.max()) == (17, 23) and (zz.min(), zz.max()) == (8, 12)
    assert grown[10, 20, 25] and not grown[11, 21, 24]  # (4/5)^2 + (1/3)^2 + (2/4)^2 > 1: outside the ellipsoid
    only_z = expand_mask(mask, (1.0, 1.0, 2.0), (0.0, 0.0, 4.0))
    assert np.count_nonzero(only_z) == 5 and only_z[8:13, 20, 20].all()
    assert np.array_equal(expand_mask(mask, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0)), mask)


def test_bad_margins_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        expand_mask(np.ones((2, 2, 2), bool), (1.0, 1.0, 1.0), (-1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="positive"):
        expand_mask(np.ones((2, 2, 2), bool), (1.0, 0.0, 1.0), (1.0, 0.0, 0.0))


def test_mask_to_structure_keeps_the_volume() -> None:
    headers = []
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(8):
        ds = pydicom.Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Rows, ds.Columns, ds.PixelSpacing = 40, 40, [1.0, 1.0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-20.0, -20.0, k * 2.0]
        headers.append(ds)
    reference = ImageSeriesReference.from_datasets(headers)
    mask = np.zeros(reference.shape, dtype=bool)
    mask[2:6, 10:30, 5:25] = True  # 4 slices x 20 x 20 voxels of 1 x 1 x 2 mm = 3.2 cc
    structure = mask_to_structure("PTV", mask, reference, interpreted_type="PTV")
    assert structure.planes_z == (4.0, 6.0, 8.0, 10.0) and structure.slice_thickness_mm == 2.0
    # traced half-way between inside and outside voxel centres: a 20 x 20 mm square less 4 corner triangles of
    # 0.125 mm2, on 4 slices of 2 mm
    assert structure.polygon_volume_cc() == pytest.approx(4 * 2 * (400 - 4 * 0.125) / 1000, rel=1e-6)
    with pytest.raises(ValueError, match="empty"):
        mask_to_structure("X", np.zeros(reference.shape, dtype=bool), reference)

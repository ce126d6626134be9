"""DICOM series + RT Structure Set input (ROI by name), against the demo study's truth masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from core.demo import generate_demo_study
from core.radiomics.dicom_input import is_rtstruct
from core.radiomics.extract import extract_files, read_images
from core.radiomics.preprocess import RadiomicsInputError


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate_demo_study(out, seed=4, shape=(96, 96, 24), spacing_mm=(3.0, 3.0, 5.0))
    return out


def test_rtstruct_roi_matches_the_truth_mask(study: Path) -> None:
    assert is_rtstruct(study / "rtstruct.dcm") and not is_rtstruct(study / "truth" / "gtv.nii.gz")
    image, mask = read_images(study / "ct", study / "rtstruct.dcm", roi="Heart")
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(study / "truth" / "heart.nii.gz"))) > 0
    ours = sitk.GetArrayFromImage(mask) > 0
    assert mask.GetOrigin() == image.GetOrigin() and ours.shape == truth.shape
    overlap = 2 * (ours & truth).sum() / (ours.sum() + truth.sum())
    assert overlap > 0.95  # contours written from the truth mask and rasterised back


def test_features_from_rtstruct_and_from_nifti_agree(study: Path) -> None:
    a = {f.ibsi_tag: f.value for f in extract_files(study / "ct", study / "rtstruct.dcm", "ibsi-c", roi="GTV")}
    b = {f.ibsi_tag: f.value for f in extract_files(study / "ct", study / "truth" / "gtv.nii.gz", "ibsi-c")}
    assert a["morph_vol_approx"] == pytest.approx(b["morph_vol_approx"], rel=0.1)
    assert np.isfinite(a["stat_mean"])


def test_rtstruct_errors(study: Path) -> None:
    with pytest.raises(RadiomicsInputError, match=r"no ROI named 'Liver' .*ROIs: Body, .*GTV"):
        read_images(study / "ct", study / "rtstruct.dcm", roi="Liver")
    with pytest.raises(RadiomicsInputError, match="needs a DICOM series folder as image and --roi"):
        read_images(study / "ct", study / "rtstruct.dcm")
    with pytest.raises(RadiomicsInputError, match="--roi selects a structure"):
        read_images(study / "ct", study / "truth" / "gtv.nii.gz", roi="GTV")

"""DICOM input for radiomics: a CT series folder with an RT Structure Set, the ROI chosen by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as _sitk_module  # noqa: N813
from pydicom.errors import InvalidDicomError

from core.dicom.writers.rtstruct import ImageSeriesReference, rtstruct_to_masks
from core.radiomics.preprocess import RadiomicsInputError

sitk: Any = _sitk_module  # SimpleITK is not annotated

__all__ = ["is_rtstruct", "rtstruct_mask"]


def is_rtstruct(path: Path) -> bool:
    """True when ``path`` is a DICOM file with Modality RTSTRUCT."""
    if path.is_dir():
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
    except (InvalidDicomError, OSError):
        return False
    return str(ds.get("Modality", "")) == "RTSTRUCT"


def rtstruct_mask(image: Any, series_files: list[str], rtstruct: Path, roi: str) -> Any:
    """The ROI named ``roi`` of ``rtstruct`` as a uint8 SimpleITK mask on the grid of ``image`` (read from
    ``series_files``). Errors name the ROIs present (ROI names, not patient data)."""
    try:
        ds = pydicom.dcmread(rtstruct)
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in series_files]
    except (InvalidDicomError, OSError) as exc:
        raise RadiomicsInputError(f"cannot read the RT Structure Set or the series: {type(exc).__name__}") from exc
    reference = ImageSeriesReference.from_datasets(headers)
    frames = {str(f.FrameOfReferenceUID) for f in ds.get("ReferencedFrameOfReferenceSequence", [])}
    if frames and reference.frame_of_reference_uid not in frames:
        raise RadiomicsInputError("the RT Structure Set refers to another frame of reference than the image series")
    names = [str(r.ROIName) for r in ds.StructureSetROISequence]
    if roi not in names:
        raise RadiomicsInputError(f"no ROI named {roi!r} in the RT Structure Set (ROIs: {', '.join(names)})")
    mask = rtstruct_to_masks(ds, reference)[roi]
    if not mask.any():
        raise RadiomicsInputError(f"ROI {roi!r} has no contour inside the image")
    first = np.asarray(reference.slices[0].position_mm)
    if not np.allclose(first, image.GetOrigin(), atol=1e-3):  # the series reader sorted the other way round
        mask = mask[::-1]
    out = sitk.GetImageFromArray(mask.astype(np.uint8))
    out.CopyInformation(image)
    return out

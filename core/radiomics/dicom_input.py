"""DICOM input for radiomics: a CT series folder with an RT Structure Set or a DICOM Segmentation, the ROI (or
segment) chosen by name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as _sitk_module  # noqa: N813
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from core.dicom.writers.rtstruct import ImageSeriesReference, rtstruct_to_masks
from core.dicom.writers.seg import read_seg
from core.radiomics.preprocess import RadiomicsInputError

sitk: Any = _sitk_module  # SimpleITK is not annotated

__all__ = ["dicom_modality", "is_rtstruct", "rtstruct_mask", "seg_mask", "seg_segment"]


def dicom_modality(path: Path) -> str:
    """The Modality of the DICOM file ``path`` ("" for a folder, a non-DICOM file or one without Modality)."""
    if path.is_dir():
        return ""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
    except (InvalidDicomError, OSError):
        return ""
    return str(ds.get("Modality", ""))


def is_rtstruct(path: Path) -> bool:
    """True when ``path`` is a DICOM file with Modality RTSTRUCT."""
    return dicom_modality(path) == "RTSTRUCT"


def seg_segment(seg: Dataset, images: Sequence[Dataset], roi: str | None) -> Any:
    """The segment labelled ``roi`` of the DICOM Segmentation ``seg`` as a bool array (slices along the normal,
    rows, columns) on ``images`` (headers suffice). ``roi`` may be None only when the SEG has one segment. Errors
    name the segments present (labels, not patient data)."""
    if str(seg.get("Modality", "")) != "SEG":
        raise RadiomicsInputError("the mask is not a DICOM Segmentation")
    referenced = {str(s.SeriesInstanceUID) for s in seg.get("ReferencedSeriesSequence", [])}
    if referenced and images and str(images[0].SeriesInstanceUID) not in referenced:
        raise RadiomicsInputError("the DICOM Segmentation was made on another image series than the one given")
    labels = [str(item.SegmentLabel) for item in seg.get("SegmentSequence", [])]
    if roi is None:
        if len(labels) != 1:
            raise RadiomicsInputError(f"the DICOM Segmentation has segments {', '.join(labels)}: choose one with --roi")
        roi = labels[0]
    if roi not in labels:
        raise RadiomicsInputError(f"no segment {roi!r} in the DICOM Segmentation (segments: {', '.join(labels)})")
    try:
        masks = read_seg(seg, images)
    except (ValueError, KeyError, AttributeError) as exc:
        raise RadiomicsInputError(f"cannot read the DICOM Segmentation on this series: {exc}") from exc
    mask = masks[roi]
    if not mask.any():
        raise RadiomicsInputError(f"segment {roi!r} is empty")
    return mask


def seg_mask(image: Any, series_files: list[str], seg_path: Path, roi: str | None) -> Any:
    """The segment ``roi`` of the DICOM Segmentation file ``seg_path`` as a uint8 SimpleITK mask on the grid of
    ``image`` (read from ``series_files``)."""
    try:
        ds = pydicom.dcmread(seg_path)
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in series_files]
    except (InvalidDicomError, OSError) as exc:
        raise RadiomicsInputError(f"cannot read the DICOM Segmentation or the series: {type(exc).__name__}") from exc
    mask = seg_segment(ds, headers, roi)
    first = np.asarray([float(v) for v in min(headers, key=_along_normal).ImagePositionPatient])
    if not np.allclose(first, image.GetOrigin(), atol=1e-3):  # the series reader sorted the other way round
        mask = mask[::-1]
    return _on_grid(mask, image)


def _along_normal(ds: Dataset) -> float:
    o = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    return float(np.dot(np.cross(o[:3], o[3:]), [float(v) for v in ds.ImagePositionPatient]))


def _on_grid(mask: Any, image: Any) -> Any:
    if mask.shape != tuple(image.GetSize()[::-1]):
        raise RadiomicsInputError(f"mask shape {mask.shape} differs from the image {tuple(image.GetSize()[::-1])}")
    out = sitk.GetImageFromArray(np.ascontiguousarray(mask, dtype=np.uint8))
    out.CopyInformation(image)
    return out


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
    return _on_grid(mask, image)

"""RT Dose writer: a 3-D dose grid in Gy as a multi-frame RT Dose instance (and back, for checks).

Pixels are unsigned 32-bit integers; dose (Gy) = pixel value x Dose Grid Scaling. Frames are axial planes at the
offsets of Grid Frame Offset Vector (mm, relative to the first frame's Image Position (Patient)). Dose arrays are
indexed ``[frame, row, column]``. Built with pydicom (highdicom has no RT Dose support either).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, RTDoseStorage, RTPlanStorage, generate_uid

from core.dicom.writers.rtstruct import ImageSeriesReference, copy_patient_study, ds_str

__all__ = ["DoseGrid", "RtDoseOptions", "read_rtdose", "write_rtdose"]

#: Dose Summation Types for which PS3.3 C.8.8.3 requires a Referenced RT Plan Sequence.
_NEEDS_PLAN = frozenset({"PLAN", "MULTI_PLAN", "FRACTION", "BEAM", "BRACHY", "FRACTION_SESSION", "BEAM_SESSION",
                         "BRACHY_SESSION", "CONTROL_POINT"})  # fmt: skip
_UINT32_MAX = 2**32 - 1


@dataclass(frozen=True)
class DoseGrid:
    """A dose grid: ``shape`` (columns, rows, frames); ``spacing_mm`` (column spacing dx, row spacing dy, frame
    spacing dz); ``origin_mm`` the centre of voxel (0, 0, 0) in patient coordinates (mm); ``orientation`` the
    Image Orientation (Patient) direction cosines (row direction, column direction)."""

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

    @property
    def array_shape(self) -> tuple[int, int, int]:
        """Numpy shape (frames, rows, columns)."""
        return (self.shape[2], self.shape[1], self.shape[0])

    def points_mm(self, index: NDArray[np.int64] | NDArray[np.float64]) -> NDArray[np.float64]:
        """Patient coordinates (n, 3) in mm of voxel indices (n, 3) given as (frame, row, column)."""
        idx = np.asarray(index, dtype=np.float64).reshape(-1, 3)
        row_dir, col_dir = np.asarray(self.orientation[:3]), np.asarray(self.orientation[3:])
        normal = np.cross(row_dir, col_dir)
        dx, dy, dz = self.spacing_mm
        points = np.asarray(self.origin_mm) + np.outer(idx[:, 2] * dx, row_dir) + np.outer(idx[:, 1] * dy, col_dir)
        return np.asarray(points + np.outer(idx[:, 0] * dz, normal), dtype=np.float64)

    def axes_mm(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Voxel-centre coordinates (x, y, z) in mm along the three axes of an axis-aligned (identity) grid."""
        if self.orientation != (1.0, 0.0, 0.0, 0.0, 1.0, 0.0):
            raise ValueError("axes_mm needs an axis-aligned grid")
        return tuple(  # type: ignore[return-value]
            self.origin_mm[a] + np.arange(self.shape[a]) * self.spacing_mm[a] for a in range(3)
        )


@dataclass(frozen=True)
class RtDoseOptions:
    """Identity and type of the dose. UIDs left None are generated at random; ``date`` (YYYYMMDD) and ``time``
    (HHMMSS) are written as given. ``grid_scaling`` (Gy per pixel unit) None picks the smallest power of ten that
    keeps the maximum dose within 32 bits. ``referenced_plan_uid`` is required for the summation types that
    reference a plan (PLAN, BEAM, FRACTION, ...)."""

    date: str
    time: str
    dose_type: str = "PHYSICAL"
    summation_type: str = "PLAN"
    referenced_plan_uid: str | None = None
    grid_scaling: float | None = None
    sop_instance_uid: str | None = None
    series_instance_uid: str | None = None
    series_number: int = 1
    series_description: str = "RTDOSE"
    instance_number: int = 1
    manufacturer: str = "RadPlan"
    comment: str = ""


def _auto_scaling(max_dose: float) -> float:
    if max_dose <= 0.0:
        return 1e-6
    return float(f"1e{math.ceil(math.log10(max_dose / _UINT32_MAX))}")


def write_rtdose(
    dose_gy: NDArray[np.floating], grid: DoseGrid, reference: ImageSeriesReference, options: RtDoseOptions
) -> Dataset:
    """Build an RT Dose instance (with file meta, Explicit VR Little Endian) of ``dose_gy`` (Gy, non-negative,
    shape ``grid.array_shape``) in the frame of reference of ``reference``, whose patient and study it copies.
    Pixel values are ``round(dose / scaling)``. Save it with ``ds.save_as(path, enforce_file_format=True)``."""
    dose = np.asarray(dose_gy, dtype=np.float64)
    if dose.shape != grid.array_shape:
        raise ValueError(f"dose has shape {dose.shape}, the grid {grid.array_shape}")
    if not np.all(np.isfinite(dose)) or dose.min() < 0.0:
        raise ValueError("dose must be finite and non-negative")
    if options.summation_type in _NEEDS_PLAN and not options.referenced_plan_uid:
        raise ValueError(f"Dose Summation Type {options.summation_type} needs a referenced RT Plan UID")
    scaling_text = ds_str(options.grid_scaling or _auto_scaling(float(dose.max())), 14)
    scaling = float(scaling_text)  # compute pixels with exactly the value a reader gets back
    if scaling <= 0.0:
        raise ValueError("the dose grid scaling must be positive (and at least 1e-14 Gy)")
    pixels = np.rint(dose / scaling)
    if pixels.max() > _UINT32_MAX:
        raise ValueError(f"grid scaling {scaling} Gy is too fine for a maximum dose of {dose.max()} Gy")
    ds = Dataset()
    sop_uid = UID(options.sop_instance_uid) if options.sop_instance_uid else generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RTDoseStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = RTDoseStorage
    ds.SOPInstanceUID = sop_uid
    copy_patient_study(reference.patient_study, ds)
    ds.Modality = "RTDOSE"
    ds.SeriesInstanceUID = options.series_instance_uid or generate_uid()
    ds.SeriesNumber = options.series_number
    ds.SeriesDescription = options.series_description
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = reference.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = options.manufacturer
    ds.InstanceNumber = options.instance_number
    ds.ContentDate = options.date
    ds.ContentTime = options.time
    ds.ImagePositionPatient = [ds_str(v) for v in grid.origin_mm]
    ds.ImageOrientationPatient = [ds_str(v, 6) for v in grid.orientation]
    ds.PixelSpacing = [ds_str(grid.spacing_mm[1]), ds_str(grid.spacing_mm[0])]
    ds.SliceThickness = ds_str(grid.spacing_mm[2])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = grid.shape[2]
    ds.FrameIncrementPointer = (0x3004, 0x000C)
    ds.Rows = grid.shape[1]
    ds.Columns = grid.shape[0]
    ds.BitsAllocated = 32
    ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.DoseUnits = "GY"
    ds.DoseType = options.dose_type
    ds.DoseSummationType = options.summation_type
    if options.comment:
        ds.DoseComment = options.comment
    if options.referenced_plan_uid:
        plan = Dataset()
        plan.ReferencedSOPClassUID = RTPlanStorage
        plan.ReferencedSOPInstanceUID = options.referenced_plan_uid
        ds.ReferencedRTPlanSequence = Sequence([plan])
    ds.GridFrameOffsetVector = [ds_str(k * grid.spacing_mm[2]) for k in range(grid.shape[2])]
    ds.DoseGridScaling = scaling_text
    ds.TissueHeterogeneityCorrection = "IMAGE"
    ds.PixelData = pixels.astype("<u4").tobytes()
    return ds


def read_rtdose(ds: Dataset) -> tuple[NDArray[np.float64], DoseGrid]:
    """Dose in Gy ``[frame, row, column]`` and its grid from an RT Dose dataset (uniform frame spacing)."""
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    frames = int(ds.get("NumberOfFrames", 1))
    spacing_z = offsets[1] - offsets[0] if frames > 1 else float(ds.get("SliceThickness") or 0.0)
    orientation = tuple(float(v) for v in ds.ImageOrientationPatient)
    origin = [float(v) for v in ds.ImagePositionPatient]  # the first frame, for relative and absolute offsets
    grid = DoseGrid(
        shape=(int(ds.Columns), int(ds.Rows), frames),
        spacing_mm=(float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0]), spacing_z),
        origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
        orientation=orientation,  # type: ignore[arg-type]
    )
    raw = np.asarray(ds.pixel_array).reshape(grid.array_shape)
    return raw.astype(np.float64) * float(ds.DoseGridScaling), grid

"""Writers for DICOM RT objects built with pydicom: RT Structure Set (:mod:`.rtstruct`) and RT Dose (:mod:`.rtdose`)."""

from core.dicom.writers.rtdose import DoseGrid, RtDoseOptions, read_rtdose, write_rtdose
from core.dicom.writers.rtstruct import (
    ImageSeriesReference,
    ImageSliceRef,
    RoiSpec,
    StructureSetOptions,
    rtstruct_to_masks,
    write_rtstruct,
)

__all__ = [
    "DoseGrid",
    "ImageSeriesReference",
    "ImageSliceRef",
    "RoiSpec",
    "RtDoseOptions",
    "StructureSetOptions",
    "read_rtdose",
    "rtstruct_to_masks",
    "write_rtdose",
    "write_rtstruct",
]

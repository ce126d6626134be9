"""CT Image Storage writer for the demo study: one Explicit VR Little Endian file per axial slice.

Pixels are signed 16-bit (Pixel Representation 1) with Rescale Intercept -1024 and Rescale Slope 1, so the stored
value is HU + 1024 (air = 0). Geometry: head-first-supine axial slices, Image Orientation (Patient) 1\\0\\0\\0\\1\\0,
Image Position (Patient) of slice k at z = origin_z + k * dz (mm), Slice Thickness = slice spacing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from core.demo.phantom import VolumeGeometry
from core.dicom.writers.rtstruct import ds_str

__all__ = ["RESCALE_INTERCEPT", "CtSeriesHeader", "write_ct_series"]

RESCALE_INTERCEPT = -1024


@dataclass(frozen=True)
class CtSeriesHeader:
    """Patient, study and series identity of a CT series; dates YYYYMMDD, times HHMMSS, sex M/F/O, one SOP
    Instance UID per slice (inferior to superior)."""

    patient_name: str
    patient_id: str
    patient_birth_date: str
    patient_sex: str
    patient_age: str
    study_instance_uid: str
    study_date: str
    study_time: str
    study_id: str
    accession_number: str
    study_description: str
    referring_physician_name: str
    series_instance_uid: str
    frame_of_reference_uid: str
    sop_instance_uids: tuple[str, ...]
    series_number: int = 1
    series_description: str = "CT THORAX"
    manufacturer: str = "RadPlan"
    model_name: str = "Synthetic thorax phantom"
    institution_name: str = "RadPlan Demo Hospital"
    kvp: str = "120"
    tube_current_ma: int = 200
    file_prefix: str = "CT_"


def _base_dataset(header: CtSeriesHeader, geometry: VolumeGeometry) -> Dataset:
    ds = Dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = header.study_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = header.study_time
    ds.AccessionNumber = header.accession_number
    ds.Modality = "CT"
    ds.Manufacturer = header.manufacturer
    ds.InstitutionName = header.institution_name
    ds.ReferringPhysicianName = header.referring_physician_name
    ds.StudyDescription = header.study_description
    ds.SeriesDescription = header.series_description
    ds.ManufacturerModelName = header.model_name
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = header.patient_birth_date
    ds.PatientSex = header.patient_sex
    ds.PatientAge = header.patient_age
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = ds_str(geometry.spacing_mm[2])
    ds.KVP = header.kvp
    ds.DataCollectionDiameter = ds_str(500.0)
    ds.ReconstructionDiameter = ds_str(geometry.shape[0] * geometry.spacing_mm[0])
    ds.XRayTubeCurrent = header.tube_current_ma
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = header.study_instance_uid
    ds.SeriesInstanceUID = header.series_instance_uid
    ds.StudyID = header.study_id
    ds.SeriesNumber = header.series_number
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = header.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = geometry.shape[1]
    ds.Columns = geometry.shape[0]
    ds.PixelSpacing = [ds_str(geometry.spacing_mm[1]), ds_str(geometry.spacing_mm[0])]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = str(RESCALE_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    return ds


def write_ct_series(
    out_dir: Path, hu: NDArray[np.int16], geometry: VolumeGeometry, header: CtSeriesHeader
) -> tuple[list[Path], list[Dataset]]:
    """Write ``hu`` (HU, [slice, row, column], slice 0 inferior) as ``<prefix>0001.dcm`` ... into ``out_dir``;
    returns the paths and the headers of the written datasets (without Pixel Data) in slice order."""
    if hu.shape != geometry.array_shape:
        raise ValueError(f"volume has shape {hu.shape}, the geometry {geometry.array_shape}")
    if len(header.sop_instance_uids) != hu.shape[0]:
        raise ValueError("one SOP Instance UID per slice is needed")
    out_dir.mkdir(parents=True, exist_ok=True)
    x0, y0 = ds_str(geometry.origin_mm[0]), ds_str(geometry.origin_mm[1])
    stored = (hu.astype(np.int32) - RESCALE_INTERCEPT).clip(-32768, 32767).astype("<i2")
    paths: list[Path] = []
    headers: list[Dataset] = []
    for k, z in enumerate(geometry.axis_mm(2)):
        ds = _base_dataset(header, geometry)
        ds.SOPInstanceUID = header.sop_instance_uids[k]
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [x0, y0, ds_str(float(z))]
        ds.SliceLocation = ds_str(float(z))
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = stored[k].tobytes()
        path = out_dir / f"{header.file_prefix}{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        del ds.PixelData
        paths.append(path)
        headers.append(ds)
    return paths, headers

"""Reading RT Dose and RT Structure Set objects for DVHs, and the per-ROI DVH report of `radplan dvh`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk  # noqa: N813
from pydicom import Dataset
from pydicom.errors import InvalidDicomError

from core.dicom.writers.rtdose import read_rtdose
from core.plan.dvh import DoseVolume, DvhMetrics, compute_dvh
from core.plan.margins import grid_mask_to_structure
from core.plan.structures import EndCaps, PlanarStructure, StructureSet, read_rtstruct_structures

__all__ = [
    "dose_volume_from_rtdose",
    "dvh_metrics",
    "load_dicom",
    "read_dose_file",
    "read_mask_file",
    "read_struct_file",
]

_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def load_dicom(path: Path, modality: str) -> Dataset:
    """Read a DICOM file and check its modality; ValueError with the reason otherwise."""
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError) as exc:
        raise ValueError(f"{path.name}: not a readable DICOM file ({exc})") from exc
    if str(ds.get("Modality", "")) != modality:
        raise ValueError(f"{path.name}: Modality is {ds.get('Modality', 'missing')!r}, expected {modality}")
    return ds


def dose_volume_from_rtdose(ds: Dataset) -> DoseVolume:
    """The dose grid (Gy) of an RT Dose instance: axial, axis-aligned grids only; frames may run either way."""
    if str(ds.get("DoseUnits", "GY")).upper() != "GY":
        raise ValueError(f"Dose Units {ds.DoseUnits!r} are not supported (only GY)")
    orientation = tuple(round(float(v), 6) for v in ds.ImageOrientationPatient)
    if orientation != _IDENTITY:
        raise ValueError("only axis-aligned (head-first supine) dose grids are supported")
    offsets = np.asarray([float(v) for v in ds.GridFrameOffsetVector])
    if offsets.size > 2 and np.ptp(np.diff(offsets)) > 1e-3:
        raise ValueError("the dose frames are not evenly spaced (Grid Frame Offset Vector)")
    dose, grid = read_rtdose(ds)
    origin = list(grid.origin_mm)  # Image Position (Patient) is the first frame's, for relative and absolute offsets
    dz = grid.spacing_mm[2]
    if offsets.size == 1 and dz <= 0.0:
        dz = 1.0
    if dz < 0.0:  # frames stored from head to feet
        dose = dose[::-1]
        origin[2] += dz * (dose.shape[0] - 1)
        dz = -dz
    return DoseVolume(dose, (origin[0], origin[1], origin[2]), (grid.spacing_mm[0], grid.spacing_mm[1], dz))


def read_dose_file(path: Path) -> DoseVolume:
    return dose_volume_from_rtdose(load_dicom(path, "RTDOSE"))


def read_struct_file(path: Path, *, end_caps: EndCaps = "half_slice") -> StructureSet:
    return read_rtstruct_structures(load_dicom(path, "RTSTRUCT"), end_caps=end_caps)


def read_mask_file(path: Path, name: str) -> PlanarStructure:
    """A binary mask image (NIfTI, NRRD, MHA... anything SimpleITK reads; non-zero = inside) as planar contours.
    Axis-aligned images only."""
    try:
        image: Any = sitk.ReadImage(str(path))  # SimpleITK is not annotated
    except RuntimeError as exc:
        raise ValueError(f"{path.name}: not a readable mask image ({str(exc).strip().splitlines()[-1]})") from exc
    direction = tuple(round(float(v), 6) for v in image.GetDirection())
    if direction != (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0):
        raise ValueError(f"{path.name}: only axis-aligned mask images are supported")
    mask = np.asarray(sitk.GetArrayFromImage(image)) != 0
    if mask.ndim != 3:
        raise ValueError(f"{path.name}: a mask must be a 3-D image")
    origin = tuple(float(v) for v in image.GetOrigin())
    spacing = tuple(float(v) for v in image.GetSpacing())
    return grid_mask_to_structure(name, mask, origin, spacing)  # type: ignore[arg-type]


def dvh_metrics(
    dose: DoseVolume,
    structures: StructureSet | None,
    rois: Sequence[str] = (),
    *,
    extra: Sequence[PlanarStructure] = (),
    oversampling: int = 4,
) -> list[DvhMetrics]:
    """DVH numbers for ``rois`` of the structure set (all its ROIs when empty) in that order, then for the
    ``extra`` structures (masks). KeyError for an unknown ROI name."""
    names = list(rois) or (list(structures.structures) if structures is not None else [])
    if names and structures is None:
        raise KeyError("ROIs were named but no structure set was given")
    parts = [structures.get(name) for name in names] if structures is not None else []
    parts += list(extra)
    return [compute_dvh(dose, [part], name=part.name, oversampling=oversampling).metrics() for part in parts]

"""Series -> volume: the images of one series as a 3-D array in patient geometry, with every check a clinician's
measurement depends on.

- Slices are sorted along the slice normal (cross product of the Image Orientation (Patient) row and column
  cosines), not by Instance Number or file name.
- Every slice must have the same orientation, size and pixel spacing; a slice without Image Position or Image
  Orientation is named in the error.
- The spacing between slices must be uniform (tolerance `spacing_tolerance_mm`); a missing slice gives an error
  naming the gap (the positions along the normal, in mm, and the instance numbers on either side).
- Gantry tilt (slice positions not moving along the normal) is detected and refused with its angle in degrees,
  unless the caller asks for `resample_tilt=True`: then each slice (a plane of its own, only shifted in-plane
  relative to an orthogonal stack) is shifted back in-plane by linear interpolation onto the orthogonal grid of the
  first slice (spacing along the normal = the slice distance projected on it); uncovered voxels get the series'
  minimum value and the volume's notes say so. A segmentation drawn on such a volume is on the resampled grid, not
  on the source pixels, so writers that reference source images must not be fed it (the default refuses).
- Values are rescaled per slice (Rescale Slope/Intercept; for CT the result is in HU) into float32.
- Enhanced (multi-frame) CT/MR: each frame is a slice, with its geometry and rescale from the functional groups.
- Localizers (Image Type value 3 LOCALIZER) are left out; non-image objects (SR, RTSTRUCT, RTPLAN, RTDOSE, SEG,
  ...) stay in the store and are never turned into volumes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from core.errors import PermissionDeniedError, RadPlanError
from core.security.roles import Permission
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.blobs import stored_bytes
from core.store.store import Store
from core.store.users import record_access

__all__ = [
    "NON_VOLUME_MODALITIES",
    "StudyVolumes",
    "Volume",
    "VolumeError",
    "is_localizer",
    "series_to_volume",
    "study_volumes",
]

#: Modalities whose objects are kept in the store but never made into volumes.
NON_VOLUME_MODALITIES = frozenset({"SR", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SEG", "PR", "KO", "DOC", "REG"})


class VolumeError(RadPlanError):
    """The series cannot be made into a volume; the message says why (and which slice or gap)."""


@dataclass(frozen=True)
class Volume:
    """array[k, r, c] (float32, rescaled: HU for CT) at patient position origin + c*sx*row_dir + r*sy*col_dir +
    k*sz*normal, in mm. spacing_mm is (column spacing, row spacing, slice spacing) like SimpleITK's (x, y, z);
    direction is SimpleITK's row-major 3x3 whose columns are the row direction, column direction and normal."""

    array: NDArray[np.float32]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: tuple[float, ...]
    series_uid: str
    modality: str
    units: str
    sop_uids: tuple[str, ...]
    excluded_localizers: int = 0
    notes: tuple[str, ...] = field(default=())

    def to_sitk(self) -> object:
        """A SimpleITK image with the same geometry (SimpleITK imported on demand)."""
        import SimpleITK as sitk  # noqa: N813

        image: Any = sitk.GetImageFromArray(self.array)  # SimpleITK is not annotated
        image.SetSpacing(self.spacing_mm)
        image.SetOrigin(self.origin_mm)
        image.SetDirection(self.direction)
        return image


@dataclass(frozen=True)
class _Slice:
    sop_uid: str
    number: int | None
    position: NDArray[np.float64]
    orientation: NDArray[np.float64]
    spacing: tuple[float, float]
    rows: int
    cols: int
    slope: float
    intercept: float
    pixels: NDArray[np.generic]


def is_localizer(ds: Dataset) -> bool:
    image_type = [str(v).upper() for v in ds.get("ImageType", [])]
    return len(image_type) > 2 and image_type[2] == "LOCALIZER"


def _floats(value: object, n: int, what: str, sop: str) -> NDArray[np.float64]:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.size != n or not np.all(np.isfinite(arr)):
        raise VolumeError(f"instance {sop} has no valid {what}: cannot place it in the volume")
    return arr


def _frame_slices(ds: Dataset) -> list[_Slice]:
    """One _Slice per frame (enhanced multi-frame) or the single slice of a classic image."""
    sop = str(ds.get("SOPInstanceUID", "?"))
    pixels = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames == 1 or "PerFrameFunctionalGroupsSequence" not in ds:
        if frames > 1:
            raise VolumeError(f"instance {sop}: multi-frame without per-frame functional groups is not supported")
        return [_classic_slice(ds, sop, pixels)]
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else Dataset()
    out = []
    for index, group in enumerate(ds.PerFrameFunctionalGroupsSequence):

        def item(name: str, group: Dataset = group) -> Dataset | None:
            seq = group.get(name) or shared.get(name)
            return seq[0] if seq else None

        where = f"{sop} frame {index + 1}"
        pos, ori, meas, trans = (
            item("PlanePositionSequence"),
            item("PlaneOrientationSequence"),
            item("PixelMeasuresSequence"),
            item("PixelValueTransformationSequence"),
        )
        spacing = _floats(meas.get("PixelSpacing") if meas else None, 2, "Pixel Spacing", where)
        out.append(
            _Slice(
                sop_uid=where,
                number=index + 1,
                position=_floats(pos.get("ImagePositionPatient") if pos else None, 3, "Image Position", where),
                orientation=_floats(ori.get("ImageOrientationPatient") if ori else None, 6, "Image Orientation", where),
                spacing=(float(spacing[0]), float(spacing[1])),
                rows=int(ds.Rows),
                cols=int(ds.Columns),
                slope=float(trans.get("RescaleSlope", 1) if trans else 1),
                intercept=float(trans.get("RescaleIntercept", 0) if trans else 0),
                pixels=pixels[index],
            )
        )
    return out


def _classic_slice(ds: Dataset, sop: str, pixels: NDArray[np.generic]) -> _Slice:
    spacing = _floats(ds.get("PixelSpacing"), 2, "Pixel Spacing", sop)
    number = ds.get("InstanceNumber")
    return _Slice(
        sop_uid=sop,
        number=int(number) if number not in (None, "") else None,
        position=_floats(ds.get("ImagePositionPatient"), 3, "Image Position (Patient)", sop),
        orientation=_floats(ds.get("ImageOrientationPatient"), 6, "Image Orientation (Patient)", sop),
        spacing=(float(spacing[0]), float(spacing[1])),
        rows=int(ds.Rows),
        cols=int(ds.Columns),
        slope=float(ds.get("RescaleSlope", 1) or 1),
        intercept=float(ds.get("RescaleIntercept", 0) or 0),
        pixels=pixels,
    )


def _check_gaps(slices: list[_Slice], offsets: NDArray[np.float64], tolerance: float) -> float:
    """The uniform slice spacing in mm; VolumeError naming the gap when a slice is missing."""
    steps = np.diff(offsets)
    if np.any(steps < 1e-3):
        k = int(np.argmin(steps))
        raise VolumeError(
            f"two slices at the same position {offsets[k]:.2f} mm along the normal "
            f"({slices[k].sop_uid} and {slices[k + 1].sop_uid}): duplicate or mixed acquisitions"
        )
    spacing = float(np.median(steps))
    for k, step in enumerate(steps):
        if abs(step - spacing) > tolerance:
            a, b = slices[k], slices[k + 1]
            missing = round(step / spacing) - 1
            kind = (
                f"{missing} missing slice(s)"
                if missing >= 1 and abs(step - (missing + 1) * spacing) <= tolerance
                else "non-uniform spacing"
            )
            raise VolumeError(
                f"{kind}: gap of {step:.2f} mm between slice positions {offsets[k]:.2f} mm and {offsets[k + 1]:.2f} mm "
                f"along the normal (instance numbers {a.number} and {b.number}) where the spacing is {spacing:.2f} mm"
            )
    return spacing


def series_to_volume(
    datasets: Sequence[Dataset], *, spacing_tolerance_mm: float = 0.05, resample_tilt: bool = False
) -> Volume:
    """Build the volume of one series from its data sets (pixel data included); see the module docstring."""
    if not datasets:
        raise VolumeError("no instances given")
    series = {str(d.get("SeriesInstanceUID", "")) for d in datasets}
    if len(series) > 1:
        raise VolumeError(f"the instances belong to {len(series)} series; a volume is built from one series")
    modality = str(datasets[0].get("Modality", ""))
    if modality in NON_VOLUME_MODALITIES or all("PixelData" not in d for d in datasets):
        raise VolumeError(f"series {series.pop()} ({modality or 'no modality'}) holds no images: not a volume")
    images = [d for d in datasets if "PixelData" in d and not is_localizer(d)]
    excluded = sum(1 for d in datasets if is_localizer(d))
    if not images:
        raise VolumeError(f"series {series.pop()} holds only localizer images: not a volume")
    slices = [s for d in images for s in _frame_slices(d)]
    first = slices[0]
    for s in slices[1:]:
        if np.max(np.abs(s.orientation - first.orientation)) > 1e-4:
            raise VolumeError(f"slice {s.sop_uid} has a different orientation from {first.sop_uid}")
        if (s.rows, s.cols) != (first.rows, first.cols):
            raise VolumeError(f"slice {s.sop_uid} is {s.rows}x{s.cols}, the others {first.rows}x{first.cols}")
        if max(abs(a - b) for a, b in zip(s.spacing, first.spacing, strict=True)) > 1e-4:
            raise VolumeError(f"slice {s.sop_uid} has pixel spacing {s.spacing}, the others {first.spacing}")
    row_dir, col_dir = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row_dir, col_dir)
    slices.sort(key=lambda s: float(np.dot(normal, s.position)))
    offsets = np.asarray([float(np.dot(normal, s.position)) for s in slices])
    spacing_z = _check_gaps(slices, offsets, spacing_tolerance_mm) if len(slices) > 1 else 1.0
    if len(slices) > 1:
        along = slices[-1].position - slices[0].position
        cos = abs(float(np.dot(along, normal))) / float(np.linalg.norm(along))
        tilt = math.degrees(math.acos(min(1.0, cos)))
        if tilt > 0.01 and not resample_tilt:
            raise VolumeError(
                f"gantry tilt of {tilt:.2f} degrees (slices do not move along their normal): it is not resampled "
                "for measurement or segmentation; reconstruct the series without tilt at the scanner"
            )
    array = np.empty((len(slices), first.rows, first.cols), dtype=np.float32)
    for k, s in enumerate(slices):
        array[k] = s.pixels.astype(np.float32) * np.float32(s.slope) + np.float32(s.intercept)
    notes: tuple[str, ...] = ()
    if len(slices) > 1 and resample_tilt and tilt > 0.01:
        notes = _untilt(array, slices, row_dir, col_dir, first.spacing, tilt)
    rescale_type = str(images[0].get("RescaleType", ""))
    units = "HU" if modality == "CT" else (rescale_type or "stored value (rescaled)")
    direction = tuple(float(v) for v in np.column_stack([row_dir, col_dir, normal]).ravel())
    return Volume(
        array=array,
        spacing_mm=(first.spacing[1], first.spacing[0], spacing_z),
        origin_mm=tuple(float(v) for v in slices[0].position),  # type: ignore[arg-type]
        direction=direction,
        series_uid=str(images[0].SeriesInstanceUID),
        modality=modality,
        units=units,
        sop_uids=tuple(s.sop_uid for s in slices),
        excluded_localizers=excluded,
        notes=notes,
    )


def _untilt(
    array: NDArray[np.float32],
    slices: list[_Slice],
    row_dir: NDArray[np.float64],
    col_dir: NDArray[np.float64],
    spacing: tuple[float, float],
    tilt: float,
) -> tuple[str, ...]:
    """Shift slice k in-plane (in place) by k times the in-plane part of the slice step: the orthogonal grid."""
    from scipy import ndimage

    step = (slices[-1].position - slices[0].position) / (len(slices) - 1)
    along_row, along_col = float(np.dot(step, row_dir)), float(np.dot(step, col_dir))
    fill = float(array.min())
    for k in range(1, len(slices)):  # pixel (r, c) of slice k is at (r + k*b/sy, c + k*a/sx) of the new grid
        shift = (k * along_col / spacing[0], k * along_row / spacing[1])
        array[k] = ndimage.shift(array[k], shift, order=1, mode="constant", cval=fill)
    moved = math.hypot(along_row, along_col) * (len(slices) - 1)
    return (
        f"gantry tilt of {tilt:.2f} degrees resampled onto an orthogonal grid (linear, slices shifted in-plane by up "
        f"to {moved:.1f} mm; voxels outside the scanned region set to {fill:g})",
    )


@dataclass(frozen=True)
class StudyVolumes:
    volumes: list[Volume]
    #: series UID -> why it is not a volume (non-image object, localizers only, a gap, ...).
    skipped: dict[str, str]


def study_volumes(store: Store, access: Access, study_uid: str) -> StudyVolumes:
    """Every image series of a stored study as a volume (audited read of the study's instances)."""
    if access.permission is not Permission.READ_PATIENT_DATA:
        raise PermissionDeniedError("reading images needs the 'read_patient_data' permission")
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT se.series_uid, se.modality, i.blob, d.data FROM instances i "
            "LEFT JOIN instance_data d ON d.instance_fk = i.id "
            "JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk WHERE st.study_uid = ? "
            "ORDER BY se.id, i.id",
            (study_uid,),
        ).fetchall()
        record_access(
            conn,
            access,
            "study.read_images",
            objects=[AuditObject("study", study_uid)],
            details={"instances": len(rows)},
        )
    if not rows:
        raise VolumeError(f"study {study_uid} is not in the store")
    by_series: dict[str, list[bytes]] = {}
    modalities: dict[str, str] = {}
    for series_uid, modality, blob, inline in rows:
        by_series.setdefault(str(series_uid), []).append(stored_bytes(store.conn, blob, inline))
        modalities[str(series_uid)] = str(modality)
    volumes, skipped = [], {}
    for series_uid, blobs in by_series.items():
        if modalities[series_uid] in NON_VOLUME_MODALITIES:
            skipped[series_uid] = f"{modalities[series_uid]}: not an image series"
            continue
        try:
            volumes.append(series_to_volume([pydicom.dcmread(io.BytesIO(b)) for b in blobs]))
        except VolumeError as exc:
            skipped[series_uid] = str(exc)
    return StudyVolumes(volumes, skipped)

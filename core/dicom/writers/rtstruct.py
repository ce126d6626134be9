"""RT Structure Set writer: binary masks on a CT grid to CLOSED_PLANAR contours (and back, for checks).

highdicom does not write RT Structure Sets (it writes DICOM Segmentation, a different IOD that radiotherapy planning
systems generally do not import), so this one is built attribute by attribute with pydicom.

Contours are traced per slice with :func:`skimage.measure.find_contours` at level 0.5, i.e. on the boundary half
way between the centres of inside and outside voxels, and converted to patient coordinates (mm). Holes (for
example a lung with the tumour carved out) are written as separate contours on the same slice and are meant to be
read with the even-odd (XOR) rule, as the major planning systems do; :func:`rtstruct_to_masks` reads them so.
Mask arrays are indexed ``[slice, row, column]`` in the order of :attr:`ImageSeriesReference.slices`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset, config
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

__all__ = [
    "ImageSeriesReference",
    "ImageSliceRef",
    "RoiSpec",
    "StructureSetOptions",
    "contour_polygons",
    "copy_patient_study",
    "ds_str",
    "rtstruct_to_masks",
    "write_rtstruct",
]

_Polygon = NDArray[np.float64]
# scikit-image has no type annotations for these.


# scikit-image (and scipy under it) is imported on first use: importing this module stays cheap for the CLI and GUI.
def _find_contours(image: NDArray[np.float64], level: float, *, fully_connected: str) -> list[_Polygon]:
    from skimage import measure

    contours = measure.find_contours(image, level, fully_connected=fully_connected)  # type: ignore[no-untyped-call]
    return cast(list[_Polygon], contours)


def _approximate_polygon(contour: _Polygon, tolerance: float) -> _Polygon:
    from skimage import measure

    return cast(_Polygon, measure.approximate_polygon(contour, tolerance))  # type: ignore[no-untyped-call]


#: RT ROI Interpreted Type values of PS3.3 C.8.8.8 accepted by :class:`RoiSpec`.
INTERPRETED_TYPES = frozenset(
    {"EXTERNAL", "PTV", "CTV", "GTV", "TREATED_VOLUME", "IRRAD_VOLUME", "OAR", "BOLUS", "AVOIDANCE", "ORGAN",
     "MARKER", "REGISTRATION", "ISOCENTER", "CONTRAST_AGENT", "CAVITY", "BRACHY_CHANNEL", "BRACHY_ACCESSORY",
     "BRACHY_SRC_APP", "BRACHY_CHNL_SHLD", "SUPPORT", "FIXATION", "DOSE_REGION", "CONTROL"}
)  # fmt: skip
_PALETTE = ((0, 255, 0), (0, 128, 255), (255, 128, 0), (255, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 0))
#: Patient and General Study module attributes copied from the referenced images into derived objects.
PATIENT_STUDY_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "StudyInstanceUID", "StudyDate",
    "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription",
)  # fmt: skip


def ds_str(value: float, decimals: int = 4) -> str:
    """A Decimal String (at most 16 characters) for ``value`` with up to ``decimals`` decimals."""
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    if len(text) > 16:
        text = f"{value:.9g}"
    return text


@dataclass(frozen=True)
class ImageSliceRef:
    """One referenced image: its SOP Class/Instance UIDs and Image Position (Patient) in mm."""

    sop_class_uid: str
    sop_instance_uid: str
    position_mm: tuple[float, float, float]


@dataclass(frozen=True)
class ImageSeriesReference:
    """Geometry and identity of an axial image series that masks and dose grids refer to.

    ``slices`` are sorted along the slice normal (ascending). ``pixel_spacing_mm`` is (row spacing, column
    spacing) as in DICOM Pixel Spacing, ``orientation`` the six Image Orientation (Patient) direction cosines, and
    ``patient_study`` holds the Patient and General Study module attributes copied into derived objects.
    """

    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    rows: int
    columns: int
    pixel_spacing_mm: tuple[float, float]
    orientation: tuple[float, float, float, float, float, float]
    slices: tuple[ImageSliceRef, ...]
    patient_study: Dataset = field(compare=False, repr=False)

    @classmethod
    def from_datasets(cls, datasets: Iterable[Dataset]) -> ImageSeriesReference:
        """Build from the (header) datasets of one series; they are sorted along the slice normal."""
        items = list(datasets)
        if not items:
            raise ValueError("no images to reference")
        first = items[0]
        orientation = tuple(float(v) for v in first.ImageOrientationPatient)
        normal = np.cross(orientation[:3], orientation[3:])
        items.sort(key=lambda d: float(np.dot(normal, [float(v) for v in d.ImagePositionPatient])))
        for d in items:
            if d.SeriesInstanceUID != first.SeriesInstanceUID or d.FrameOfReferenceUID != first.FrameOfReferenceUID:
                raise ValueError("the images belong to more than one series or frame of reference")
        slices = tuple(
            ImageSliceRef(str(d.SOPClassUID), str(d.SOPInstanceUID), tuple(float(v) for v in d.ImagePositionPatient))  # type: ignore[arg-type]
            for d in items
        )
        return cls(
            study_instance_uid=str(first.StudyInstanceUID), series_instance_uid=str(first.SeriesInstanceUID),
            frame_of_reference_uid=str(first.FrameOfReferenceUID), rows=int(first.Rows), columns=int(first.Columns),
            pixel_spacing_mm=(float(first.PixelSpacing[0]), float(first.PixelSpacing[1])),
            orientation=orientation,  # type: ignore[arg-type]
            slices=slices, patient_study=copy_patient_study(first),
        )  # fmt: skip

    @property
    def shape(self) -> tuple[int, int, int]:
        """Mask array shape (slices, rows, columns)."""
        return (len(self.slices), self.rows, self.columns)

    def to_patient(self, k: int, rows: NDArray[np.float64], cols: NDArray[np.float64]) -> NDArray[np.float64]:
        """Patient coordinates (n, 3) in mm of fractional (row, column) positions on slice k."""
        o = np.asarray(self.orientation)
        dr, dc = self.pixel_spacing_mm
        origin = np.asarray(self.slices[k].position_mm)
        return origin + np.outer(cols * dc, o[:3]) + np.outer(rows * dr, o[3:])

    def to_pixel(self, k: int, points: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Fractional (rows, columns) on slice k of patient points (n, 3) in mm (projected onto the plane)."""
        o = np.asarray(self.orientation)
        rel = points - np.asarray(self.slices[k].position_mm)
        return rel @ o[3:] / self.pixel_spacing_mm[0], rel @ o[:3] / self.pixel_spacing_mm[1]


def copy_patient_study(source: Dataset, target: Dataset | None = None) -> Dataset:
    """Copy the Patient and General Study attributes present in ``source`` (into a new dataset by default)."""
    out = Dataset() if target is None else target
    for keyword in PATIENT_STUDY_KEYWORDS:
        if keyword in source:
            setattr(out, keyword, source[keyword].value)
    return out


@dataclass(frozen=True)
class RoiSpec:
    """One ROI: a (slices, rows, columns) mask (non-zero = inside), RT ROI Interpreted Type, display colour (RGB,
    0-255; None picks one from a palette) and ROI Generation Algorithm (AUTOMATIC, SEMIAUTOMATIC or MANUAL)."""

    mask: NDArray[np.bool_] | NDArray[np.uint8]
    interpreted_type: str = "ORGAN"
    color: tuple[int, int, int] | None = None
    generation_algorithm: str = "AUTOMATIC"
    description: str = ""


@dataclass(frozen=True)
class StructureSetOptions:
    """Identity of the structure set. UIDs left None are generated at random; ``date`` (YYYYMMDD) and ``time``
    (HHMMSS) are written as given. ``simplify_tolerance_px`` is the largest distance (pixels) a contour vertex may
    be dropped from the traced boundary (0: only collinear vertices are dropped, which loses nothing); coordinates
    are written with 0.0001 mm resolution."""

    date: str
    time: str
    label: str = "RadPlan"
    name: str = ""
    description: str = ""
    sop_instance_uid: str | None = None
    series_instance_uid: str | None = None
    series_number: int = 1
    series_description: str = "RTSTRUCT"
    instance_number: int = 1
    manufacturer: str = "RadPlan"
    simplify_tolerance_px: float = 0.0


def _drop_collinear(poly: NDArray[np.float64]) -> NDArray[np.float64]:
    """Remove vertices lying on the straight line through their neighbours (lossless for traced boundaries)."""
    before, after = np.roll(poly, 1, axis=0), np.roll(poly, -1, axis=0)
    cross = (poly[:, 0] - before[:, 0]) * (after[:, 1] - poly[:, 1]) - (poly[:, 1] - before[:, 1]) * (
        after[:, 0] - poly[:, 0]
    )
    keep = np.abs(cross) > 1e-9
    return poly[keep] if keep.sum() >= 3 else poly


def contour_polygons(mask2d: NDArray[np.bool_], tolerance_px: float = 0.0) -> list[NDArray[np.float64]]:
    """Closed boundary polygons (n, 2) of fractional (row, column) vertices of a 2-D mask, outer and hole
    boundaries alike, without repeating the first vertex. Collinear vertices are dropped; a positive
    ``tolerance_px`` further simplifies (Douglas-Peucker) by up to that distance in pixels."""
    rows, cols = np.nonzero(mask2d)
    if rows.size == 0:
        return []
    r0, c0 = rows.min(), cols.min()
    crop = np.pad(mask2d[r0 : rows.max() + 1, c0 : cols.max() + 1].astype(np.float64), 1)
    out = []
    for contour in _find_contours(crop, 0.5, fully_connected="high"):
        if tolerance_px > 0.0:
            contour = _approximate_polygon(contour, tolerance_px)
        poly = contour[:-1] if np.array_equal(contour[0], contour[-1]) else contour
        if len(poly) >= 3:
            out.append(_drop_collinear(poly) + np.array([r0 - 1.0, c0 - 1.0]))
    return out


def _referenced_series(reference: ImageSeriesReference) -> Sequence:
    images = Sequence()
    for ref in reference.slices:
        item = Dataset()
        item.ReferencedSOPClassUID = ref.sop_class_uid
        item.ReferencedSOPInstanceUID = ref.sop_instance_uid
        images.append(item)
    series = Dataset()
    series.SeriesInstanceUID = reference.series_instance_uid
    series.ContourImageSequence = images
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired), by convention
    study.ReferencedSOPInstanceUID = reference.study_instance_uid
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = reference.frame_of_reference_uid
    frame.RTReferencedStudySequence = Sequence([study])
    return Sequence([frame])


def _roi_contours(spec: RoiSpec, reference: ImageSeriesReference, tolerance_px: float) -> Sequence:
    contours = Sequence()
    mask = np.asarray(spec.mask) != 0
    for k in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        ref = reference.slices[int(k)]
        for poly in contour_polygons(mask[k], tolerance_px):
            points = reference.to_patient(int(k), poly[:, 0], poly[:, 1])
            item = Dataset()
            image = Dataset()
            image.ReferencedSOPClassUID = ref.sop_class_uid
            image.ReferencedSOPInstanceUID = ref.sop_instance_uid
            item.ContourImageSequence = Sequence([image])
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(points)
            item.ContourNumber = len(contours) + 1
            with config.disable_value_validation():  # the values are formatted above; skip 1e5-1e6 regex checks
                item.ContourData = [ds_str(v, 4) for v in points.ravel()]
            contours.append(item)
    return contours


def write_rtstruct(
    masks: Mapping[str, RoiSpec | NDArray[np.bool_] | NDArray[np.uint8]],
    reference: ImageSeriesReference,
    options: StructureSetOptions,
) -> Dataset:
    """Build an RT Structure Set (with file meta, Explicit VR Little Endian) of ``masks`` keyed by ROI name, each
    on the grid of ``reference``; ROI numbers follow the mapping order from 1. Save it with
    ``ds.save_as(path, enforce_file_format=True)``."""
    ds = Dataset()
    sop_uid = UID(options.sop_instance_uid) if options.sop_instance_uid else generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RTStructureSetStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = sop_uid
    copy_patient_study(reference.patient_study, ds)
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = options.series_instance_uid or generate_uid()
    ds.SeriesNumber = options.series_number
    ds.SeriesDescription = options.series_description
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = reference.frame_of_reference_uid  # Frame of Reference module (PS3.3 A.19.3)
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = options.manufacturer
    ds.InstanceNumber = options.instance_number
    ds.StructureSetLabel = options.label
    if options.name:
        ds.StructureSetName = options.name
    if options.description:
        ds.StructureSetDescription = options.description
    ds.StructureSetDate = options.date
    ds.StructureSetTime = options.time
    ds.ReferencedFrameOfReferenceSequence = _referenced_series(reference)
    rois, contours, observations = Sequence(), Sequence(), Sequence()
    for number, (name, value) in enumerate(masks.items(), start=1):
        spec = value if isinstance(value, RoiSpec) else RoiSpec(mask=value)
        if spec.interpreted_type not in INTERPRETED_TYPES:
            raise ValueError(f"unknown RT ROI Interpreted Type {spec.interpreted_type!r} for ROI {name!r}")
        if np.shape(spec.mask) != reference.shape:
            raise ValueError(f"mask {name!r} has shape {np.shape(spec.mask)}, the images {reference.shape}")
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = reference.frame_of_reference_uid
        roi.ROIName = name
        if spec.description:
            roi.ROIDescription = spec.description
        roi.ROIGenerationAlgorithm = spec.generation_algorithm
        rois.append(roi)
        item = Dataset()
        item.ROIDisplayColor = list(spec.color or _PALETTE[(number - 1) % len(_PALETTE)])
        item.ContourSequence = _roi_contours(spec, reference, options.simplify_tolerance_px)
        item.ReferencedROINumber = number
        contours.append(item)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = spec.interpreted_type
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = rois
    ds.ROIContourSequence = contours
    ds.RTROIObservationsSequence = observations
    return ds


def _crossings(
    rows: NDArray[np.float64], cols: NDArray[np.float64], shape: tuple[int, int]
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Where a closed polygon toggles the even-odd fill of a (rows x cols) grid, pixel centres at integer
    coordinates: (row, first column whose centre lies right of the crossing) for every edge crossing of a row
    centre line, edges taken half-open in y so a vertex on a centre line counts once."""
    r0, c0 = rows, cols
    r1, c1 = np.roll(rows, -1), np.roll(cols, -1)
    lo, hi = np.minimum(r0, r1), np.maximum(r0, r1)
    first = np.maximum(np.ceil(lo), 0).astype(np.intp)  # first row centre y >= lo
    last = np.minimum(np.ceil(hi) - 1, shape[0] - 1).astype(np.intp)  # last row centre y < hi
    count = np.maximum(last - first + 1, 0)
    if not count.any():
        return np.empty(0, np.intp), np.empty(0, np.intp)
    edge = np.repeat(np.arange(rows.size), count)
    y = (np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count) + first[edge]).astype(np.float64)
    t = (y - r0[edge]) / (r1[edge] - r0[edge])
    x = c0[edge] + t * (c1[edge] - c0[edge])
    col = np.clip(np.floor(x).astype(np.intp) + 1, 0, shape[1])
    return y.astype(np.intp), col


def rtstruct_to_masks(ds: Dataset, reference: ImageSeriesReference) -> dict[str, NDArray[np.bool_]]:
    """Rasterise every ROI of an RT Structure Set on the grid of ``reference`` (a voxel is inside when its centre
    is inside an odd number of the contours on its slice). Contours are matched to slices by position.

    Scanline even-odd fill: each contour edge marks, per row it crosses, the first pixel right of the crossing;
    an XOR running along each row turns the marks into the fill. Cost grows with edges x rows plus the filled
    rows, not with bounding box x vertices (skimage ``draw.polygon``, used before: 3 rasterisations of the AI
    structure set took 40 % of a full-size plan)."""
    normal = np.cross(reference.orientation[:3], reference.orientation[3:])
    heights = np.array([np.dot(normal, s.position_mm) for s in reference.slices])
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    depth, height, width = reference.shape
    out: dict[str, NDArray[np.bool_]] = {}
    for roi in ds.ROIContourSequence:
        toggles = np.zeros((depth, height, width + 1), dtype=bool)
        touched = np.zeros((depth, height), dtype=bool)
        for contour in roi.get("ContourSequence", []):
            points = np.asarray(contour.ContourData, dtype=np.float64).reshape(-1, 3)
            k = int(np.argmin(np.abs(heights - float(np.dot(normal, points[0])))))
            rows, cols = reference.to_pixel(k, points)
            rr, cc = _crossings(np.asarray(rows), np.asarray(cols), (height, width))
            np.logical_xor.at(toggles[k], (rr, cc), True)
            touched[k, rr] = True
        mask = np.zeros(reference.shape, dtype=bool)
        ks, rs = np.nonzero(touched)
        if ks.size:
            mask[ks, rs] = np.logical_xor.accumulate(toggles[ks, rs, :width], axis=1)
        out[names[int(roi.ReferencedROINumber)]] = mask
    return out

"""DICOM Segmentation (binary, highdicom) from a label map on a CT/MR series, and reading one back.

The label map is (slices, rows, columns) on the source series, slice k being the k-th source image sorted along
the slice normal (the order of core.dicom.volumes.Volume.sop_uids); label value n belongs to the n-th segment.
Each frame references its source image (Derivation Image / Source Image sequences), so the SEG lands on the same
Frame of Reference and patient/study as the images. The output is decision support material: segment labels say
what the algorithm produced, not a diagnosis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

__all__ = [
    "KNOWN_STRUCTURES", "SegOptions", "SegmentSpec", "prepare_reader", "read_seg", "sort_along_normal", "write_seg",
]  # fmt: skip

_ANATOMY = Code("91723000", "SCT", "Anatomical Structure")
_ABNORMAL = Code("49755003", "SCT", "Morphologically Abnormal Structure")
#: Coded meaning of the structure names RadPlan uses (demo truth and the segmentation models).
KNOWN_STRUCTURES: dict[str, tuple[Code, Code]] = {
    "Body": (_ANATOMY, Code("38266002", "SCT", "Entire body")),
    "Lung_L": (_ANATOMY, Code("44029006", "SCT", "Left lung")),
    "Lung_R": (_ANATOMY, Code("3341006", "SCT", "Right lung")),
    "Heart": (_ANATOMY, Code("80891009", "SCT", "Heart")),
    "SpinalCord": (_ANATOMY, Code("2748008", "SCT", "Spinal cord")),
    "Esophagus": (_ANATOMY, Code("32849002", "SCT", "Esophagus")),
    "GTV": (_ABNORMAL, Code("108369006", "SCT", "Neoplasm")),
}


@dataclass(frozen=True)
class SegmentSpec:
    """One segment: its label (as in the label map and KNOWN_STRUCTURES) and optional explicit codes."""

    label: str
    category: Code | None = None
    property_type: Code | None = None

    def codes(self) -> tuple[Code, Code]:
        if self.category is not None and self.property_type is not None:
            return self.category, self.property_type
        if self.label not in KNOWN_STRUCTURES:
            raise ValueError(f"segment {self.label!r} has no codes: give category and property_type")
        return KNOWN_STRUCTURES[self.label]


@dataclass(frozen=True)
class SegOptions:
    algorithm_name: str = "RadPlan segmentation"
    algorithm_version: str = "0.1.0"
    series_number: int = 900
    series_description: str = "RadPlan segmentation (decision support)"
    manufacturer: str = "RadPlan"
    model_name: str = "RadPlan Workstation"
    software_version: str = "0.1.0"
    device_serial_number: str = "0"
    manual: bool = False


def sort_along_normal(images: Sequence[Dataset]) -> list[Dataset]:
    """The source images in the order the label map uses: by position along the slice normal."""
    orientation = np.asarray([float(v) for v in images[0].ImageOrientationPatient])
    normal = np.cross(orientation[:3], orientation[3:])
    return sorted(images, key=lambda d: float(np.dot(normal, [float(v) for v in d.ImagePositionPatient])))


def write_seg(
    images: Sequence[Dataset],
    label_map: NDArray[np.integer],
    segments: Sequence[SegmentSpec],
    options: SegOptions = SegOptions(),
) -> Dataset:
    """A binary DICOM SEG (Explicit VR Little Endian) of the label map on `images` (see the module docstring)."""
    ordered = sort_along_normal(images)
    # a 4-D label_map (slices, rows, columns, segments) holds one 0/1 mask per segment; such masks may overlap
    overlapping = label_map.ndim == 4
    extra = (len(segments),) if overlapping else ()
    if label_map.shape != (len(ordered), int(ordered[0].Rows), int(ordered[0].Columns), *extra):
        raise ValueError(
            f"label map shape {label_map.shape} does not match the series "
            f"({len(ordered)} slices of {ordered[0].Rows}x{ordered[0].Columns})"
            + (f" and {len(segments)} segments" if overlapping else "")
        )
    if not segments:
        raise ValueError("at least one segment is needed")
    top = int(label_map.max()) if label_map.size else 0
    if top > (1 if overlapping else len(segments)) or int(label_map.min()) < 0:
        raise ValueError(
            "a 4-D mask stack must hold 0/1 values"
            if overlapping
            else f"label values must be 0..{len(segments)} (one per segment), found {top}"
        )
    algorithm = hd.AlgorithmIdentificationSequence(
        name=options.algorithm_name, family=Code("123109", "DCM", "Manual Processing")
        if options.manual else Code("123110", "DCM", "Automatic Processing"), version=options.algorithm_version
    )  # fmt: skip
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=spec.label,
            segmented_property_category=spec.codes()[0],
            segmented_property_type=spec.codes()[1],
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL
            if options.manual
            else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=None if options.manual else algorithm,
        )
        for n, spec in enumerate(segments, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=ordered,
        pixel_array=np.ascontiguousarray(
            label_map.astype(np.uint8 if overlapping or len(segments) < 256 else np.uint16)
        ),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=options.series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=options.manufacturer,
        manufacturer_model_name=options.model_name,
        software_versions=options.software_version,
        device_serial_number=options.device_serial_number,
        content_label="RADPLAN",
        content_description=options.series_description[:64],
        omit_empty_frames=True,
    )
    seg.SeriesDescription = options.series_description
    return seg


def prepare_reader() -> None:
    """Load highdicom's table of the standard's modules (22 MB of JSON) now, incrementally, so the first SEG read
    or write does not hold the GIL for 0.2-0.7 s in one json.loads (a GUI calls this from a worker thread right
    after sign-in; see core.dicom.hd_tables)."""
    from core.dicom.hd_tables import prime_module_attribute_map

    prime_module_attribute_map()


def read_seg(seg_ds: Dataset, images: Sequence[Dataset]) -> dict[str, NDArray[np.bool_]]:
    """Segment label -> boolean mask (slices, rows, columns) on `images` sorted along the normal."""
    seg = hd.seg.Segmentation.from_dataset(seg_ds)
    ordered = sort_along_normal(images)
    uids = [str(d.SOPInstanceUID) for d in ordered]
    numbers = [int(item.SegmentNumber) for item in seg.SegmentSequence]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, segment_numbers=numbers, assert_missing_frames_are_empty=True
    )
    return {str(item.SegmentLabel): pixels[..., i].astype(bool) for i, item in enumerate(seg.SegmentSequence)}

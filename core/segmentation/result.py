"""The outcome of one segmentation and how it is written: DIR/seg.dcm (DICOM SEG) and DIR/<structure>.nii.gz.

Masks are uint8 0/1 arrays on the source CT grid, indexed [z, y, x] like core.dicom.volumes.Volume, keyed by the
model's structure name (e.g. "lung_left"); the SEG names each segment by its DICOM ROI name (manifest roi_names,
e.g. "Lung_L"). Structures may overlap (the body holds the lungs): the SEG keeps one binary mask per segment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from core.dicom.volumes import Volume
from core.dicom.writers.seg import KNOWN_STRUCTURES, SegmentSpec, SegOptions, write_seg

__all__ = [
    "DEFAULT_ROI_NAMES",
    "SEG_SERIES_DESCRIPTION",
    "SegmentationResult",
    "mask_volumes_cc",
    "segment_specs",
    "write_masks_nifti",
    "write_result",
    "write_seg_dataset",
]

SEG_SERIES_DESCRIPTION = "RadPlan AI segmentation"
#: ROI names of RadPlan's thorax structures (as the demo truth and core.dicom.writers.seg.KNOWN_STRUCTURES).
DEFAULT_ROI_NAMES = {
    "body": "Body",
    "lung_left": "Lung_L",
    "lung_right": "Lung_R",
    "heart": "Heart",
    "spinal_cord": "SpinalCord",
    "esophagus": "Esophagus",
    "gtv": "GTV",
}
_OTHER = (Code("91723000", "SCT", "Anatomical Structure"), Code("85756007", "SCT", "Tissue"))


@dataclass(frozen=True)
class SegmentationResult:
    labels: dict[str, NDArray[np.uint8]]
    model_name: str
    model_version: str
    backend: str
    timings_s: dict[str, float]
    volumes_cc: dict[str, float]
    #: structure -> DICOM ROI name (SEG segment label); a structure without one keeps its own name
    roi_names: Mapping[str, str] = field(default_factory=dict)
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    source_series_uid: str = ""
    #: what the engine had to do differently (OOM fallback, backend choice), for the job message and the report
    notes: tuple[str, ...] = ()

    def roi_name(self, structure: str) -> str:
        return self.roi_names.get(structure, structure)

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts (no pixel data)."""
        return {
            "model": f"{self.model_name} {self.model_version}",
            "backend": self.backend,
            "structures": {s: self.roi_name(s) for s in self.labels},
            "volumes_cc": {k: round(v, 2) for k, v in self.volumes_cc.items()},
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
            "notes": list(self.notes),
        }


def mask_volumes_cc(labels: Mapping[str, NDArray[Any]], spacing_mm: Sequence[float]) -> dict[str, float]:
    voxel_cc = float(np.prod([float(s) for s in spacing_mm])) / 1000.0
    return {name: float(np.count_nonzero(mask)) * voxel_cc for name, mask in labels.items()}


def segment_specs(result: SegmentationResult) -> list[SegmentSpec]:
    specs = []
    for structure in result.labels:
        roi = result.roi_name(structure)
        if roi in KNOWN_STRUCTURES:
            specs.append(SegmentSpec(roi))
        else:
            specs.append(SegmentSpec(roi, category=_OTHER[0], property_type=_OTHER[1]))
    return specs


def write_seg_dataset(result: SegmentationResult, images: Sequence[Dataset], *, manual: bool = False) -> Dataset:
    """The DICOM SEG of every structure (one binary segment each, overlaps kept) on the source images."""
    if not result.labels:
        raise ValueError("the segmentation holds no structure")
    stack = np.stack([np.asarray(m, dtype=np.uint8) for m in result.labels.values()], axis=-1)
    options = SegOptions(
        algorithm_name=result.model_name[:64],
        algorithm_version=result.model_version[:64] or "0",
        series_description=SEG_SERIES_DESCRIPTION,
        manual=manual,
    )
    return write_seg(images, stack, segment_specs(result), options)


def write_masks_nifti(result: SegmentationResult, volume: Volume, out_dir: Path) -> list[Path]:
    """DIR/<structure>.nii.gz with the CT volume's geometry (compressed, uint8)."""
    import SimpleITK as sitk  # noqa: N813

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, mask in result.labels.items():
        image: Any = sitk.GetImageFromArray(np.asarray(mask, dtype=np.uint8))  # SimpleITK is not annotated
        image.SetSpacing(volume.spacing_mm)
        image.SetOrigin(volume.origin_mm)
        image.SetDirection(volume.direction)
        path = out_dir / f"{name}.nii.gz"
        sitk.WriteImage(image, str(path), True)
        written.append(path)
    return written


def write_result(
    result: SegmentationResult, volume: Volume, images: Sequence[Dataset], out_dir: Path, *, manual: bool = False
) -> tuple[Dataset, list[Path]]:
    """DIR/seg.dcm and DIR/<structure>.nii.gz; returns the SEG dataset and the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seg = write_seg_dataset(result, images, manual=manual)
    seg_path = out_dir / "seg.dcm"
    seg.save_as(seg_path, enforce_file_format=True)
    return seg, [seg_path, *write_masks_nifti(result, volume, out_dir)]

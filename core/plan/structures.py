"""Structures as planar contours (RTSTRUCT CLOSED_PLANAR polygons) and how they fill space.

Geometry (the convention of the major planning systems, documented in docs/plan.md):

* Contours are axial polygons in patient coordinates (mm). Polygons on the same plane combine with the even-odd
  (XOR) rule, so a contour inside another is a hole.
* Each contour plane z_k stands for a slab ``[z_k - t/2, z_k + t/2)`` where ``t`` is the structure set's slice
  thickness (the median spacing of the contour planes of all its ROIs, i.e. the CT slice spacing).
* **End caps**: with ``end_caps="half_slice"`` (default) the first and last contour planes also extend half a slice
  beyond themselves, exactly like every other plane, so a structure drawn on N slices of thickness t has a height
  of N*t. With ``end_caps="none"`` the structure stops at the first and last contour planes (height (N-1)*t).
  A gap of missing contour planes inside a structure is a gap in the structure (no interpolation across it).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from matplotlib.path import Path as MplPath
from numpy.typing import NDArray
from pydicom import Dataset

__all__ = ["EndCaps", "PlanarStructure", "StructureSet", "read_rtstruct_structures"]

EndCaps = Literal["half_slice", "none"]
_PLANE_TOLERANCE_MM = 0.01


@dataclass(frozen=True)
class PlanarStructure:
    """One ROI: ``planes_z`` (sorted contour plane positions, mm), for each plane its polygons (each (n, 2) of
    x, y in mm), the slice thickness ``slice_thickness_mm`` each plane stands for, and the end-cap rule."""

    name: str
    planes_z: tuple[float, ...]
    polygons: tuple[tuple[NDArray[np.float64], ...], ...]
    slice_thickness_mm: float
    interpreted_type: str = ""
    end_caps: EndCaps = "half_slice"
    color: tuple[int, int, int] = (255, 0, 0)

    def __post_init__(self) -> None:
        if len(self.planes_z) != len(self.polygons):
            raise ValueError("one polygon list per contour plane is needed")
        if not self.planes_z:
            raise ValueError(f"structure {self.name!r} has no contours")
        if any(b <= a for a, b in zip(self.planes_z, self.planes_z[1:], strict=False)):
            raise ValueError("contour planes must be sorted and distinct")
        if not np.isfinite(self.slice_thickness_mm) or self.slice_thickness_mm <= 0.0:
            raise ValueError(f"structure {self.name!r}: the slice thickness must be positive (mm)")
        if self.end_caps not in ("half_slice", "none"):
            raise ValueError(f"unknown end-cap rule {self.end_caps!r}")

    def slabs(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(lower, upper) z bounds in mm of the slab each contour plane stands for (see the module docstring)."""
        z = np.asarray(self.planes_z)
        half = self.slice_thickness_mm / 2.0
        lo, hi = z - half, z + half
        if self.end_caps == "none":
            lo[0], hi[-1] = z[0], z[-1]
        return lo, hi

    def z_extent(self) -> tuple[float, float]:
        lo, hi = self.slabs()
        return float(lo.min()), float(hi.max())

    def xy_bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) over all contours, mm."""
        points = np.concatenate([p for plane in self.polygons for p in plane])
        return (
            float(points[:, 0].min()),
            float(points[:, 1].min()),
            float(points[:, 0].max()),
            float(points[:, 1].max()),
        )

    def plane_at(self, z: float) -> int | None:
        """Index of the contour plane whose slab holds z (mm), or None."""
        lo, hi = self.slabs()
        hits = np.flatnonzero((lo <= z) & (z < hi))
        if hits.size == 0:
            return None
        return int(hits[np.argmin(np.abs(np.asarray(self.planes_z)[hits] - z))])

    def contains_xy(self, plane: int, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Even-odd inside test of points (x, y in mm) against the polygons of contour plane ``plane``."""
        points = np.column_stack([x, y])
        inside = np.zeros(len(points), dtype=bool)
        for poly in self.polygons[plane]:
            inside ^= MplPath(poly, closed=False).contains_points(points)
        return inside

    def contains(self, x: NDArray[np.float64], y: NDArray[np.float64], z: float) -> NDArray[np.bool_]:
        """Inside test of points (x, y) on the axial plane at z (mm)."""
        plane = self.plane_at(z)
        if plane is None:
            return np.zeros(np.shape(x), dtype=bool)
        return self.contains_xy(plane, np.ravel(x), np.ravel(y)).reshape(np.shape(x))

    def polygon_volume_cc(self) -> float:
        """Volume (cc) by the shoelace area of each plane (even-odd, assuming nested holes) times its slab."""
        lo, hi = self.slabs()
        total = 0.0
        for k, plane in enumerate(self.polygons):
            area = 0.0
            for poly in plane:
                x, y = poly[:, 0], poly[:, 1]
                a = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
                depth = sum(_inside_polygon(other, poly[0]) for other in plane if other is not poly)
                area += -a if depth % 2 else a
            total += area * (hi[k] - lo[k])
        return total / 1000.0


def _inside_polygon(poly: NDArray[np.float64], point: NDArray[np.float64]) -> bool:
    return bool(MplPath(poly, closed=False).contains_point((float(point[0]), float(point[1]))))


@dataclass(frozen=True)
class StructureSet:
    """The ROIs of one RT Structure Set, by name, with the slice thickness they were read with (mm)."""

    structures: dict[str, PlanarStructure]
    slice_thickness_mm: float
    frame_of_reference_uid: str = ""

    def get(self, name: str) -> PlanarStructure:
        """The ROI called ``name`` (exact, else case-insensitive); KeyError naming the ROIs there are."""
        if name in self.structures:
            return self.structures[name]
        for key, value in self.structures.items():
            if key.lower() == name.lower():
                return value
        raise KeyError(f"no ROI {name!r} in the structure set (there are: {', '.join(self.structures)})")


def _infer_thickness(planes: Sequence[Sequence[float]]) -> float | None:
    gaps = [b - a for zs in planes for a, b in itertools.pairwise(zs) if b - a > _PLANE_TOLERANCE_MM]
    if not gaps:
        return None
    return round(float(np.median(gaps)), 4)


def read_rtstruct_structures(
    ds: Dataset, *, slice_thickness_mm: float | None = None, end_caps: EndCaps = "half_slice"
) -> StructureSet:
    """Read every ROI with CLOSED_PLANAR contours of an RT Structure Set. The slice thickness is
    ``slice_thickness_mm`` when given, else the median spacing of contour planes (mm); ROIs without contours are
    skipped. Non-axial contours are refused with ValueError."""
    if str(ds.get("Modality", "")) != "RTSTRUCT" or "ROIContourSequence" not in ds:
        raise ValueError("not an RT Structure Set (Modality RTSTRUCT with a ROI Contour Sequence)")
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.get("StructureSetROISequence", [])}
    types = {
        int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType", ""))
        for o in ds.get("RTROIObservationsSequence", [])
    }
    raw: dict[str, tuple[dict[float, list[NDArray[np.float64]]], str, tuple[int, int, int]]] = {}
    for roi in ds.ROIContourSequence:
        number = int(roi.ReferencedROINumber)
        name = names.get(number, f"ROI {number}")
        planes: dict[float, list[NDArray[np.float64]]] = {}
        for contour in roi.get("ContourSequence", []):
            if str(contour.get("ContourGeometricType", "")) != "CLOSED_PLANAR":
                continue
            points = np.asarray([float(v) for v in contour.ContourData], dtype=np.float64).reshape(-1, 3)
            if len(points) < 3:
                continue
            if np.ptp(points[:, 2]) > _PLANE_TOLERANCE_MM:
                raise ValueError(f"ROI {name!r} has a non-axial contour: only axial contours are supported")
            z = round(float(points[:, 2].mean()), 3)
            key = next((k for k in planes if abs(k - z) <= _PLANE_TOLERANCE_MM), z)
            planes.setdefault(key, []).append(points[:, :2].copy())
        if planes:
            color = tuple(int(c) for c in roi.get("ROIDisplayColor", [255, 0, 0]))[:3]
            raw[name] = (planes, types.get(number, ""), color)  # type: ignore[assignment]
    if not raw:
        raise ValueError("the structure set has no closed planar contours")
    thickness = slice_thickness_mm or _infer_thickness([sorted(p) for p, _t, _c in raw.values()])
    if thickness is None:
        raise ValueError("every ROI is drawn on a single plane: give the slice thickness (mm) explicitly")
    structures = {
        name: PlanarStructure(
            name=name,
            planes_z=tuple(sorted(planes)),
            polygons=tuple(tuple(planes[z]) for z in sorted(planes)),
            slice_thickness_mm=float(thickness),
            interpreted_type=kind,
            end_caps=end_caps,
            color=color,
        )
        for name, (planes, kind, color) in raw.items()
    }
    return StructureSet(structures, float(thickness), str(ds.get("FrameOfReferenceUID", "")))

"""Index <-> patient geometry of a volume, as the viewer needs it (slice numbers per view, voxel snapping).

Conventions are those of :class:`core.dicom.volumes.Volume`: the array is [k, r, c] (slice, row, column); voxel
(c, r, k) sits at ``origin + D @ (c*sx, r*sy, k*sz)`` in patient millimetres, where the columns of the 3x3 ``D``
are the row direction, the column direction and the slice normal. The viewer draws in *display* coordinates,
``origin + (c*sx, r*sy, k*sz)`` (the volume's own axes, unrotated); for the usual head-first supine axial CT
(D = identity) display and patient coordinates coincide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = ["VIEWS", "VIEW_AXIS", "ImageGeometry", "Point", "ViewName"]

ViewName = Literal["axial", "coronal", "sagittal"]
VIEWS: tuple[ViewName, ...] = ("axial", "coronal", "sagittal")
#: The index axis (0 = column/x, 1 = row/y, 2 = slice/z) a view scrolls along.
VIEW_AXIS: dict[ViewName, int] = {"axial": 2, "coronal": 1, "sagittal": 0}

Point = tuple[float, float, float]
IDENTITY: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class ImageGeometry:
    """``shape`` as the array ([z, y, x]); ``spacing_mm`` and ``origin_mm`` as (x, y, z); ``direction`` row-major
    3x3 (SimpleITK order)."""

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: tuple[float, ...] = IDENTITY

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError("the volume shape must be three positive sizes [z, y, x]")
        if min(self.spacing_mm) <= 0.0:
            raise ValueError("voxel spacing must be positive (mm)")
        if len(self.direction) != 9:
            raise ValueError("direction must hold 9 values (row-major 3x3)")

    @classmethod
    def of(cls, array_shape: Sequence[int], spacing_mm: Sequence[float], origin_mm: Sequence[float],
           direction: Sequence[float] | None = None) -> ImageGeometry:  # fmt: skip
        z, y, x = (int(v) for v in array_shape)
        sx, sy, sz = (float(v) for v in spacing_mm)
        ox, oy, oz = (float(v) for v in origin_mm)
        d = tuple(float(v) for v in direction) if direction is not None else IDENTITY
        return cls((z, y, x), (sx, sy, sz), (ox, oy, oz), d)

    @property
    def size_xyz(self) -> tuple[int, int, int]:
        """Number of voxels along (x, y, z): columns, rows, slices."""
        return self.shape[2], self.shape[1], self.shape[0]

    @property
    def _matrix(self) -> NDArray[np.float64]:
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def is_axis_aligned(self) -> bool:
        """True when the volume axes are the patient axes (display and patient coordinates coincide)."""
        return bool(np.allclose(self._matrix, np.eye(3), atol=1e-6))

    def index_of(self, point_mm: Sequence[float]) -> NDArray[np.float64]:
        """Continuous voxel index (x=column, y=row, z=slice) of a patient point (mm)."""
        offset = np.asarray(point_mm, dtype=np.float64) - np.asarray(self.origin_mm)
        return np.asarray(np.linalg.solve(self._matrix, offset) / np.asarray(self.spacing_mm))

    def point_of(self, index_xyz: Sequence[float]) -> Point:
        """Patient point (mm) of a (continuous) voxel index (x, y, z)."""
        scaled = np.asarray(index_xyz, dtype=np.float64) * np.asarray(self.spacing_mm)
        p = np.asarray(self.origin_mm) + self._matrix @ scaled
        return float(p[0]), float(p[1]), float(p[2])

    def display_of(self, point_mm: Sequence[float]) -> Point:
        """Display coordinates (the volume's own unrotated axes, mm) of a patient point."""
        d = np.asarray(self.origin_mm) + self.index_of(point_mm) * np.asarray(self.spacing_mm)
        return float(d[0]), float(d[1]), float(d[2])

    def patient_of_display(self, display_mm: Sequence[float]) -> Point:
        """Patient point of display coordinates (the inverse of :meth:`display_of`)."""
        index = (np.asarray(display_mm, dtype=np.float64) - np.asarray(self.origin_mm)) / np.asarray(self.spacing_mm)
        return self.point_of(index)

    def display_to_patient_matrix(self) -> NDArray[np.float64]:
        """4x4 affine taking display coordinates to patient coordinates."""
        m = np.eye(4)
        d = self._matrix
        o = np.asarray(self.origin_mm)
        m[:3, :3] = d
        m[:3, 3] = o - d @ o
        return m

    def clamp_index(self, index_xyz: Sequence[float] | NDArray[np.float64]) -> tuple[int, int, int]:
        """The nearest voxel index inside the volume."""
        limits = self.size_xyz
        i, j, k = (int(np.clip(round(float(v)), 0, n - 1)) for v, n in zip(index_xyz, limits, strict=True))
        return i, j, k

    def snap(self, point_mm: Sequence[float]) -> Point:
        """The centre of the voxel nearest to a point, clamped into the volume (mm)."""
        return self.point_of(self.clamp_index(self.index_of(point_mm)))

    def centre(self) -> Point:
        """Centre voxel of the volume (mm)."""
        return self.point_of([(n - 1) // 2 for n in self.size_xyz])

    def slice_count(self, view: ViewName) -> int:
        return self.size_xyz[VIEW_AXIS[view]]

    def voxel_volume_cc(self) -> float:
        sx, sy, sz = self.spacing_mm
        return sx * sy * sz / 1000.0

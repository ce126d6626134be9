"""CPU compositing of one slice: the windowed CT, the segmentation label layers and the dose colour wash blended
into one RGB image (numpy), which the slice view shows as a single opaque texture.

Why on the CPU: under Mesa llvmpipe every translucent image layer costs a full-window blend per frame (measured:
a CT + 1 label layer + dose stack renders 3-4x slower than the CT alone); blending the few hundred thousand pixels
of one slice in numpy costs a few milliseconds, is done only when that slice changes, and leaves the GPU (or
llvmpipe) one texture to draw. The colour tables are still lookup tables (256 entries), so changing a colour, an
opacity or a visibility re-blends one slice and re-uploads nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.plan.dvh import DoseVolume
from core.viewer.geometry import VIEW_AXIS, ImageGeometry, ViewName
from ui.viewer.overlays import LabelLayer

__all__ = ["DoseSampler", "SliceComposer", "slice_of"]


def slice_of(array: NDArray[np.generic], view: ViewName, index: int) -> NDArray[np.generic]:
    """The 2-D slice of a [z, y, x] array shown by ``view`` (axial [y, x], coronal [z, x], sagittal [z, y])."""
    if view == "axial":
        return array[index]
    if view == "coronal":
        return array[:, index, :]
    return array[:, :, index]


@dataclass(frozen=True)
class _Axis:
    i0: NDArray[np.intp]
    i1: NDArray[np.intp]
    w: NDArray[np.float32]
    valid: NDArray[np.bool_]


def _axis(n: int, origin: float, spacing: float, coords: NDArray[np.float64]) -> _Axis:
    """Linear-interpolation indices/weights of positions ``coords`` (mm) on a grid of n points; positions more
    than half a spacing outside the grid are invalid (no dose), like DoseVolume.interpolate."""
    f = (coords - origin) / spacing
    valid = (f >= -0.5) & (f <= n - 0.5)
    f = np.clip(f, 0.0, n - 1.0)
    i0 = np.floor(f).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    return _Axis(i0, i1, (f - i0).astype(np.float32), valid)


class DoseSampler:
    """The dose (Gy) on the CT slice grid of each view, by separable linear interpolation (axis-aligned volumes)
    or trilinear sampling of every pixel (others)."""

    def __init__(self, dose: DoseVolume, geometry: ImageGeometry) -> None:
        self.dose = dose
        self.geometry = geometry
        self.grid = np.ascontiguousarray(np.nan_to_num(dose.dose_gy), dtype=np.float32)
        self.max_gy = float(self.grid.max()) if self.grid.size else 0.0
        nz, ny, nx = self.grid.shape
        n = (nx, ny, nz)
        self._axes = [
            _axis(n[q], dose.origin_mm[q], dose.spacing_mm[q], self._ct_coords(q)) for q in range(3)
        ]  # index q: x, y, z positions of the CT voxel centres on the dose grid

    def _ct_coords(self, q: int) -> NDArray[np.float64]:
        g = self.geometry
        return np.asarray(g.origin_mm[q] + g.spacing_mm[q] * np.arange(g.size_xyz[q]), dtype=np.float64)

    def sample(self, view: ViewName, index: int) -> NDArray[np.float32]:
        """Dose on slice ``index`` of ``view`` (same shape as the CT slice), 0 outside the dose grid."""
        if not self.geometry.is_axis_aligned:
            return self._sample_general(view, index)
        fixed = VIEW_AXIS[view]
        a = self._axes[fixed]
        # Interpolate along the fixed axis first (numpy axis 2 - q), leaving a 2-D plane of the dose grid.
        np_axis = 2 - fixed
        i0, i1, w = int(a.i0[index]), int(a.i1[index]), float(a.w[index])
        if not a.valid[index]:
            return np.zeros(slice_of(np.empty(self.geometry.shape, dtype=np.uint8), view, 0).shape, np.float32)
        plane = np.take(self.grid, i0, axis=np_axis) * (1.0 - w) + np.take(self.grid, i1, axis=np_axis) * w
        rows_q, cols_q = {"axial": (1, 0), "coronal": (2, 0), "sagittal": (2, 1)}[view]
        r, c = self._axes[rows_q], self._axes[cols_q]
        plane = plane[r.i0] * (1.0 - r.w)[:, None] + plane[r.i1] * r.w[:, None]
        plane = plane[:, c.i0] * (1.0 - c.w)[None, :] + plane[:, c.i1] * c.w[None, :]
        plane *= (r.valid[:, None] & c.valid[None, :]).astype(np.float32)
        return np.asarray(plane, dtype=np.float32)

    def coarse(self, view: ViewName, index: int) -> tuple[NDArray[np.float32], list[float], list[float]] | None:
        """The dose plane through slice ``index`` of ``view`` at the dose grid's own in-plane resolution, as a
        one-thick [z, y, x] array with its origin and spacing (display mm) — for isodose lines, which are as
        smooth on the dose grid and far cheaper to trace there. None for volumes that are not axis-aligned."""
        if not self.geometry.is_axis_aligned:
            return None
        fixed = VIEW_AXIS[view]
        a = self._axes[fixed]
        np_axis = 2 - fixed
        i0, i1, w = int(a.i0[index]), int(a.i1[index]), float(a.w[index])
        plane = np.take(self.grid, i0, axis=np_axis) * (1.0 - w) + np.take(self.grid, i1, axis=np_axis) * w
        if not a.valid[index]:
            plane[...] = 0.0
        origin = [float(v) for v in self.dose.origin_mm]
        spacing = [float(v) for v in self.dose.spacing_mm]
        g = self.geometry
        origin[fixed] = g.origin_mm[fixed] + index * g.spacing_mm[fixed]
        return np.ascontiguousarray(np.expand_dims(plane, np_axis), dtype=np.float32), origin, spacing

    def line_plane(self, view: ViewName, index: int) -> tuple[NDArray[np.float32], list[float], list[float]]:
        """The plane to trace isodose lines on: :meth:`coarse`, or the CT slice grid for rotated volumes."""
        coarse = self.coarse(view, index)
        if coarse is not None:
            return coarse
        g, axis = self.geometry, VIEW_AXIS[view]
        dims = list(g.size_xyz)
        dims[axis] = 1
        origin = list(g.origin_mm)
        origin[axis] += index * g.spacing_mm[axis]
        return self.sample(view, index).reshape(dims[2], dims[1], dims[0]), origin, list(g.spacing_mm)

    def _sample_general(self, view: ViewName, index: int) -> NDArray[np.float32]:
        g = self.geometry
        sx, sy, sz = g.size_xyz
        grids = {
            "axial": np.meshgrid([index], np.arange(sy), np.arange(sx), indexing="ij"),
            "coronal": np.meshgrid(np.arange(sz), [index], np.arange(sx), indexing="ij"),
            "sagittal": np.meshgrid(np.arange(sz), np.arange(sy), [index], indexing="ij"),
        }[view]
        k, j, i = (v.ravel().astype(np.float64) for v in grids)
        d = np.asarray(g.direction, dtype=np.float64).reshape(3, 3)
        idx = np.stack([i * g.spacing_mm[0], j * g.spacing_mm[1], k * g.spacing_mm[2]])
        p = np.asarray(g.origin_mm)[:, None] + d @ idx
        values = np.nan_to_num(self.dose.interpolate(p[0], p[1], p[2]))
        return values.reshape(grids[0].shape).squeeze(axis=2 - VIEW_AXIS[view]).astype(np.float32)


class SliceComposer:
    """Holds what a slice is made of and blends it: ``compose(view, index, out)`` writes RGB uint8.

    The first label layer (up to 8 structures) is blended through one (256 label bit masks x 256 grey levels) RGB
    table, so a slice with its segmentation is a single table lookup; further layers and the dose wash blend in
    floating point on the pixels they cover only."""

    def __init__(self, volume: NDArray[np.float32]) -> None:
        self.volume = volume
        self.window, self.level = 400.0, 40.0
        self.layers: list[LabelLayer] = []
        self._tables: list[NDArray[np.float32]] = []  # per layer (256, 4) RGBA 0-1
        self._grey_table: NDArray[np.uint8] | None = None  # (256 * 256, 3): [bits << 8 | grey] -> RGB
        self.dose: DoseSampler | None = None
        self.dose_table: NDArray[np.float32] = np.zeros((256, 4), np.float32)
        self.dose_range = (0.0, 1.0)
        self.dose_wash = False
        self._dose_cache: dict[ViewName, tuple[int, NDArray[np.float32]]] = {}

    @property
    def tables(self) -> list[NDArray[np.float32]]:
        return self._tables

    @tables.setter
    def tables(self, tables: list[NDArray[np.float32]]) -> None:
        """Per label layer (256, 4) RGBA in [0, 1] (see overlays.layer_table)."""
        self._tables = tables
        if not tables:
            self._grey_table = None
            return
        grey = np.arange(256, dtype=np.float32)
        rgb, alpha = tables[0][:, :3] * 255.0, tables[0][:, 3:4]
        big = grey[None, :, None] * (1.0 - alpha[:, None, :]) + (rgb * alpha)[:, None, :]
        self._grey_table = np.clip(np.round(big), 0, 255).astype(np.uint8).reshape(256 * 256, 3)

    def set_dose(self, dose: DoseSampler | None) -> None:
        self.dose = dose
        self._dose_cache = {}

    def dose_slice(self, view: ViewName, index: int) -> NDArray[np.float32] | None:
        if self.dose is None:
            return None
        cached = self._dose_cache.get(view)
        if cached is None or cached[0] != index:
            cached = (index, self.dose.sample(view, index))
            self._dose_cache[view] = cached
        return cached[1]

    def grey(self, view: ViewName, index: int) -> NDArray[np.uint8]:
        ct = slice_of(self.volume, view, index)
        lo = self.level - self.window / 2.0
        grey = np.subtract(ct, np.float32(lo), dtype=np.float32)
        grey *= np.float32(255.0 / self.window)
        np.clip(grey, 0.0, 255.0, out=grey)
        return grey.astype(np.uint8)

    def compose(self, view: ViewName, index: int, out: NDArray[np.uint8]) -> None:
        grey = self.grey(view, index)
        if self._grey_table is not None and self.layers:
            bits = slice_of(self.layers[0].bits, view, index)
            combined = (bits.astype(np.uint16) << 8) | grey
            np.take(self._grey_table, combined, axis=0, out=out)
        else:
            out[...] = grey[..., None]
        for layer, table in zip(self.layers[1:], self._tables[1:], strict=False):
            bits = slice_of(layer.bits, view, index)
            covered = bits != 0
            if covered.any():
                rgba = table[bits[covered]]
                under = out[covered].astype(np.float32)
                out[covered] = np.clip(under + (rgba[:, :3] * 255.0 - under) * rgba[:, 3:4], 0, 255).astype(np.uint8)
        dose = self.dose_slice(view, index) if self.dose_wash else None
        if dose is not None:
            low, high = self.dose_range
            inside = dose >= low
            if inside.any():
                values = dose[inside]
                t = np.clip((values - low) * np.float32(255.0 / max(high - low, 1e-6)), 0, 255).astype(np.uint8)
                rgba = self.dose_table[t]
                under = out[inside].astype(np.float32)
                out[inside] = np.clip(under + (rgba[:, :3] * 255.0 - under) * rgba[:, 3:4], 0, 255).astype(np.uint8)

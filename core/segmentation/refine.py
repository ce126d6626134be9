"""Lesion boundary refinement: the network finds the lesion, the CT's own contrast places its edge.

The shipped thorax U-Net runs at 2.4 x 2.4 x 2.5 mm and localises the tumour reliably, but its tumour class loses
the argmax to lung over a shell of a few millimetres, so small tumours come out far too small (issue 4 measured
it: the AI masks held 50-70 % of the true volume, the centres within one voxel). A solid lung lesion is bright
on dark lung, and its edge on the CT grid is where the intensity crosses halfway between the two, so the
boundary is re-drawn on the source grid with a threshold, starting from the network's mask:

1. Crop to the lesion's bounding box plus ``search_mm`` (the lesion may grow at most that far).
2. Candidates: voxels above ``threshold_hu`` inside the *envelope* (the organs that contain the lesion, e.g. the
   lungs, closed with a ball of the lesion's size plus ``search_mm``, so the lesion's own hole in the lung mask
   counts, and so does the notch a tumour abutting the pleura leaves) or in the AI mask itself. Everything
   outside the closed envelope (chest wall, mediastinum) can never join.
3. Keep the candidate components that touch the AI mask, within ``search_mm`` of it.
4. Vessels and bronchial walls touching the lesion are cut off with a morphological opening of ``open_mm``
   (a structure thinner than 2 x ``open_mm`` does not survive it); the lesion's own fine edge is restored by
   taking the candidates within ``open_mm`` (plus one voxel) of the opened core. Holes are filled.
5. When no candidate overlaps the AI mask (a lesion of lung-like density, or the threshold does not suit the
   image) the AI mask is returned unchanged and ``RefinedLesion.applied`` is False with the reason.

The function is headless (numpy/scipy) and works on any lesion mask, so the viewer can offer the same
"refine edge" tool on a drawn mask. Masks are [z, y, x]; spacing is (x, y, z) in mm like SimpleITK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from core.segmentation.edit import EditError, bounding_box, expand_margin_mm

__all__ = ["LesionRefinement", "RefinedLesion", "refine_lesion", "refine_structures"]

Spacing = tuple[float, float, float]
#: Upper bound of the envelope closing radius (mm), so a large lesion does not close the lung over the hilum.
MAX_CLOSING_MM = 40.0


def _equivalent_radius_mm(volume_mm3: float) -> float:
    return float((3.0 * max(volume_mm3, 0.0) / (4.0 * np.pi)) ** (1.0 / 3.0))


@dataclass(frozen=True)
class LesionRefinement:
    """Parameters of ``refine_lesion`` (see the module docstring); a model manifest carries them per structure."""

    threshold_hu: float = -400.0
    search_mm: float = 10.0
    open_mm: float = 2.0
    open_fraction: float = 0.0
    within: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.search_mm <= 0.0 or self.open_mm < 0.0 or not 0.0 <= self.open_fraction < 1.0:
            raise EditError(
                "refinement needs search_mm > 0, open_mm >= 0 and 0 <= open_fraction < 1, "
                f"not {self.search_mm}, {self.open_mm}, {self.open_fraction}"
            )

    def opening_mm(self, lesion_volume_mm3: float) -> float:
        """Opening radius for a lesion of this (AI) volume: open_mm, or open_fraction of its equivalent-sphere
        radius when that is larger (a large lesion has thicker vessels at its hilum side)."""
        return max(self.open_mm, self.open_fraction * _equivalent_radius_mm(lesion_volume_mm3))

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> LesionRefinement:
        return cls(
            threshold_hu=float(value.get("threshold_hu", cls.threshold_hu)),
            search_mm=float(value.get("search_mm", cls.search_mm)),
            open_mm=float(value.get("open_mm", cls.open_mm)),
            open_fraction=float(value.get("open_fraction", cls.open_fraction)),
            within=tuple(str(v) for v in value.get("within", ())),
        )


@dataclass(frozen=True)
class RefinedLesion:
    mask: NDArray[np.uint8]
    applied: bool
    reason: str
    voxels_before: int
    voxels_after: int


def _ball(radius_mm: float, spacing: Spacing) -> NDArray[np.bool_]:
    r = [max(0, int(np.floor(radius_mm / s + 1e-6))) for s in (spacing[2], spacing[1], spacing[0])]
    zz, yy, xx = np.ogrid[-r[0] : r[0] + 1, -r[1] : r[1] + 1, -r[2] : r[2] + 1]
    return np.asarray((zz * spacing[2]) ** 2 + (yy * spacing[1]) ** 2 + (xx * spacing[0]) ** 2 <= radius_mm**2)


def _touching(candidates: NDArray[np.bool_], seeds: NDArray[np.bool_]) -> NDArray[np.bool_]:
    labels, _ = ndimage.label(candidates, structure=np.ones((3, 3, 3), dtype=bool))
    keep = np.unique(labels[seeds & candidates])
    keep = keep[keep != 0]
    return np.isin(labels, keep) if keep.size else np.zeros_like(candidates)


def refine_lesion(
    hu: NDArray[Any],
    lesion: NDArray[Any],
    spacing_mm: Sequence[float],
    params: LesionRefinement | None = None,
    envelope: NDArray[Any] | None = None,
) -> RefinedLesion:
    """The lesion re-drawn at the CT's own edge (module docstring); ``envelope`` is the containing organ mask."""
    p = params or LesionRefinement()
    spacing: Spacing = (float(spacing_mm[0]), float(spacing_mm[1]), float(spacing_mm[2]))
    ai = np.asarray(lesion) != 0
    if ai.shape != np.shape(hu) or (envelope is not None and np.shape(envelope) != ai.shape):
        raise EditError(f"the CT {np.shape(hu)}, lesion {ai.shape} and envelope do not share one grid")
    before = int(ai.sum())
    if before == 0:
        return RefinedLesion(ai.astype(np.uint8), False, "no lesion to refine", 0, 0)
    # 1. crop, with room for the search distance and the envelope's hole filling
    voxel_mm3 = spacing[0] * spacing[1] * spacing[2]
    close_mm = min(_equivalent_radius_mm(before * voxel_mm3) + p.search_mm, MAX_CLOSING_MM)
    margin = [int(np.ceil((p.search_mm + close_mm) / s)) + 1 for s in (spacing[2], spacing[1], spacing[0])]
    tight = bounding_box(ai)
    assert tight is not None  # the lesion is not empty
    box = tuple(slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(tight, margin, ai.shape, strict=True))
    seeds = ai[box]
    # 2. candidates above the threshold, inside the envelope (holes filled) or the AI mask
    candidates = np.asarray(hu[box]) > p.threshold_hu
    if envelope is not None:
        # a closing: grow by close_mm, then shrink back (exact Euclidean margins)
        grown = expand_margin_mm((np.asarray(envelope[box]) != 0) | seeds, spacing, close_mm)
        inside = expand_margin_mm(grown, spacing, -close_mm) != 0
        candidates &= inside | seeds
    # 3. components touching the AI mask, no farther than search_mm from it
    candidates &= expand_margin_mm(seeds, spacing, p.search_mm) != 0
    region = _touching(candidates, seeds)
    if not (region & seeds).any():
        return RefinedLesion(ai.astype(np.uint8), False, f"no voxel of the lesion is above {p.threshold_hu:g} HU",
                             before, before)  # fmt: skip
    # 4. cut thin attachments (vessels) off, then give the lesion its fine edge back
    radius = p.opening_mm(before * voxel_mm3)
    if radius > 0.0:
        core = ndimage.binary_opening(region, structure=_ball(radius, spacing))
        core = _touching(core, seeds)
        if core.any():
            region &= expand_margin_mm(core, spacing, radius + min(spacing)) != 0
            region = _touching(region, seeds)
    region = ndimage.binary_fill_holes(region)
    out = ai.copy()
    out[box] = region
    after = int(out.sum())
    return RefinedLesion(out.astype(np.uint8), True, f"edge at {p.threshold_hu:g} HU", before, after)


def refine_structures(
    masks: Mapping[str, NDArray[np.uint8]],
    hu: NDArray[Any],
    spacing_mm: Sequence[float],
    rules: Mapping[str, LesionRefinement],
) -> tuple[dict[str, NDArray[np.uint8]], list[str]]:
    """Apply each structure's refinement; the refined lesion is taken out of its envelope organs (structures do
    not overlap). Returns the new masks and one note per refined structure."""
    out = {k: np.asarray(v, dtype=np.uint8) for k, v in masks.items()}
    notes: list[str] = []
    for name, rule in rules.items():
        if name not in out:
            continue
        organs = [out[o] for o in rule.within if o in out]
        envelope = np.logical_or.reduce(organs) if organs else None
        result = refine_lesion(hu, out[name], spacing_mm, rule, envelope)
        if result.applied:
            out[name] = result.mask
            lesion = result.mask != 0
            for organ in rule.within:
                if organ in out:
                    out[organ] = np.where(lesion, 0, out[organ]).astype(np.uint8)
        notes.append(
            f"{name}: edge refinement {'applied' if result.applied else 'skipped'} ({result.reason}); "
            f"{result.voxels_before} -> {result.voxels_after} voxels"
        )
    return out, notes

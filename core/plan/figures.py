"""Headless figures for the plan document (matplotlib, Agg backend): key images with contours and the DVH plot.

Key images are the axial, coronal and sagittal CT planes through the GTV centroid (else the PTV, else the volume
centre), lung window (W 1500 / L -600 HU), with every ROI's contour in its display colour; axes in mm.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from matplotlib.figure import Figure  # the object API renders with Agg; pyplot and GUI backends are never used
from numpy.typing import NDArray
from pydicom import Dataset

from core.dicom.writers.rtstruct import ImageSeriesReference, rtstruct_to_masks
from core.plan.builder import load_study_objects, plan_target_masks
from core.plan.repository import PlanRecord
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.store import Store
from core.store.users import record_access

__all__ = ["dvh_png", "key_images_png", "plan_key_images"]

_WINDOW = (-600.0 - 750.0, -600.0 + 750.0)


def _png(fig: Figure, dpi: int = 150) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def key_images_png(
    ct: Sequence[Dataset],
    rtstruct: Dataset | None,
    extra_masks: Mapping[str, tuple[NDArray[np.bool_], tuple[int, int, int]]] | None = None,
) -> bytes:
    """PNG of the three orthogonal planes with contours. ``ct`` are CT datasets with pixel data; ``extra_masks``
    (name -> (mask on the CT grid, RGB colour)) adds derived structures such as the PTV."""
    reference = ImageSeriesReference.from_datasets(ct)
    by_uid = {str(d.SOPInstanceUID): d for d in ct}
    hu = np.stack(
        [
            by_uid[s.sop_instance_uid].pixel_array * float(by_uid[s.sop_instance_uid].get("RescaleSlope", 1))
            + float(by_uid[s.sop_instance_uid].get("RescaleIntercept", 0))
            for s in reference.slices
        ]
    )
    masks: dict[str, tuple[NDArray[np.bool_], tuple[int, int, int]]] = {}
    if rtstruct is not None:
        colours = {
            int(r.ReferencedROINumber): tuple(int(c) for c in r.get("ROIDisplayColor", [255, 0, 0]))
            for r in rtstruct.ROIContourSequence
        }
        numbers = {str(r.ROIName): int(r.ROINumber) for r in rtstruct.StructureSetROISequence}
        for name, mask in rtstruct_to_masks(rtstruct, reference).items():
            masks[name] = (mask, colours.get(numbers.get(name, 0), (255, 0, 0)))  # type: ignore[assignment]
    masks.update(extra_masks or {})
    focus = next((masks[n][0] for n in ("GTV", "PTV") if n in masks and masks[n][0].any()), None)
    centre = [round(float(np.mean(a))) for a in np.nonzero(focus)] if focus is not None else [n // 2 for n in hu.shape]
    k, j, i = centre
    dr, dc = reference.pixel_spacing_mm
    zs = np.array([s.position_mm[2] for s in reference.slices])
    x0, y0 = reference.slices[0].position_mm[:2]
    xs, ys = x0 + np.arange(hu.shape[2]) * dc, y0 + np.arange(hu.shape[1]) * dr
    views = (
        ("Axial", hu[k], (xs[0], xs[-1], ys[-1], ys[0]), f"z = {zs[k]:.1f} mm", "x (mm)", "y (mm)"),
        ("Coronal", hu[:, j, :], (xs[0], xs[-1], zs[0], zs[-1]), f"y = {ys[j]:.1f} mm", "x (mm)", "z (mm)"),
        ("Sagittal", hu[:, :, i], (ys[0], ys[-1], zs[0], zs[-1]), f"x = {xs[i]:.1f} mm", "y (mm)", "z (mm)"),
    )
    fig = Figure(figsize=(10.5, 4.0))
    for n, (title, image, extent, where, xl, yl) in enumerate(views):
        ax = fig.add_subplot(1, 3, n + 1)
        origin: Literal["upper", "lower"] = "upper" if n == 0 else "lower"
        ax.imshow(image, cmap="gray", vmin=_WINDOW[0], vmax=_WINDOW[1], extent=extent, origin=origin,
                  aspect="equal", interpolation="bilinear")  # fmt: skip
        for name, (mask, colour) in masks.items():
            plane = mask[k] if n == 0 else (mask[:, j, :] if n == 1 else mask[:, :, i])
            if plane.any():
                h, w = plane.shape
                gx = np.linspace(extent[0], extent[1], w)
                gy = np.linspace(extent[2], extent[3], h) if n else np.linspace(extent[3], extent[2], h)
                ax.contour(gx, gy, plane.astype(float), levels=[0.5], colors=[np.array(colour) / 255.0],
                           linewidths=1.0)  # fmt: skip
                ax.plot([], [], color=np.array(colour) / 255.0, label=name)
        ax.set_title(f"{title} ({where})", fontsize=9)
        ax.set_xlabel(xl, fontsize=8)
        ax.set_ylabel(yl, fontsize=8)
        ax.tick_params(labelsize=7)
        if n == 2 and masks:
            ax.legend(fontsize=6, loc="upper right", framealpha=0.6)
    return _png(fig)


def dvh_png(curves: Mapping[str, Sequence[Sequence[float]]], colours: Mapping[str, tuple[int, int, int]]) -> bytes:
    """Cumulative DVHs (dose Gy vs volume %) of every structure."""
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    for name, points in curves.items():
        data = np.asarray(points, dtype=float)
        if data.size:
            colour = np.array(colours.get(name, (80, 80, 80))) / 255.0
            ax.plot(data[:, 0], data[:, 1], label=name, color=colour, linewidth=1.4)
    ax.set_xlabel("Dose (Gy)")
    ax.set_ylabel("Volume (%)")
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("Cumulative dose-volume histograms", fontsize=10)
    return _png(fig)


def plan_key_images(store: Store, access: Access, record: PlanRecord) -> bytes | None:
    """Key images of the plan's study from the store (audited), with the PTV redrawn from its margins."""
    with store.transaction() as conn:
        objects = load_study_objects(conn, record.study_uid, ct_pixels=True)
        record_access(conn, access, "plan.key_images", objects=[AuditObject("study", record.study_uid)])
    if not objects.ct:
        return None
    targets = plan_target_masks(objects, record.content.structures)
    extra = {"PTV": (targets["PTV"], (200, 0, 255))} if "PTV" in targets else {}
    return key_images_png(objects.ct, objects.rtstruct, extra)

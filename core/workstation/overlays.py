"""What the viewer draws over the open study's images, read from the encrypted store: the newest clinical RT Structure
Set (contours), the newest RT Dose (colour wash, isodose lines) and, when the workstation has no saved mask version,
the newest segmentation the engine stored (a DICOM SEG).

Read in a worker thread after the CT is on screen (reading a full-size RT Structure Set takes seconds). A study
without these objects is normal (None); an object that cannot be read gives a plain sentence in ``notes`` and the
images are shown without it - never an exception for the window to catch.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pydicom
from numpy.typing import NDArray

from core.errors import PermissionDeniedError
from core.security.roles import Permission
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.blobs import stored_bytes
from core.store.store import Store
from core.store.users import record_access
from core.workstation.study import GUI_PRODUCER

if TYPE_CHECKING:
    from core.plan.dvh import DoseVolume
    from core.plan.structures import StructureSet

__all__ = ["StudyOverlays", "engine_segmentation", "load_study_overlays"]

log = logging.getLogger("radplan.workstation")


@dataclass(frozen=True)
class StudyOverlays:
    """The open study's RT objects (None where the study has none or it could not be read)."""

    structures: StructureSet | None = None
    dose: DoseVolume | None = None
    #: plain sentences: what could not be shown and why (empty when everything there was could be shown)
    notes: tuple[str, ...] = ()
    #: what was found, for the viewer's info line ("RT Structure Set (7 ROIs)", "RT Dose (max 62.1 Gy)")
    found: tuple[str, ...] = ()
    #: the engine's newest stored segmentation (name -> uint8 mask on the CT grid), when asked for and present
    seg_masks: dict[str, NDArray[np.uint8]] = field(default_factory=dict)
    seg_source: str = ""


def _newest(store: Store, access: Access, study_uid: str) -> dict[str, bytes | Exception]:
    """Bytes of the newest clinical RTSTRUCT (not a plan's exported targets, as core.plan.builder) and the newest
    RTDOSE of the study (audited read); an object whose stored bytes cannot be read gives the exception."""
    from core.plan.builder import PLAN_TARGETS_SERIES_DESCRIPTION

    with store.transaction() as conn:
        found: dict[str, bytes | Exception] = {}
        for modality in ("RTSTRUCT", "RTDOSE"):
            row = conn.execute(
                "SELECT i.blob, d.data FROM instances i "
                "JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk "
                "LEFT JOIN instance_data d ON d.instance_fk = i.id "
                "WHERE st.study_uid = ? AND se.modality = ? AND coalesce(se.description, '') != ? "
                "ORDER BY i.id DESC LIMIT 1",
                (study_uid, modality, PLAN_TARGETS_SERIES_DESCRIPTION),
            ).fetchone()
            if row is not None:
                try:
                    found[modality] = stored_bytes(conn, row[0], row[1])
                except Exception as exc:  # a missing or undecryptable file: said in a sentence, not raised
                    found[modality] = exc
        if found:
            record_access(conn, access, "study.read_rt_objects", objects=[AuditObject("study", study_uid)],
                          details={"objects": sorted(found)})  # fmt: skip
    return found


def _reason(exc: Exception) -> str:
    text = str(exc).strip().rstrip(".")
    return text[:1].lower() + text[1:] if text else type(exc).__name__


def _read_structures(data: bytes | Exception) -> StructureSet:
    from core.plan.structures import read_rtstruct_structures

    if isinstance(data, Exception):
        raise data
    ds = pydicom.dcmread(io.BytesIO(data))
    return read_rtstruct_structures(ds)


def _read_dose(data: bytes | Exception) -> DoseVolume:
    from core.plan.dose_io import dose_volume_from_rtdose

    if isinstance(data, Exception):
        raise data
    ds = pydicom.dcmread(io.BytesIO(data))
    if str(ds.get("Modality", "")) != "RTDOSE":
        raise ValueError(f"its Modality is {ds.get('Modality', 'missing')!r}, not RTDOSE")
    dose = dose_volume_from_rtdose(ds)
    if not np.isfinite(dose.dose_gy).all() or float(np.max(dose.dose_gy)) <= 0.0:
        raise ValueError("its dose grid is empty or not finite")
    return dose


def engine_segmentation(
    store: Store, access: Access, study_uid: str, shape: tuple[int, ...]
) -> tuple[dict[str, NDArray[np.uint8]], str]:
    """The newest segmentation the engine stored for the study (its DICOM SEG as masks on the CT grid) when that is
    the study's newest segmentation result; ({}, "") when there is none or a workstation-saved version is newer."""
    if access.permission is not Permission.READ_PATIENT_DATA:
        raise PermissionDeniedError("reading a segmentation needs the 'read_patient_data' permission")
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT r.version, r.producer, r.payload FROM results r JOIN studies st ON st.id = r.study_fk "
            "WHERE st.study_uid = ? AND r.kind = 'segmentation' ORDER BY r.id DESC LIMIT 1",
            (study_uid,),
        ).fetchone()
    if row is None or str(row[1]) == GUI_PRODUCER:
        return {}, ""
    from core.segmentation.service import load_segmentation

    meta = json.loads(bytes(row[2]))
    masks = load_segmentation(store, access, study_uid)
    if any(m.shape != tuple(shape) for m in masks.values()):
        return {}, ""
    model = str(meta.get("model") or meta.get("model_name") or row[1])
    return masks, f"stored segmentation version {int(row[0])} ({model})"


def load_study_overlays(
    store: Store, access: Access, study_uid: str, *, seg_shape: tuple[int, ...] | None = None
) -> StudyOverlays:
    """The study's newest clinical RT Structure Set and newest RT Dose; with ``seg_shape`` (the CT's [z, y, x]
    shape) also the engine's newest stored segmentation. Damaged objects give a sentence in ``notes``."""
    if access.permission is not Permission.READ_PATIENT_DATA:
        raise PermissionDeniedError("reading RT objects needs the 'read_patient_data' permission")
    stored = _newest(store, access, study_uid)
    notes: list[str] = []
    found: list[str] = []
    structures: StructureSet | None = None
    dose: DoseVolume | None = None
    if "RTSTRUCT" in stored:
        try:
            structures = _read_structures(stored["RTSTRUCT"])
            found.append(f"RT Structure Set ({len(structures.structures)} ROIs)")
        except Exception as exc:  # any damage: the images are still shown
            log.warning("RT Structure Set of %s not shown: %s", study_uid, exc)
            notes.append(f"The study's RT Structure Set could not be shown ({_reason(exc)}); the images are shown "
                         "without its contours. Re-import or re-send the structure set to fix it.")  # fmt: skip
    if "RTDOSE" in stored:
        try:
            dose = _read_dose(stored["RTDOSE"])
            found.append(f"RT Dose (max {float(np.max(dose.dose_gy)):.1f} Gy)")
        except Exception as exc:
            log.warning("RT Dose of %s not shown: %s", study_uid, exc)
            notes.append(f"The study's RT Dose could not be shown ({_reason(exc)}); the images are shown without "
                         "the dose. Re-import or re-send the dose to fix it.")  # fmt: skip
    seg_masks: dict[str, NDArray[np.uint8]] = {}
    seg_source = ""
    if seg_shape is not None:
        try:
            seg_masks, seg_source = engine_segmentation(store, access, study_uid, seg_shape)
        except Exception as exc:
            log.warning("stored segmentation of %s not shown: %s", study_uid, exc)
            notes.append(f"The stored segmentation could not be shown ({_reason(exc)}); run the segmentation "
                         "again to make a new one.")  # fmt: skip
    return StudyOverlays(structures, dose, tuple(notes), tuple(found), seg_masks, seg_source)

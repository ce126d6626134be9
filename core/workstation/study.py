"""The study open in the workstation: its CT volume, the masks being edited and the clinical note."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from core.dicom.volumes import Volume, VolumeError, study_volumes
from core.errors import PermissionDeniedError
from core.security.roles import Permission
from core.security.session import Access
from core.segmentation.producers import EDITED_PRODUCER
from core.store.audit import AuditObject
from core.store.store import Store, utc_now
from core.store.users import record_access
from core.workstation.undo import MaskUndoStack

if TYPE_CHECKING:  # the RT readers (matplotlib, scipy) load in the worker that reads the overlays
    from core.plan.dvh import DoseVolume
    from core.plan.structures import StructureSet
    from core.workstation.overlays import StudyOverlays

__all__ = ["GUI_PRODUCER", "OpenStudy", "latest_masks", "load_open_study", "save_mask_version"]

#: The producer of the mask versions saved from the workstation ('segmentation' results rows).
GUI_PRODUCER = EDITED_PRODUCER


@dataclass
class OpenStudy:
    study_uid: str
    volume: Volume
    masks: MaskUndoStack
    note: str = ""
    #: Where the masks came from ("none", "segmentation job 3", "saved version 2", ...).
    mask_source: str = "none"
    skipped: dict[str, str] = field(default_factory=dict)
    #: The newest clinical RT Structure Set and RT Dose (None when the study has none, or until they are read:
    #: core.workstation.overlays runs after the CT is on screen) and sentences on what could not be shown.
    structures: StructureSet | None = None
    dose: DoseVolume | None = None
    overlay_notes: tuple[str, ...] = ()
    overlays_loaded: bool = False

    def add_overlays(self, overlays: StudyOverlays) -> bool:
        """Take the RT objects read for this study; the engine's stored segmentation replaces the masks only when
        nothing was loaded or edited meanwhile. True when the masks were replaced."""
        self.structures, self.dose = overlays.structures, overlays.dose
        self.overlay_notes, self.overlays_loaded = overlays.notes, True
        untouched = not self.masks.masks and not self.masks.can_undo and not self.masks.dirty
        if overlays.seg_masks and untouched:
            self.masks = MaskUndoStack(dict(overlays.seg_masks))
            self.mask_source = overlays.seg_source
            return True
        return False


def _demo_note(demo_folder: Path | None, study_uid: str) -> str:
    if demo_folder is None:
        return ""
    try:
        manifest = json.loads((demo_folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("study_instance_uid") == study_uid:
            return (demo_folder / "note.txt").read_text(encoding="utf-8")
    except (OSError, ValueError):
        return ""
    return ""


def load_open_study(store: Store, access: Access, study_uid: str, *, demo_folder: Path | None = None) -> OpenStudy:
    """The study's largest CT (else largest image) volume, its latest saved masks, and the demo note if any."""
    found = study_volumes(store, access, study_uid)
    if not found.volumes:
        why = "; ".join(found.skipped.values()) or "no image series"
        raise VolumeError(f"the study has no image volume to show ({why})")
    volume = max(found.volumes, key=lambda v: (v.modality == "CT", v.array.size))
    masks, source = latest_masks(store, access, study_uid, volume.array.shape)
    return OpenStudy(study_uid, volume, MaskUndoStack(masks), _demo_note(demo_folder, study_uid), source, found.skipped)


def _study_fk(conn: Any, study_uid: str) -> int:
    row = conn.execute("SELECT id FROM studies WHERE study_uid = ?", (study_uid,)).fetchone()
    if row is None:
        raise VolumeError(f"study {study_uid} is not in the store")
    return int(row[0])


def latest_masks(
    store: Store, access: Access, study_uid: str, shape: tuple[int, ...]
) -> tuple[dict[str, NDArray[np.uint8]], str]:
    """The newest mask version saved from the workstation for this study (empty dict when none)."""
    if access.permission is not Permission.READ_PATIENT_DATA:
        raise PermissionDeniedError("reading masks needs the 'read_patient_data' permission")
    with store.transaction() as conn:
        fk = _study_fk(conn, study_uid)
        row = conn.execute(
            "SELECT version, payload FROM results WHERE kind = 'segmentation' AND study_fk = ? AND producer = ? "
            "ORDER BY version DESC LIMIT 1",
            (fk, GUI_PRODUCER),
        ).fetchone()
    if row is None:
        return {}, "none"
    with np.load(io.BytesIO(bytes(row[1]))) as data:
        masks = {name: np.asarray(data[name], np.uint8) for name in data.files}
    if any(m.shape != tuple(shape) for m in masks.values()):
        return {}, "none (the saved masks do not fit this volume)"
    return masks, f"saved version {int(row[0])}"


def save_mask_version(
    store: Store, access: Access, study_uid: str, masks: dict[str, NDArray[np.uint8]], *, series_uid: str = ""
) -> int:
    """Store the edited masks as a new 'segmentation' result version (earlier versions stay); audited."""
    if access.permission is not Permission.RUN_ANALYSIS:
        raise PermissionDeniedError("saving masks needs the 'run_analysis' permission")
    if not masks:
        raise ValueError("there are no masks to save")
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {k: np.asarray(v, np.uint8) for k, v in masks.items()}
    np.savez_compressed(buffer, **arrays)
    with store.transaction() as conn:
        fk = _study_fk(conn, study_uid)
        series = conn.execute("SELECT id FROM series WHERE series_uid = ?", (series_uid,)).fetchone()
        series_fk = int(series[0]) if series else None
        version = 1 + int(
            conn.execute(
                "SELECT coalesce(max(version), 0) FROM results WHERE kind = 'segmentation' AND study_fk = ?", (fk,)
            ).fetchone()[0]
        )
        conn.execute(
            "INSERT INTO results (kind, study_fk, series_fk, version, producer, payload, created_by, created) "
            "VALUES ('segmentation', ?, ?, ?, ?, ?, ?, ?)",
            (fk, series_fk, version, GUI_PRODUCER, buffer.getvalue(), access.user.name, utc_now()),
        )
        record_access(
            conn, access, "segmentation.save_version", objects=[AuditObject("study", study_uid)],
            details={"version": version, "labels": sorted(masks)},
        )  # fmt: skip
    return version

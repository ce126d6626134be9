"""Segmentation on stored studies, core side: job payloads, reading the CT series, storing the SEG into the study,
reading the stored segmentation back as masks (for the viewer, radiomics, the pipeline).

The inference itself runs in the worker process (engines/worker.py); this module never imports engines. Every read
of patient data is audited ('study.read_images', 'segmentation.read'); storing the SEG is audited as
'segmentation.store' by the importer's storage path, and the results row (kind 'segmentation', versioned per
study and source series) records model, backend, volumes and timings.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from core.dicom.importer import ImportReport, parse_instance, store_instances
from core.dicom.volumes import NON_VOLUME_MODALITIES, Volume, VolumeError, is_localizer, series_to_volume
from core.dicom.writers.seg import read_seg
from core.errors import PermissionDeniedError, RadPlanError
from core.jobs.queue import JobQueue
from core.security.roles import Permission, Role, role_allows
from core.security.session import Access, User
from core.segmentation.models import DEFAULT_MODEL
from core.segmentation.producers import EDITED_PRODUCER
from core.segmentation.result import SegmentationResult
from core.store.audit import AuditObject
from core.store.blobs import stored_bytes
from core.store.database import Connection
from core.store.store import Store, utc_now
from core.store.users import record_access

__all__ = [
    "BACKEND_CHOICES",
    "EDITED_PRODUCER",
    "SEGMENT_JOB",
    "CtSeries",
    "SegmentationNotFoundError",
    "access_for_user",
    "load_ct_series",
    "load_segmentation",
    "read_series_dir",
    "segment_job_payload",
    "store_segmentation",
    "submit_segmentation",
]

SEGMENT_JOB = "segment"
BACKEND_CHOICES = ("auto", "tensorrt", "onnxruntime", "torch")


class SegmentationNotFoundError(RadPlanError):
    """The study has no stored segmentation: run 'radplan segment --study UID' first."""


@dataclass(frozen=True)
class CtSeries:
    volume: Volume
    images: list[Dataset]  # the source images (pixel data included), for the SEG's references


def segment_job_payload(
    *,
    study_uid: str,
    series_uid: str | None = None,
    backend: str = "auto",
    model: str = DEFAULT_MODEL,
    out_dir: Path | str | None = None,
    method: str = "model",
    seed_xyz: Sequence[int] | None = None,
    label: str = "gtv",
) -> dict[str, Any]:
    """The payload of a 'segment' job (checked here so a bad request fails at submission, not in the worker)."""
    if backend not in BACKEND_CHOICES:
        raise RadPlanError(f"unknown backend {backend!r}: use one of {', '.join(BACKEND_CHOICES)}")
    if method not in ("model", "region-grow"):
        raise RadPlanError(f"unknown method {method!r}: use 'model' or 'region-grow'")
    if method == "region-grow" and (seed_xyz is None or len(seed_xyz) != 3):
        raise RadPlanError("region growing needs a seed: --seed X,Y,Z (column, row, slice of the CT)")
    return {
        "study_uid": study_uid,
        "series_uid": series_uid,
        "backend": backend,
        "model": model,
        "out_dir": None if out_dir is None else str(Path(out_dir).resolve()),
        "method": method,
        "seed_xyz": None if seed_xyz is None else [int(v) for v in seed_xyz],
        "label": label,
    }


def submit_segmentation(queue: JobQueue, access: Access, payload: dict[str, Any]) -> int:
    if access.permission is not Permission.RUN_ANALYSIS:
        raise PermissionDeniedError("running a segmentation needs the 'run_analysis' permission")
    job_id = queue.submit(SEGMENT_JOB, payload, study_uid=payload["study_uid"], created_by=access.user.name)
    with queue.store.transaction() as conn:
        record_access(
            conn,
            access,
            "segmentation.submit",
            objects=[AuditObject("study", payload["study_uid"])],
            details={"job": job_id, "backend": payload["backend"], "model": payload["model"]},
        )
    return job_id


def access_for_user(store: Store, user_name: str, permission: Permission) -> Access:
    """The worker acts for the user who submitted the job: still active, and the role still allows it."""
    rows = store.query("SELECT id, name, role, active FROM users WHERE name = ?", (user_name,))
    if not rows:
        raise PermissionDeniedError(f"the job's user {user_name!r} no longer exists")
    uid, name, role, active = rows[0]
    user = User(int(str(uid)), str(name), Role(str(role)), bool(active))
    if not user.active:
        raise PermissionDeniedError(f"the job's user {user_name!r} has been disabled")
    if not role_allows(user.role, permission):
        raise PermissionDeniedError(f"the {user.role.value} role may not {permission.value.replace('_', ' ')}")
    return Access(user, permission)


def _to_series(datasets: list[Dataset]) -> CtSeries:
    images = [d for d in datasets if not is_localizer(d)]
    return CtSeries(series_to_volume(images), images)


def _series_blobs(conn: Connection, series_uid: str) -> list[tuple[bytes]]:
    """The stored bytes of every instance of one series, in the order they were stored."""
    rows = conn.execute(
        "SELECT i.blob, d.data FROM instances i LEFT JOIN instance_data d ON d.instance_fk = i.id JOIN series se "
        "ON se.id = i.series_fk WHERE se.series_uid = ? ORDER BY i.id",
        (series_uid,),
    ).fetchall()
    return [(stored_bytes(conn, r[0], r[1]),) for r in rows]


def load_ct_series(
    store: Store, access: Access, study_uid: str, series_uid: str | None = None, *, purpose: str = "segmentation"
) -> CtSeries:
    """The study's CT series (the given one, else the CT series with most images) with its images (audited, with
    `purpose`: what the images are read for)."""
    if access.permission is not Permission.READ_PATIENT_DATA:
        raise PermissionDeniedError("reading images needs the 'read_patient_data' permission")
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT se.series_uid, se.modality, count(i.id) FROM series se JOIN studies st ON st.id = se.study_fk "
            "JOIN instances i ON i.series_fk = se.id WHERE st.study_uid = ? GROUP BY se.id ORDER BY count(i.id) DESC",
            (study_uid,),
        ).fetchall()
        candidates = [str(r[0]) for r in rows if str(r[1]) not in NON_VOLUME_MODALITIES]
        ct = [str(r[0]) for r in rows if str(r[1]) == "CT"]
        if series_uid is None:
            if not (ct or candidates):
                raise VolumeError(f"study {study_uid} has no CT image series in the store")
            series_uid = (ct or candidates)[0]
        elif series_uid not in candidates:
            raise VolumeError(f"series {series_uid} is not an image series of study {study_uid} in the store")
        blobs = _series_blobs(conn, series_uid)
        record_access(
            conn,
            access,
            "study.read_images",
            objects=[AuditObject("study", study_uid)],
            details={"instances": len(blobs), "purpose": purpose},
        )
    return _to_series([pydicom.dcmread(io.BytesIO(bytes(b[0]))) for b in blobs])


def read_series_dir(directory: Path, series_uid: str | None = None) -> CtSeries:
    """One image series from a folder of DICOM files (the series with most images unless one is named)."""
    by_series: dict[str, list[Dataset]] = {}
    for path in sorted(Path(directory).rglob("*")):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # noqa: S112 (non-DICOM files in the folder are skipped)
            continue
        if str(ds.get("Modality", "")) in NON_VOLUME_MODALITIES or "PixelData" not in ds:
            continue
        by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    if not by_series:
        raise VolumeError(f"no image series in {directory}")
    if series_uid is not None and series_uid not in by_series:
        raise VolumeError(f"series {series_uid} is not in {directory}")
    chosen = series_uid or max(by_series, key=lambda uid: len(by_series[uid]))
    return _to_series(by_series[chosen])


def store_segmentation(
    store: Store, access: Access, study_uid: str, seg: Dataset, result: SegmentationResult
) -> dict[str, Any]:
    """Store the SEG into its study (importer path, audited) and add a 'segmentation' results row."""
    buffer = io.BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    report = ImportReport()
    store_instances(store, access, [parse_instance("seg.dcm", buffer.getvalue())], report, action="segmentation.store")
    summary = result.summary()
    payload = {
        "seg_sop_instance_uid": str(seg.SOPInstanceUID),
        "seg_series_uid": str(seg.SeriesInstanceUID),
        "source_series_uid": result.source_series_uid,
        **summary,
    }
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT st.id, se.id FROM studies st LEFT JOIN series se ON se.study_fk = st.id AND se.series_uid = ? "
            "WHERE st.study_uid = ?",
            (result.source_series_uid, study_uid),
        ).fetchone()
        if row is None:
            raise SegmentationNotFoundError(f"study {study_uid} is not in the store")
        study_fk, series_fk = row
        version = conn.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM results WHERE kind = 'segmentation' AND study_fk = ? "
            "AND series_fk IS ?",
            (study_fk, series_fk),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO results (kind, study_fk, series_fk, version, producer, payload, created_by, created) "
            "VALUES ('segmentation', ?, ?, ?, ?, ?, ?, ?)",
            (
                study_fk,
                series_fk,
                int(version),
                f"{result.model_name} {result.model_version} ({result.backend})",
                json.dumps(payload, sort_keys=True).encode(),
                access.user.name,
                utc_now(),
            ),
        )
    return {**payload, "version": int(version)}


def load_segmentation(store: Store, access: Access, study_uid: str) -> dict[str, NDArray[np.uint8]]:
    """The latest segmentation of the study stored with its DICOM SEG (by the engine): structure name -> uint8 mask
    on the source CT grid [z, y, x]. Mask versions saved from the workstation (``EDITED_PRODUCER``, compressed
    arrays without a SEG) are not this function's: ``core.workstation.study.latest_masks`` reads those."""
    if access.permission is not Permission.READ_PATIENT_DATA:
        raise PermissionDeniedError("reading a segmentation needs the 'read_patient_data' permission")
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT r.payload FROM results r JOIN studies st ON st.id = r.study_fk WHERE st.study_uid = ? "
            "AND r.kind = 'segmentation' AND r.producer != ? ORDER BY r.id DESC LIMIT 1",
            (study_uid, EDITED_PRODUCER),
        ).fetchone()
        if row is None:
            raise SegmentationNotFoundError(
                f"study {study_uid} has no stored segmentation: run 'radplan segment --study {study_uid}' first"
            )
        meta = json.loads(bytes(row[0]))
        seg_blob = conn.execute(
            "SELECT i.blob, d.data FROM instances i "
            "LEFT JOIN instance_data d ON d.instance_fk = i.id WHERE i.sop_uid = ?",
            (meta["seg_sop_instance_uid"],),
        ).fetchone()
        seg_bytes = None if seg_blob is None else stored_bytes(conn, seg_blob[0], seg_blob[1])
        images = _series_blobs(conn, meta["source_series_uid"])
        record_access(
            conn,
            access,
            "segmentation.read",
            objects=[AuditObject("study", study_uid)],
            details={"images": len(images)},
        )
    if seg_bytes is None or not images:
        raise SegmentationNotFoundError(f"the stored segmentation of study {study_uid} lacks its SEG or its images")
    datasets = [d for d in (pydicom.dcmread(io.BytesIO(bytes(b[0]))) for b in images) if not is_localizer(d)]
    by_roi = read_seg(pydicom.dcmread(io.BytesIO(seg_bytes)), datasets)
    structure_of = {roi: structure for structure, roi in meta.get("structures", {}).items()}
    return {structure_of.get(roi, roi): mask.astype(np.uint8) for roi, mask in by_roi.items()}

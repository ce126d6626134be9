"""Radiomics on a stored study: the image series and a stored segmentation (DICOM SEG, else RT Structure Set) read
from the encrypted store, features written back to the store's ``results`` table (kind ``features``, versioned).

The pipeline and the GUI read them back with :func:`load_features`. Every read and write is audited: the image read
as ``study.read_images``, the extraction with its stored result as ``radiomics.extract`` (refused input as
``minor_failure``), reading results back as ``radiomics.read_features``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
import SimpleITK as _sitk_module  # noqa: N813
from pydicom.dataset import Dataset
from sqlcipher3 import Connection

from core.dicom.volumes import VolumeError, series_to_volume
from core.errors import PermissionDeniedError
from core.radiomics.configs import RadiomicsConfig, get_config
from core.radiomics.dicom_input import seg_segment
from core.radiomics.extract import Feature
from core.radiomics.preprocess import RadiomicsInputError
from core.security.roles import Permission
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.blobs import stored_bytes
from core.store.store import Store, utc_now
from core.store.users import record_access

sitk: Any = _sitk_module  # SimpleITK is not annotated

__all__ = ["StoredFeatures", "StoredInput", "extract_stored", "load_features", "producer", "read_stored_input"]


@dataclass(frozen=True)
class StoredInput:
    """A stored image series (SimpleITK image, pixel type as GDCM reads it) with the ROI mask (uint8, same grid)."""

    image: Any
    mask: Any
    series_uid: str
    source_modality: str  # SEG or RTSTRUCT
    source_sop_uid: str


@dataclass(frozen=True)
class StoredFeatures:
    """One stored feature set (a ``results`` row of kind ``features``)."""

    study_uid: str
    series_uid: str
    version: int
    roi: str
    config: str
    source_modality: str
    source_sop_uid: str
    producer: str
    created: str
    created_by: str
    features: tuple[Feature, ...]


def producer(config: RadiomicsConfig) -> str:
    """What computed the values: RadPlan's configuration (name and digest of every setting) and pyradiomics."""
    import radiomics

    digest = hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True, default=str).encode()).hexdigest()
    version = str(radiomics.__version__).lstrip("v")
    return f"radplan-radiomics config={config.name} sha256:{digest[:16]}; pyradiomics {version}"


def _study_fk(conn: Connection, study_uid: str) -> int:
    row = conn.execute("SELECT id FROM studies WHERE study_uid = ?", (study_uid,)).fetchone()
    if row is None:
        raise RadiomicsInputError(f"study {study_uid} is not in the store")
    return int(row[0])


def _rtstruct_series(ds: Dataset) -> str | None:
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                return str(series.SeriesInstanceUID)
    return None


def _find_source(conn: Connection, study_fk: int, roi: str) -> tuple[Dataset, str]:
    """The newest stored SEG with a segment ``roi``, else the newest RT Structure Set with that ROI."""
    seen: list[str] = []
    for modality in ("SEG", "RTSTRUCT"):
        rows = conn.execute(
            "SELECT i.blob, d.data FROM instances i JOIN series se ON se.id = i.series_fk "
            "LEFT JOIN instance_data d ON d.instance_fk = i.id "
            "WHERE se.study_fk = ? AND se.modality = ? ORDER BY i.id DESC",
            (study_fk, modality),
        ).fetchall()
        for blob, inline in rows:
            ds = pydicom.dcmread(io.BytesIO(stored_bytes(conn, blob, inline)))
            if modality == "SEG":
                names = [str(s.SegmentLabel) for s in ds.get("SegmentSequence", [])]
                series_uid = next((str(s.SeriesInstanceUID) for s in ds.get("ReferencedSeriesSequence", [])), None)
            else:
                names = [str(r.ROIName) for r in ds.get("StructureSetROISequence", [])]
                series_uid = _rtstruct_series(ds)
            seen += [n for n in names if n not in seen]
            if roi in names and series_uid:
                return ds, series_uid
    if not seen:
        raise RadiomicsInputError("the study has no stored segmentation (DICOM SEG or RT Structure Set)")
    raise RadiomicsInputError(f"no ROI named {roi!r} in the study's stored segmentations (ROIs: {', '.join(seen)})")


def read_stored_input(store: Store, access: Access, study_uid: str, roi: str) -> StoredInput:
    """Read the ROI ``roi`` of the study's newest stored segmentation that has it, and the series it was drawn on
    (audited as ``study.read_images``). RadiomicsInputError when the study, the ROI or its series is missing."""
    with store.transaction() as conn:
        study_fk = _study_fk(conn, study_uid)
        source, series_uid = _find_source(conn, study_fk, roi)
        blobs = [
            stored_bytes(conn, r[0], r[1])
            for r in conn.execute(
                "SELECT i.blob, d.data FROM instances i JOIN series se ON se.id = i.series_fk "
                "LEFT JOIN instance_data d ON d.instance_fk = i.id WHERE se.study_fk = ? AND se.series_uid = ? "
                "ORDER BY i.id",
                (study_fk, series_uid),
            ).fetchall()
        ]
        record_access(
            conn, access, "study.read_images", objects=[AuditObject("study", study_uid)],
            details={"instances": len(blobs) + 1, "purpose": "radiomics"},
        )  # fmt: skip
    if not blobs:
        raise RadiomicsInputError(f"the series {series_uid} the segmentation was drawn on is not in the store")
    datasets = [pydicom.dcmread(io.BytesIO(b)) for b in blobs]
    try:
        volume = series_to_volume(datasets)
    except VolumeError as exc:
        raise RadiomicsInputError(f"the image series cannot be used: {exc}") from exc
    images = [d for d in datasets if str(d.SOPInstanceUID) in set(volume.sop_uids)]
    modality = str(source.Modality)
    if modality == "SEG":
        mask = seg_segment(source, images, roi)
    else:
        from core.dicom.writers.rtstruct import ImageSeriesReference, rtstruct_to_masks

        mask = rtstruct_to_masks(source, ImageSeriesReference.from_datasets(images))[roi]
        if not mask.any():
            raise RadiomicsInputError(f"ROI {roi!r} has no contour inside the image")
    if mask.shape != volume.array.shape:
        raise RadiomicsInputError(f"the segmentation grid {mask.shape} differs from the series {volume.array.shape}")
    array = volume.array
    if np.array_equal(array, np.rint(array)) and abs(array).max() < 2**31:  # what GDCM gives for integer rescale
        array = array.astype(np.int32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(volume.spacing_mm)
    image.SetOrigin(volume.origin_mm)
    image.SetDirection(volume.direction)
    mask_image = sitk.GetImageFromArray(np.ascontiguousarray(mask, dtype=np.uint8))
    mask_image.CopyInformation(image)
    return StoredInput(image, mask_image, series_uid, modality, str(source.SOPInstanceUID))


def _extract(inp: StoredInput, cfg: RadiomicsConfig, workers: int | None) -> list[Feature]:
    if cfg.engine == "pyradiomics":
        from core.radiomics.clinical import clinical_raw, to_features, voxel_volume

        raw = clinical_raw(inp.image, inp.mask, cfg, label=1, workers=workers)
        return list(to_features(raw, voxel_volume(cfg, tuple(inp.image.GetSpacing()[::-1]))))
    from core.radiomics.extract import CROP_MARGIN_MM, compute_ibsi
    from core.radiomics.names import pyradiomics_name
    from core.radiomics.preprocess import Volume, crop_to_roi

    sx, sy, sz = inp.image.GetSpacing()
    ox, oy, oz = inp.image.GetOrigin()
    full = Volume(sitk.GetArrayViewFromImage(inp.image), sitk.GetArrayViewFromImage(inp.mask) != 0, (sz, sy, sx),
                  (oz, oy, ox))  # fmt: skip
    box = crop_to_roi(full, CROP_MARGIN_MM + 2 * max(full.spacing_mm))
    vol = Volume(np.asarray(box.image, np.float64), box.mask.copy(), box.spacing_mm, box.origin_mm)
    return [Feature(t, pyradiomics_name(t), v) for t, v in compute_ibsi(vol, cfg).items()]


def extract_stored(
    store: Store, access: Access, study_uid: str, roi: str, config: str = "clinical", *, workers: int | None = None
) -> StoredFeatures:
    """Extract the features of ROI ``roi`` of a stored study and store them as the next ``features`` version of the
    study's image series, in the transaction of its ``radiomics.extract`` audit entry. Needs ``run_analysis``."""
    if access.permission is not Permission.RUN_ANALYSIS:
        raise PermissionDeniedError("radiomics needs the 'run_analysis' permission")
    cfg = get_config(config)
    objects = [AuditObject("study", study_uid)]
    details: dict[str, object] = {"config": config, "roi": roi}
    start = time.perf_counter()
    try:
        inp = read_stored_input(store, access, study_uid, roi)
        features = _extract(inp, cfg, workers)
    except RadiomicsInputError as exc:
        with store.transaction() as conn:
            record_access(
                conn, access, "radiomics.extract", objects=objects, outcome="minor_failure",
                details=details | {"error": str(exc)},
            )  # fmt: skip
        raise
    made_by = producer(cfg)
    payload = {
        "study_uid": study_uid, "series_uid": inp.series_uid, "roi": roi, "config": config,
        "source": {"modality": inp.source_modality, "sop_instance_uid": inp.source_sop_uid},
        "features": [[f.ibsi_tag, f.pyradiomics, float(f.value)] for f in features],
    }  # fmt: skip
    now = utc_now()
    with store.transaction() as conn:
        study_fk = _study_fk(conn, study_uid)
        series_fk = int(
            conn.execute("SELECT id FROM series WHERE series_uid = ?", (inp.series_uid,)).fetchone()[0]
        )  # fmt: skip
        version = int(
            conn.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM results WHERE kind = 'features' AND study_fk = ? "
                "AND series_fk = ?",
                (study_fk, series_fk),
            ).fetchone()[0]
        )
        conn.execute(
            "INSERT INTO results (kind, study_fk, series_fk, version, producer, payload, created_by, created) "
            "VALUES ('features', ?, ?, ?, ?, ?, ?, ?)",
            (study_fk, series_fk, version, made_by, json.dumps(payload).encode(), access.user.name, now),
        )
        record_access(
            conn, access, "radiomics.extract",
            objects=[*objects, AuditObject("series", inp.series_uid), AuditObject("instance", inp.source_sop_uid)],
            details=details | {"features": len(features), "version": version, "producer": made_by,
                               "source": inp.source_modality, "seconds": round(time.perf_counter() - start, 3)},
        )  # fmt: skip
    return StoredFeatures(
        study_uid, inp.series_uid, version, roi, config, inp.source_modality, inp.source_sop_uid, made_by, now,
        access.user.name, tuple(features),
    )  # fmt: skip


def load_features(
    store: Store, access: Access, study_uid: str, *, roi: str | None = None, config: str | None = None
) -> list[StoredFeatures]:
    """The study's stored feature sets, newest first (optionally only one ROI and/or configuration); audited as
    ``radiomics.read_features``. Needs ``read_patient_data`` or ``run_analysis``."""
    if access.permission not in (Permission.READ_PATIENT_DATA, Permission.RUN_ANALYSIS):
        raise PermissionDeniedError("reading radiomics results needs the 'read_patient_data' permission")
    with store.transaction() as conn:
        study_fk = _study_fk(conn, study_uid)
        rows = conn.execute(
            "SELECT r.version, r.producer, r.payload, r.created_by, r.created FROM results r "
            "WHERE r.kind = 'features' AND r.study_fk = ? ORDER BY r.id DESC",
            (study_fk,),
        ).fetchall()
        out = []
        for version, made_by, blob, created_by, created in rows:
            p = json.loads(bytes(blob))
            if (roi is not None and p["roi"] != roi) or (config is not None and p["config"] != config):
                continue
            feats = tuple(Feature(t, n, float(v)) for t, n, v in p["features"])
            src = p["source"]
            item = StoredFeatures(
                study_uid, p["series_uid"], int(version), p["roi"], p["config"], src["modality"],
                src["sop_instance_uid"], str(made_by), str(created), str(created_by), feats,
            )  # fmt: skip
            out.append(item)
        record_access(
            conn, access, "radiomics.read_features", objects=[AuditObject("study", study_uid)],
            details={"roi": roi, "config": config, "results": len(out)},
        )  # fmt: skip
    return out

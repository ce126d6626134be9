"""What the worker does for each job kind: 'segment' (model or region growing on a stored study), 'analyse'
(radiomics, NLP and the recommendation: engines/analysis_job.py) and 'selftest' (a worker health check that only
sleeps, reports progress and honours cancellation)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.jobs import Job, JobCancelledError, JobQueue
from core.security.roles import Permission
from core.segmentation.edit import region_grow
from core.segmentation.models import DEFAULT_MODEL, get_model, site_models_dir
from core.segmentation.result import (
    DEFAULT_ROI_NAMES,
    SegmentationResult,
    mask_volumes_cc,
    write_masks_nifti,
    write_seg_dataset,
)
from core.segmentation.service import access_for_user, load_ct_series, store_segmentation
from core.store.store import Store
from engines.analysis_job import ANALYSE_JOB, run_analyse
from engines.backends.select import choose_backend, load_backend
from engines.segmentation.engine import segment_volume

__all__ = ["HANDLERS", "JobContext", "run_segment", "run_selftest", "segment_series"]


@dataclass
class JobContext:
    """Progress (throttled writes) and cancellation (polled) for the running job."""

    queue: JobQueue
    job: Job
    stopping: Callable[[], bool] = lambda: False
    min_interval_s: float = 0.3
    _last_write: float = field(default=0.0, init=False)
    _last_message: str = field(default="", init=False)
    _last_poll: float = field(default=0.0, init=False)
    _cancelled: bool = field(default=False, init=False)

    def progress(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if message != self._last_message or now - self._last_write >= self.min_interval_s or fraction >= 1.0:
            self.queue.progress(self.job.id, fraction, message)
            self._last_write, self._last_message = now, message

    def cancelled(self) -> bool:
        if self._cancelled or self.stopping():
            return True
        now = time.monotonic()
        if now - self._last_poll >= self.min_interval_s:
            self._last_poll = now
            self._cancelled = self.queue.cancel_requested(self.job.id)
        return self._cancelled


def segment_series(
    ct_volume: Any,
    payload: dict[str, Any],
    data_dir: Path,
    progress: Callable[[float, str], None],
    cancelled: Callable[[], bool],
) -> tuple[SegmentationResult, str]:
    """The segmentation of one volume as the payload asks (model + backend, or region growing); (result, reason)."""
    if payload.get("method") == "region-grow":
        x, y, z = payload["seed_xyz"]
        label = str(payload.get("label") or "gtv")
        t0 = time.perf_counter()
        progress(0.1, f"region growing from voxel ({x}, {y}, {z})")
        mask = region_grow(ct_volume.array, ct_volume.spacing_mm, (z, y, x))
        elapsed = time.perf_counter() - t0
        result = SegmentationResult(
            labels={label: mask},
            model_name="region-grow",
            model_version="1",
            backend="SimpleITK (cpu)",
            timings_s={"total": elapsed},
            volumes_cc=mask_volumes_cc({label: mask}, ct_volume.spacing_mm),
            roi_names={label: DEFAULT_ROI_NAMES.get(label, label)},
            spacing_mm=ct_volume.spacing_mm,
            source_series_uid=ct_volume.series_uid,
        )
        return result, "region growing (no model, no backend)"
    manifest = get_model(str(payload.get("model") or DEFAULT_MODEL), site_dir=site_models_dir(data_dir))
    choice = choose_backend(str(payload.get("backend") or "auto"), manifest, cache_dir=data_dir / "engines")
    progress(0.01, choice.reason)
    try:
        result = segment_volume(
            ct_volume,
            manifest,
            choice.backend,
            progress,
            cancelled,
            cpu_fallback=lambda: load_backend("onnxruntime", manifest, device="cpu"),
        )
    finally:
        choice.backend.close()
    return result, choice.reason


def run_segment(store: Store, ctx: JobContext, data_dir: Path) -> dict[str, Any]:
    job, payload = ctx.job, ctx.job.payload
    study_uid = str(payload["study_uid"])
    ct = load_ct_series(
        store,
        access_for_user(store, job.created_by, Permission.READ_PATIENT_DATA),
        study_uid,
        payload.get("series_uid"),
    )
    ctx.progress(0.01, f"CT series loaded ({ct.volume.array.shape[0]} slices)")
    result, reason = segment_series(ct.volume, payload, data_dir, ctx.progress, ctx.cancelled)
    if ctx.cancelled():
        raise JobCancelledError("the segmentation was cancelled")
    seg = write_seg_dataset(result, ct.images)
    out_dir = payload.get("out_dir")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        seg.save_as(Path(out_dir) / "seg.dcm", enforce_file_format=True)
        write_masks_nifti(result, ct.volume, Path(out_dir))
    stored = store_segmentation(
        store, access_for_user(store, job.created_by, Permission.IMPORT_STUDIES), study_uid, seg, result
    )
    return {
        "seg_sop_instance_uid": stored["seg_sop_instance_uid"],
        "seg_series_uid": stored["seg_series_uid"],
        "version": stored["version"],
        "out_dir": out_dir,
        "backend": result.backend,
        "backend_reason": reason,
        "model": f"{result.model_name} {result.model_version}",
        "volumes_cc": {k: round(v, 2) for k, v in result.volumes_cc.items()},
        "timings_s": {k: round(v, 3) for k, v in result.timings_s.items()},
        "notes": list(result.notes),
    }


def run_selftest(store: Store, ctx: JobContext, data_dir: Path) -> dict[str, Any]:
    """payload: seconds (default 1), steps (default 10), crash_at_step (the worker exits abruptly: tests and drills)."""
    del store, data_dir
    seconds = float(ctx.job.payload.get("seconds", 1.0))
    steps = max(1, int(ctx.job.payload.get("steps", 10)))
    crash_at = ctx.job.payload.get("crash_at_step")
    for step in range(steps):
        if ctx.cancelled():
            raise JobCancelledError("the self-test was cancelled")
        if crash_at is not None and step == int(crash_at):
            os._exit(70)  # a simulated crash: no clean-up, no job update
        time.sleep(seconds / steps)
        ctx.progress((step + 1) / steps, f"self-test step {step + 1} of {steps}")
    return {"steps": steps, "pid": os.getpid()}


HANDLERS: dict[str, Callable[[Store, JobContext, Path], dict[str, Any]]] = {
    "segment": run_segment,
    ANALYSE_JOB: run_analyse,
    "selftest": run_selftest,
}

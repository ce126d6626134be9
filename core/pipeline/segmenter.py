"""The segmentation step's provider in production: a "segment" job in the store's job queue (core/jobs), run by the
engine worker process; the pipeline only submits, waits and reads the result (no engine import)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.jobs import Job, JobQueue, JobTimeoutError
from core.pipeline.context import PipelineContext, StepError
from core.segmentation.models import DEFAULT_MODEL

__all__ = ["JobQueueSegmenter"]


@dataclass(frozen=True)
class JobQueueSegmenter:
    """Submits (or joins an active) "segment" job for the series and waits for it. ``ensure_worker`` starts the
    engine worker when none is alive (app.bootstrap.AppContext.ensure_worker); a worker that dies while the job
    runs fails the job ("worker died") and the step, and a re-run submits a new job."""

    ensure_worker: Callable[[], object] | None = None
    poll_s: float = 0.2
    orphan_check_s: float = 2.0
    #: A job still queued after this long means no worker is taking jobs.
    queued_timeout_s: float = 300.0

    def segment(self, ctx: PipelineContext, study_uid: str, series_uid: str) -> dict[str, Any]:
        queue = JobQueue(ctx.store)
        active = [
            j
            for j in queue.list(states=("queued", "running"), kind="segment")
            if j.study_uid == study_uid and j.payload.get("series_uid") == series_uid
        ]
        if self.ensure_worker is not None:
            self.ensure_worker()
        if active:
            job_id = active[-1].id
        else:
            payload = {
                "study_uid": study_uid,
                "series_uid": series_uid,
                "backend": ctx.options.backend,
                "model": ctx.options.model or DEFAULT_MODEL,
                "out_dir": str(ctx.out_dir / "segmentation"),
            }
            job_id = queue.submit("segment", payload, study_uid=study_uid, created_by=ctx.user_name)

        seen: list[tuple[float, str]] = []

        def progress(job: Job) -> None:
            if not seen or seen[-1] != (job.progress, job.message):  # wait() restarts every orphan_check_s
                seen.append((job.progress, job.message))
                ctx.progress("segment", min(job.progress, 0.99), f"job {job.id}: {job.message}")

        started = time.monotonic()
        deadline = started + ctx.options.segment_timeout_s
        while True:
            try:
                job = queue.wait(job_id, timeout_s=self.orphan_check_s, poll_s=self.poll_s, on_progress=progress)
                break
            except JobTimeoutError:
                queue.recover_orphans()  # a worker that died leaves its job 'running': fail it now
                if queue.get(job_id).status == "queued" and time.monotonic() - started > self.queued_timeout_s:
                    raise StepError(
                        "segment",
                        f"segmentation job {job_id} is still queued after {self.queued_timeout_s:.0f} s: no engine "
                        "worker is taking jobs (start one with 'radplan worker', or see its log under the data dir)",
                    ) from None
                if time.monotonic() > deadline:
                    raise StepError(
                        "segment",
                        f"segmentation job {job_id} did not finish within "
                        f"{ctx.options.segment_timeout_s:.0f} s; it goes on: run again later",
                    ) from None
        if job.status != "done":
            raise StepError("segment", f"segmentation job {job.id} {job.status}: {job.error or job.message}")
        result = dict(job.result)
        return {
            "seg_sop_instance_uid": result.get("seg_sop_instance_uid"),
            "job_id": job.id,
            **{k: result.get(k) for k in ("model", "backend", "volumes_cc", "timings_s")},
        }

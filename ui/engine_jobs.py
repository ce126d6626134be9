"""Engine jobs followed from the GUI: submit a job to the store's queue, make sure the engine worker runs, and follow
the job from a TaskRunner task (a worker thread, never the UI thread): its progress goes into the task (the jobs
panel shows it), cancelling the task cancels the job, and a failed job raises its error as a plain sentence."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from core.jobs import Job, JobError, JobQueue
from ui.workers import CancelledTask, CancelToken

__all__ = ["NoEngineWorkerError", "follow_engine_job"]

Report = Callable[[float, str], None]


class NoEngineWorkerError(JobError):
    """This installation has no engine worker to run the job."""


def _stop(queue: JobQueue, job_id: int, user: str, wait_s: float, poll_s: float) -> None:
    """Cancel the job (a queued one at once, a running one at the worker's next check) and wait up to wait_s for
    the worker to end it, so the next job of the panel does not queue behind it."""
    with contextlib.suppress(JobError):  # it ended meanwhile: nothing to cancel
        queue.cancel(job_id, user)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not queue.get(job_id).terminal:
        time.sleep(poll_s)


def follow_engine_job(
    queue: JobQueue,
    kind: str,
    payload: dict[str, Any],
    *,
    study_uid: str | None,
    user: str,
    ensure_worker: Callable[[], object] | None,
    token: CancelToken,
    report: Report,
    on_submitted: Callable[[int], None] | None = None,
    poll_s: float = 0.2,
    cancel_wait_s: float = 30.0,
) -> Job:
    """Run inside a task: submit the job as `user`, start the worker if needed, report the job's progress until it
    ends; the finished job. Raises CancelledTask when the task is cancelled (the job is cancelled too) or the job
    was cancelled elsewhere (jobs panel, `radplan jobs cancel`); JobError with the job's error when it failed."""
    if ensure_worker is None:
        raise NoEngineWorkerError("no engine worker is configured for this installation")
    token.check()
    job_id = queue.submit(kind, payload, study_uid=study_uid, created_by=user)
    if on_submitted is not None:
        on_submitted(job_id)
    try:
        report(0.0, f"job {job_id} queued; starting the engine")
        ensure_worker()
        while True:
            job = queue.get(job_id)
            if job.terminal:
                break
            report(job.progress, job.message or job.status)  # raises CancelledTask once the task is cancelled
            time.sleep(poll_s)
            token.check()
    except BaseException:  # cancelled, or the worker could not start: no job is left behind for nobody
        with contextlib.suppress(Exception):  # the original reason is what the person must see
            _stop(queue, job_id, user, cancel_wait_s if token.cancelled else 0.0, poll_s)
        raise
    if job.status == "cancelled":
        raise CancelledTask
    if job.status == "failed":
        raise JobError(job.error or f"the {kind} job failed without a reason")
    return job

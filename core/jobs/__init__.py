"""The background job queue, kept in the encrypted store (survives restarts); see core/jobs/queue.py."""

from __future__ import annotations

from core.jobs.model import (
    ACTIVE_STATES,
    JOB_STATES,
    TERMINAL_STATES,
    Job,
    JobCancelledError,
    JobError,
    JobNotFoundError,
    JobState,
    JobTimeoutError,
)
from core.jobs.queue import JobQueue, pid_alive

__all__ = [
    "ACTIVE_STATES",
    "JOB_STATES",
    "TERMINAL_STATES",
    "Job",
    "JobCancelledError",
    "JobError",
    "JobNotFoundError",
    "JobQueue",
    "JobState",
    "JobTimeoutError",
    "pid_alive",
]

"""Job records and job errors (no store access here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from core.errors import RadPlanError

__all__ = [
    "ACTIVE_STATES",
    "JOB_STATES",
    "TERMINAL_STATES",
    "Job",
    "JobCancelledError",
    "JobError",
    "JobNotFoundError",
    "JobState",
    "JobTimeoutError",
]

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
JOB_STATES: tuple[JobState, ...] = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES: frozenset[str] = frozenset({"queued", "running"})
TERMINAL_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})


class JobError(RadPlanError):
    """A job cannot be submitted, changed or waited for; the message says why."""


class JobNotFoundError(JobError):
    """No job with that number."""


class JobTimeoutError(JobError):
    """wait() ran out of time; the job goes on."""


class JobCancelledError(JobError):
    """Raised inside a worker when the job it runs was cancelled (the job ends as 'cancelled')."""


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    status: JobState
    payload: dict[str, Any]
    result: dict[str, Any]
    progress: float
    message: str
    error: str
    study_uid: str | None
    created_by: str
    created: str
    updated: str
    worker_pid: int | None = None
    cancel_requested: bool = False
    attempts: int = 0
    started: str | None = None
    finished: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    def summary(self) -> str:
        """One line for lists and logs (no patient data: the payload is not shown)."""
        text = f"job {self.id} {self.kind} {self.status} {self.progress * 100:.0f}%"
        if self.message:
            text += f" {self.message}"
        if self.error:
            text += f" error: {self.error}"
        return text

"""The persistent job queue in the encrypted store.

Producers (CLI, GUI) submit jobs and wait for them; one worker process (engines/worker.py) claims them one at a
time. Every state change is one short `BEGIN IMMEDIATE` transaction, so the app and the worker (two processes, two
connections to the same SQLCipher file in WAL mode) never see a half-made change. A worker that dies leaves its job
'running' with its pid: `recover_orphans()` marks such jobs failed with the reason, and the next queued job runs.
"""

from __future__ import annotations

import builtins
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

from core.jobs.model import (
    JOB_STATES,
    TERMINAL_STATES,
    Job,
    JobError,
    JobNotFoundError,
    JobState,
    JobTimeoutError,
)
from core.store.store import Store, utc_now

__all__ = ["JobQueue", "pid_alive"]

_COLUMNS = (
    "j.id, j.kind, j.status, j.payload, j.result, j.progress, j.message, j.error, j.study_uid, j.created_by, "
    "j.created, j.updated, j.worker_pid, j.cancel_requested, j.attempts, j.started, j.finished"
)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie (Linux: /proc; elsewhere: signal 0)."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            text = stat.read_text()
        except OSError:
            return False
        return text.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _row(r: Sequence[Any]) -> Job:
    return Job(
        id=int(r[0]),
        kind=str(r[1]),
        status=cast(JobState, r[2]),
        payload=json.loads(r[3] or "{}"),
        result=json.loads(r[4] or "{}"),
        progress=float(r[5]),
        message=str(r[6]),
        error=str(r[7]),
        study_uid=None if r[8] is None else str(r[8]),
        created_by=str(r[9]),
        created=str(r[10]),
        updated=str(r[11]),
        worker_pid=None if r[12] is None else int(r[12]),
        cancel_requested=bool(r[13]),
        attempts=int(r[14]),
        started=None if r[15] is None else str(r[15]),
        finished=None if r[16] is None else str(r[16]),
    )


class JobQueue:
    """Jobs in the store. Thread-safe through the Store's lock; process-safe through SQLite transactions."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ----------------------------------------------------------------- producer side
    def submit(self, kind: str, payload: dict[str, Any], *, study_uid: str | None, created_by: str) -> int:
        if not kind or not kind.replace("_", "").isalnum():
            raise JobError(f"job kind {kind!r} is not valid: use letters, digits and '_'")
        try:
            text = json.dumps(payload, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise JobError(f"the job payload cannot be stored ({exc}): use plain JSON values") from exc
        now = utc_now()
        with self.store.transaction() as conn:
            study_fk = None
            if study_uid is not None:
                row = conn.execute("SELECT id FROM studies WHERE study_uid = ?", (study_uid,)).fetchone()
                if row is None:
                    raise JobError(f"study {study_uid} is not in the store: import or retrieve it first")
                study_fk = int(row[0])
            cur = conn.execute(
                "INSERT INTO jobs (kind, status, study_fk, study_uid, payload, created_by, created, updated, message) "
                "VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, 'queued')",
                (kind, study_fk, study_uid, text, created_by, now, now),
            )
            return int(cast(int, cur.lastrowid))

    def get(self, job_id: int) -> Job:
        rows = self.store.query(f"SELECT {_COLUMNS} FROM jobs j WHERE j.id = ?", (job_id,))
        if not rows:
            raise JobNotFoundError(f"there is no job {job_id}: 'radplan jobs list' shows the jobs")
        return _row(rows[0])

    def list(self, states: Iterable[str] | None = None, limit: int = 100, *, kind: str | None = None) -> list[Job]:
        sql, params = f"SELECT {_COLUMNS} FROM jobs j WHERE 1 = 1", builtins.list[object]()
        if states is not None:
            wanted = sorted(set(states))
            bad = [s for s in wanted if s not in JOB_STATES]
            if bad:
                raise JobError(f"unknown job state(s) {', '.join(bad)}: use {', '.join(JOB_STATES)}")
            sql += f" AND j.status IN ({', '.join('?' * len(wanted))})"
            params.extend(wanted)
        if kind is not None:
            sql += " AND j.kind = ?"
            params.append(kind)
        sql += " ORDER BY j.id DESC LIMIT ?"
        params.append(int(limit))
        return [_row(r) for r in self.store.query(sql, tuple(params))]

    def cancel(self, job_id: int, by: str) -> None:
        """A queued job is cancelled at once; a running one is asked to stop (its worker ends it as cancelled)."""
        now = utc_now()
        with self.store.transaction() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFoundError(f"there is no job {job_id}: 'radplan jobs list' shows the jobs")
            status = str(row[0])
            if status in TERMINAL_STATES:
                raise JobError(f"job {job_id} is already {status}; there is nothing to cancel")
            if status == "queued":
                conn.execute(
                    "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, cancel_requested_by = ?, "
                    "message = ?, updated = ?, finished = ? WHERE id = ?",
                    (by, f"cancelled by {by} before it started", now, now, job_id),
                )
            else:
                conn.execute(
                    "UPDATE jobs SET cancel_requested = 1, cancel_requested_by = ?, message = ?, updated = ? "
                    "WHERE id = ?",
                    (by, f"cancel requested by {by}", now, job_id),
                )

    def wait(
        self,
        job_id: int,
        timeout_s: float,
        poll_s: float = 0.2,
        on_progress: Callable[[Job], None] | None = None,
    ) -> Job:
        """Poll until the job is done, failed or cancelled; on_progress sees every change of progress/message."""
        deadline = time.monotonic() + timeout_s
        last: tuple[str, float, str] | None = None
        while True:
            job = self.get(job_id)
            state = (job.status, job.progress, job.message)
            if on_progress is not None and state != last:
                on_progress(job)
            last = state
            if job.terminal:
                return job
            if time.monotonic() >= deadline:
                raise JobTimeoutError(
                    f"job {job_id} is still {job.status} after {timeout_s:.0f} s; it goes on in the background "
                    f"('radplan jobs show {job_id}')"
                )
            time.sleep(poll_s)

    # ----------------------------------------------------------------- worker side
    def claim_next(self, worker_pid: int, kinds: Iterable[str]) -> Job | None:
        """The oldest queued job of these kinds, now 'running' under worker_pid (None when there is none).

        Only one job runs at a time: nothing is claimed while another job runs under a live worker.
        """
        wanted = sorted(set(kinds))
        if not wanted:
            return None
        now = utc_now()
        with self.store.transaction() as conn:
            for (pid,) in conn.execute("SELECT worker_pid FROM jobs WHERE status = 'running'").fetchall():
                if pid is not None and int(pid) != worker_pid and pid_alive(int(pid)):
                    return None
            row = conn.execute(
                f"SELECT id FROM jobs WHERE status = 'queued' AND kind IN ({', '.join('?' * len(wanted))}) "
                "ORDER BY id LIMIT 1",
                tuple(wanted),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET status = 'running', worker_pid = ?, attempts = attempts + 1, started = ?, "
                "updated = ?, progress = 0, message = 'started' WHERE id = ?",
                (worker_pid, now, now, int(row[0])),
            )
        return self.get(int(row[0]))

    def progress(self, job_id: int, fraction: float, message: str) -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET progress = ?, message = ?, updated = ? WHERE id = ? AND status = 'running'",
                (fraction, message[:500], utc_now(), job_id),
            )

    def cancel_requested(self, job_id: int) -> bool:
        rows = self.store.query("SELECT cancel_requested, status FROM jobs WHERE id = ?", (job_id,))
        return bool(rows) and (bool(rows[0][0]) or str(rows[0][1]) == "cancelled")

    def succeed(self, job_id: int, result: dict[str, Any]) -> None:
        self._finish(job_id, "done", result=result, message="done", progress=1.0)

    def fail(self, job_id: int, reason: str) -> None:
        self._finish(job_id, "failed", error=reason[:2000], message="failed")

    def mark_cancelled(self, job_id: int) -> None:
        """The worker stopped a running job on request."""
        rows = self.store.query("SELECT cancel_requested_by FROM jobs WHERE id = ?", (job_id,))
        by = str(rows[0][0]) if rows and rows[0][0] else "request"
        self._finish(job_id, "cancelled", message=f"cancelled by {by}")

    def requeue(self, job_id: int, reason: str) -> None:
        """A running job goes back to the queue (its worker was stopped on purpose, not crashed)."""
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'queued', worker_pid = NULL, progress = 0, message = ?, updated = ? "
                "WHERE id = ? AND status = 'running'",
                (f"queued again: {reason}"[:500], utc_now(), job_id),
            )

    def _finish(
        self,
        job_id: int,
        status: JobState,
        *,
        result: dict[str, Any] | None = None,
        error: str = "",
        message: str = "",
        progress: float | None = None,
    ) -> None:
        now = utc_now()
        with self.store.transaction() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFoundError(f"there is no job {job_id}")
            if str(row[0]) in TERMINAL_STATES:
                return  # already ended (e.g. recovered as failed while this worker was presumed dead)
            conn.execute(
                "UPDATE jobs SET status = ?, result = ?, error = ?, message = ?, progress = coalesce(?, progress), "
                "updated = ?, finished = ? WHERE id = ?",
                (status, json.dumps(result or {}, sort_keys=True), error, message, progress, now, now, job_id),
            )

    def recover_orphans(
        self, *, reasons: dict[int, str] | None = None, all_running: bool = False
    ) -> builtins.list[int]:
        """Running jobs whose worker is gone become failed with the reason; returns their ids.

        reasons: worker pid -> what happened to it (the host knows the exit code or signal). all_running: every
        running job is an orphan (used by a worker that has just taken the single-worker lock).
        """
        reasons = reasons or {}
        recovered = []
        now = utc_now()
        with self.store.transaction() as conn:
            rows = conn.execute("SELECT id, worker_pid FROM jobs WHERE status = 'running' ORDER BY id").fetchall()
            for job_id, pid in rows:
                pid = None if pid is None else int(pid)
                if pid in reasons:
                    why = reasons[pid]
                elif pid is None or all_running or not pid_alive(pid):
                    why = f"worker died (pid {pid} is no longer running)"
                else:
                    continue
                conn.execute(
                    "UPDATE jobs SET status = 'failed', error = ?, message = 'failed', updated = ?, finished = ? "
                    "WHERE id = ?",
                    (why, now, now, int(job_id)),
                )
                recovered.append(int(job_id))
        return recovered

"""Pipeline runs in the store (tables of migration 0006): one run per study attempt series, one row per completed
step with its outputs, so a re-run after a failure resumes after the last completed step. Every change is audited
in its own transaction ('pipeline.run.start', 'pipeline.step', 'pipeline.run.failed', 'pipeline.run.done')."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from core.security.session import Access
from core.store.audit import AuditObject
from core.store.store import Store, utc_now
from core.store.users import record_access

__all__ = [
    "RunRecord",
    "RunStatus",
    "StepRecord",
    "complete_step",
    "fail_run",
    "finish_run",
    "get_run",
    "latest_run",
    "list_runs",
    "start_run",
]

RunStatus = Literal["running", "failed", "done"]


@dataclass(frozen=True)
class StepRecord:
    step: str
    position: int
    outputs: dict[str, Any]
    seconds: float
    finished: str


@dataclass(frozen=True)
class RunRecord:
    run_id: int
    study_uid: str
    source: str
    status: RunStatus
    options: dict[str, Any]
    failed_step: str
    error: str
    attempts: int
    created_by: str
    created: str
    updated: str
    steps: dict[str, StepRecord] = field(default_factory=dict)


def _load(store: Store, run_id: int) -> RunRecord | None:
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT id, study_uid, source, status, options, failed_step, error, attempts, created_by, created, "
            "updated FROM pipeline_runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            return None
        steps = conn.execute(
            "SELECT step, position, outputs, seconds, finished FROM pipeline_steps WHERE run_fk = ? ORDER BY position",
            (run_id,),
        ).fetchall()
    return RunRecord(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        row[3],
        json.loads(row[4]),
        str(row[5]),
        str(row[6]),
        int(row[7]),
        str(row[8]),
        str(row[9]),
        str(row[10]),
        {str(s[0]): StepRecord(str(s[0]), int(s[1]), json.loads(s[2]), float(s[3]), str(s[4])) for s in steps},
    )


def get_run(store: Store, run_id: int) -> RunRecord:
    record = _load(store, run_id)
    if record is None:
        raise KeyError(f"no pipeline run {run_id}")
    return record


def latest_run(store: Store, study_uid: str) -> RunRecord | None:
    rows = store.query("SELECT max(id) FROM pipeline_runs WHERE study_uid = ?", (study_uid,))
    return _load(store, int(str(rows[0][0]))) if rows and rows[0][0] is not None else None


def list_runs(store: Store, limit: int = 100) -> list[RunRecord]:
    rows = store.query("SELECT id FROM pipeline_runs ORDER BY id DESC LIMIT ?", (limit,))
    return [r for r in (_load(store, int(str(row[0]))) for row in rows) if r is not None]


def start_run(
    store: Store, access: Access, study_uid: str, source: str, options: dict[str, Any], *, fresh: bool = False
) -> RunRecord:
    """Resume the study's latest unfinished run (status back to running, attempts + 1), or start a new one when
    there is none, the latest is done, or ``fresh``."""
    latest = latest_run(store, study_uid)
    now = utc_now()
    with store.transaction() as conn:
        if latest is not None and latest.status != "done" and not fresh:
            run_id = latest.run_id
            conn.execute(
                "UPDATE pipeline_runs SET status = 'running', attempts = attempts + 1, updated = ? WHERE id = ?",
                (now, run_id),
            )
            action = "pipeline.run.resume"
            details: dict[str, Any] = {"completed_steps": sorted(latest.steps), "source": source}
        else:
            cur = conn.execute(
                "INSERT INTO pipeline_runs (study_uid, source, status, options, created_by, created, updated) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?)",
                (study_uid, source, json.dumps(options, sort_keys=True), access.user.name, now, now),
            )
            run_id = int(cur.lastrowid or 0)
            action, details = "pipeline.run.start", {"source": source, "options": options}
        record_access(
            conn,
            access,
            action,
            objects=[AuditObject("study", study_uid), AuditObject("pipeline_run", str(run_id))],
            details=details,
        )
    return get_run(store, run_id)


def complete_step(
    store: Store, access: Access, run: RunRecord, step: str, position: int, outputs: dict[str, Any], seconds: float
) -> None:
    """Record a completed step and its outputs (JSON) with its audit entry, in one transaction."""
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO pipeline_steps (run_fk, step, position, outputs, seconds, finished) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (run_fk, step) DO UPDATE SET outputs = excluded.outputs, seconds = excluded.seconds, "
            "finished = excluded.finished",
            (run.run_id, step, position, json.dumps(outputs, sort_keys=True, default=str), seconds, utc_now()),
        )
        conn.execute("UPDATE pipeline_runs SET updated = ? WHERE id = ?", (utc_now(), run.run_id))
        record_access(
            conn,
            access,
            "pipeline.step",
            objects=[AuditObject("study", run.study_uid), AuditObject("pipeline_run", str(run.run_id))],
            details={"step": step, "seconds": round(seconds, 3)},
        )


def fail_run(store: Store, access: Access, run: RunRecord, step: str, error: str) -> None:
    with store.transaction() as conn:
        conn.execute(
            "UPDATE pipeline_runs SET status = 'failed', failed_step = ?, error = ?, updated = ? WHERE id = ?",
            (step, error[:2000], utc_now(), run.run_id),
        )
        record_access(
            conn,
            access,
            "pipeline.run.failed",
            objects=[AuditObject("study", run.study_uid), AuditObject("pipeline_run", str(run.run_id))],
            outcome="minor_failure",
            details={"step": step, "error": error[:500]},
        )


def finish_run(store: Store, access: Access, run: RunRecord, summary: dict[str, Any]) -> None:
    with store.transaction() as conn:
        conn.execute(
            "UPDATE pipeline_runs SET status = 'done', failed_step = '', error = '', updated = ? WHERE id = ?",
            (utc_now(), run.run_id),
        )
        record_access(
            conn,
            access,
            "pipeline.run.done",
            objects=[AuditObject("study", run.study_uid), AuditObject("pipeline_run", str(run.run_id))],
            details=summary,
        )

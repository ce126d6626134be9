"""JobQueue on a real encrypted store: states, cancel, claim order, one running job, orphan recovery, restart."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.jobs import JobError, JobNotFoundError, JobQueue, JobTimeoutError
from core.store.store import Store

PASS = "store-passphrase-1"


@pytest.fixture
def store(passphrase_store: Store) -> Store:
    return passphrase_store


def test_submit_get_list_and_restart_keeps_jobs(store: Store, data_dir: Path) -> None:
    q = JobQueue(store)
    a = q.submit("segment", {"backend": "auto", "n": 1}, study_uid=None, created_by="rad1")
    b = q.submit("segment", {"backend": "torch"}, study_uid=None, created_by="rad1")
    job = q.get(a)
    assert (job.status, job.kind, job.payload, job.created_by, job.progress) == (
        "queued",
        "segment",
        {"backend": "auto", "n": 1},
        "rad1",
        0.0,
    )
    assert [j.id for j in q.list()] == [b, a]
    assert [j.id for j in q.list(states=["queued"], limit=1)] == [b]
    store.close()
    with Store.open(data_dir, passphrase=lambda _p: PASS) as reopened:  # the queue survives a restart
        assert [j.status for j in JobQueue(reopened).list()] == ["queued", "queued"]
    with pytest.raises(JobNotFoundError):
        JobQueue(Store.open_with_key(data_dir, store.handover_key())).get(999)


def test_submit_refuses_unknown_study_and_bad_payload(store: Store) -> None:
    q = JobQueue(store)
    with pytest.raises(JobError, match="not in the store"):
        q.submit("segment", {}, study_uid="1.2.3.999", created_by="rad1")
    with pytest.raises(JobError, match="cannot be stored"):
        q.submit("segment", {"x": object()}, study_uid=None, created_by="rad1")
    with pytest.raises(JobError, match="unknown job state"):
        q.list(states=["bogus"])


def test_claim_progress_succeed(store: Store) -> None:
    q = JobQueue(store)
    first = q.submit("segment", {}, study_uid=None, created_by="rad1")
    second = q.submit("segment", {}, study_uid=None, created_by="rad1")
    q.submit("other", {}, study_uid=None, created_by="rad1")
    job = q.claim_next(os.getpid(), ["segment"])
    assert job is not None and job.id == first and job.status == "running" and job.attempts == 1
    q.progress(first, 0.5, "half way")
    assert (q.get(first).progress, q.get(first).message) == (0.5, "half way")
    q.succeed(first, {"out_dir": "/x"})
    done = q.get(first)
    assert (done.status, done.result, done.progress) == ("done", {"out_dir": "/x"}, 1.0)
    assert done.finished is not None
    nxt = q.claim_next(os.getpid(), ["segment"])
    assert nxt is not None and nxt.id == second
    q.fail(second, "boom: reason")
    assert (q.get(second).status, q.get(second).error) == ("failed", "boom: reason")
    assert q.claim_next(os.getpid(), ["segment"]) is None


def test_only_one_running_job_while_its_worker_lives(store: Store) -> None:
    q = JobQueue(store)
    q.submit("segment", {}, study_uid=None, created_by="rad1")
    q.submit("segment", {}, study_uid=None, created_by="rad1")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert q.claim_next(sleeper.pid, ["segment"]) is not None
        assert q.claim_next(os.getpid(), ["segment"]) is None  # the other worker's job still runs
    finally:
        sleeper.kill()
        sleeper.wait()
    assert q.recover_orphans() == [1]
    assert q.get(1).status == "failed" and f"pid {sleeper.pid}" in q.get(1).error
    assert q.claim_next(os.getpid(), ["segment"]) is not None


def test_cancel_queued_and_running(store: Store) -> None:
    q = JobQueue(store)
    queued = q.submit("segment", {}, study_uid=None, created_by="rad1")
    q.cancel(queued, "rad1")
    assert q.get(queued).status == "cancelled" and "before it started" in q.get(queued).message
    with pytest.raises(JobError, match="already cancelled"):
        q.cancel(queued, "rad1")
    running = q.submit("segment", {}, study_uid=None, created_by="rad1")
    assert q.claim_next(os.getpid(), ["segment"]) is not None
    assert not q.cancel_requested(running)
    q.cancel(running, "rad2")
    assert q.cancel_requested(running) and q.get(running).status == "running"
    q.mark_cancelled(running)
    assert (q.get(running).status, q.get(running).message) == ("cancelled", "cancelled by rad2")
    q.succeed(running, {})  # a late finish does not overwrite the terminal state
    assert q.get(running).status == "cancelled"


def test_recover_orphans_with_reason_and_wait(store: Store) -> None:
    q = JobQueue(store)
    job_id = q.submit("segment", {}, study_uid=None, created_by="rad1")
    q.claim_next(4_000_000, ["segment"])  # a pid that cannot exist (above pid_max)
    assert q.recover_orphans(reasons={4_000_000: "worker died (killed by SIGKILL)"}) == [job_id]
    assert q.get(job_id).error == "worker died (killed by SIGKILL)"
    other = q.submit("segment", {}, study_uid=None, created_by="rad1")
    with pytest.raises(JobTimeoutError, match="still queued"):
        q.wait(other, timeout_s=0.1, poll_s=0.02)
    seen: list[str] = []

    def finish() -> None:
        q.claim_next(os.getpid(), ["segment"])
        q.progress(other, 0.3, "working")
        q.succeed(other, {"ok": True})

    timer = threading.Timer(0.2, finish)
    timer.start()
    final = q.wait(other, timeout_s=10, poll_s=0.02, on_progress=lambda j: seen.append(j.status))
    timer.join()
    assert final.status == "done" and final.result == {"ok": True} and seen[0] == "queued" and seen[-1] == "done"

"""The worker process on a real encrypted store: a segment job end to end, cancel mid-job, kill -9 and crash
mid-job (the job fails with the reason, the next queued job still runs), restart with queued jobs, one worker."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.dicom.importer import import_paths
from core.jobs import Job, JobQueue
from core.security.roles import Permission, Role
from core.security.session import Access
from core.segmentation.service import load_segmentation, segment_job_payload, submit_segmentation
from core.store.store import Store
from core.store.users import UserRepository
from engines.host import DEFAULT_NICE, WorkerHost
from tests.engine.tiny_model import LABELS, TINY_MODEL

pytestmark = pytest.mark.slow


@dataclass
class Env:
    store: Store
    queue: JobQueue
    data_dir: Path
    rad: Access
    study_uid: str


@pytest.fixture
def env(data_dir: Path, tiny_model_dir: Path, small_study: Path) -> Iterator[Env]:
    store = Store.create(data_dir, key_mode="passphrase", passphrase=lambda _p: "store-passphrase-1")
    users = UserRepository(store)
    admin = users.create_first_admin("admin", "admin-password-1")
    rad = users.add(Access(admin, Permission.MANAGE_USERS), "rad1", Role.RADIOLOGIST, "radiologist-pw-1")
    report = import_paths(store, Access(rad, Permission.IMPORT_STUDIES), [small_study / "ct"])
    shutil.copytree(tiny_model_dir, data_dir / "models" / TINY_MODEL)
    yield Env(store, JobQueue(store), data_dir, Access(rad, Permission.RUN_ANALYSIS), report.studies[0])
    store.close()


@pytest.fixture
def host(env: Env) -> Iterator[WorkerHost]:
    worker = WorkerHost(env.data_dir, key=env.store.handover_key(), poll_s=0.1)
    yield worker
    worker.stop(timeout_s=10)


def _selftest(env: Env, seconds: float, steps: int = 50, **extra: object) -> int:
    payload = {"seconds": seconds, "steps": steps, **extra}
    return env.queue.submit("selftest", payload, study_uid=None, created_by="rad1")


def _until(condition: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_segment_job_end_to_end(env: Env, host: WorkerHost, tmp_path: Path) -> None:
    payload = segment_job_payload(study_uid=env.study_uid, backend="onnxruntime", model=TINY_MODEL, out_dir=tmp_path)
    job_id = submit_segmentation(env.queue, env.rad, payload)
    host.start()
    messages: list[str] = []
    job = env.queue.wait(job_id, timeout_s=180, on_progress=lambda j: messages.append(j.message))
    assert job.status == "done", job.error
    assert job.result["backend"].startswith("onnxruntime") and "requested" in job.result["backend_reason"]
    assert any("inference on onnxruntime" in m for m in messages)
    structures = LABELS[1:]
    assert (tmp_path / "seg.dcm").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.glob("*.nii.gz")) == sorted(f"{s}.nii.gz" for s in structures)
    read = Access(env.rad.user, Permission.READ_PATIENT_DATA)
    masks = load_segmentation(env.store, read, env.study_uid)
    assert sorted(masks) == sorted(structures)
    import SimpleITK as sitk  # noqa: N813

    for name in structures:
        assert masks[name].shape == (40, 96, 96)
        nii = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{name}.nii.gz")))
        assert np.array_equal(nii, masks[name]), name
    assert masks["body"].sum() >= max(masks[s].sum() for s in structures)  # derived: body is the union
    rows = env.store.query("SELECT kind, version FROM results")
    assert rows == [("segmentation", 1)]
    # a mask version saved from the workstation (arrays, no SEG) is newer, but this reads the engine's SEG
    from core.workstation.study import save_mask_version

    edited = {"gtv": np.zeros_like(masks["body"])}
    save_mask_version(env.store, Access(env.rad.user, Permission.RUN_ANALYSIS), env.study_uid, edited)
    again = load_segmentation(env.store, read, env.study_uid)
    assert sorted(again) == sorted(structures) and all(np.array_equal(again[n], masks[n]) for n in structures)


def test_cancel_mid_job_then_next_job_runs(env: Env, host: WorkerHost) -> None:
    long_job, next_job = _selftest(env, 60.0, steps=300), _selftest(env, 0.2, steps=2)
    host.start()
    _until(lambda: env.queue.get(long_job).progress > 0)
    env.queue.cancel(long_job, "rad1")
    job = env.queue.wait(long_job, timeout_s=20)
    assert (job.status, job.message) == ("cancelled", "cancelled by rad1")
    assert env.queue.wait(next_job, timeout_s=30).status == "done"


def test_kill_9_mid_job_fails_it_and_next_job_runs_after_restart(env: Env, host: WorkerHost) -> None:
    victim, survivor = _selftest(env, 60.0, steps=300), _selftest(env, 0.2, steps=2)
    host.start()
    _until(lambda: env.queue.get(victim).progress > 0)
    first_pid = host.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    _until(lambda: not host.is_alive(), 10)
    host.tick(env.queue)  # what the supervising thread does every second
    failed = env.queue.get(victim)
    assert failed.status == "failed" and failed.error == "worker died (killed by signal SIGKILL)"
    assert host.is_alive() and host.pid != first_pid
    done = env.queue.wait(survivor, timeout_s=30)
    assert done.status == "done" and done.result["pid"] == host.pid


def test_crashing_worker_is_restarted_by_the_supervisor(env: Env, host: WorkerHost) -> None:
    crash = _selftest(env, 1.0, steps=10, crash_at_step=2)
    after = _selftest(env, 0.2, steps=2)
    host.start()
    host.supervise(env.queue, interval_s=0.2)
    assert env.queue.wait(after, timeout_s=60).status == "done"
    job = env.queue.get(crash)
    assert (job.status, job.error) == ("failed", "worker died (exit code 70)")


def test_restart_with_queued_jobs_and_an_orphan(env: Env, host: WorkerHost) -> None:
    orphan = _selftest(env, 0.1)
    assert env.queue.claim_next(4_000_000, ["selftest"]) is not None  # left 'running' by a worker that is gone
    queued = [_selftest(env, 0.1, steps=2) for _ in range(3)]
    env.store.close()  # the app restarts: the queue is in the store, nothing in memory
    env.store = Store.open(env.data_dir, passphrase=lambda _p: "store-passphrase-1")
    env.queue = JobQueue(env.store)
    host.start()
    jobs: list[Job] = [env.queue.wait(j, timeout_s=60) for j in queued]
    assert [j.status for j in jobs] == ["done"] * 3
    assert [j.id for j in sorted(jobs, key=lambda j: j.finished or "")] == queued  # in submission order
    assert env.queue.get(orphan).status == "failed" and "no longer running" in env.queue.get(orphan).error


def test_only_one_worker_per_data_dir(env: Env, host: WorkerHost) -> None:
    host.start()
    lock = env.data_dir / "worker.lock"
    _until(lambda: lock.exists() and lock.read_text().strip() == str(host.pid), 30)
    key = env.store.handover_key().hex().encode()
    proc = Path(f"/proc/{host.pid}")
    assert key not in (proc / "cmdline").read_bytes() and key not in (proc / "environ").read_bytes()  # pipe only
    second = WorkerHost(env.data_dir, key=env.store.handover_key())
    second.start()
    _until(lambda: not second.is_alive(), 30)
    assert second.check(env.queue) == "another worker is already running"
    assert host.is_alive()


def test_the_worker_runs_below_the_apps_cpu_priority(env: Env, host: WorkerHost) -> None:
    """Inference takes every core it gets; the worker is niced (DEFAULT_NICE) so the window stays scheduled."""
    host.start()
    assert host.pid is not None
    _until(lambda: os.getpriority(os.PRIO_PROCESS, host.pid) != os.getpriority(os.PRIO_PROCESS, 0), 30.0)
    assert os.getpriority(os.PRIO_PROCESS, host.pid) == os.getpriority(os.PRIO_PROCESS, 0) + DEFAULT_NICE

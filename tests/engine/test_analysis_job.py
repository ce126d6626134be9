"""The 'analyse' job on a real encrypted store and a real worker process: radiomics of the truth GTV (sent encoded
in the payload), NLP of the demo note and the recommendation, computed by the worker from the CT series it reads
from the store; a mask drawn on another grid fails with the reason; cancel mid-job. Plus the mask codec itself."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from core.dicom.importer import import_paths
from core.jobs import Job, JobCancelledError, JobQueue
from core.security.roles import Permission, Role
from core.security.session import Access
from core.segmentation.service import access_for_user, load_ct_series, read_series_dir
from core.store.audit import entries
from core.store.store import Store
from core.store.users import UserRepository
from core.workstation.analysis import (
    ANALYSE_JOB,
    MaskCodecError,
    analyse,
    analysis_job_payload,
    decode_mask,
    encode_mask,
)
from engines.analysis_job import run_analyse
from engines.host import WorkerHost
from engines.jobs import JobContext
from tests.engine.tiny_model import SMALL_SHAPE, SMALL_SPACING

# ----------------------------------------------------------------------------------------------- mask codec


def _ball(shape: tuple[int, int, int], centre: tuple[float, float, float], radius: float) -> NDArray[np.uint8]:
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    d2 = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2
    return (d2 <= radius**2).astype(np.uint8)


def test_mask_codec_round_trip_is_exact_and_small() -> None:
    rng = np.random.default_rng(7)
    shape = (40, 96, 96)
    masks = {
        "ball": _ball(shape, (20.3, 40.7, 55.1), 6.4),
        "bool scattered": rng.random(shape) < 0.01,  # bool input, a box that is nearly the whole volume
        "one voxel at a corner": np.zeros(shape, np.uint8),
        "full": np.ones(shape, np.uint8),
        "labels 0/255": _ball(shape, (3.0, 90.0, 2.0), 3.0) * np.uint8(255),
        "odd box (7 x 3 x 5)": np.zeros(shape, np.uint8),
    }
    masks["one voxel at a corner"][39, 95, 95] = 1
    masks["odd box (7 x 3 x 5)"][10:17, 50:53, 0:5] = 1
    masks["odd box (7 x 3 x 5)"][12, 51, 2] = 0  # a hole inside the box
    for name, mask in masks.items():
        encoded = encode_mask(mask)
        text = json.dumps(encoded)  # travels in the job row as JSON
        decoded = decode_mask(json.loads(text), shape)
        assert decoded.dtype == np.uint8 and decoded.shape == shape, name
        assert np.array_equal(decoded, (np.asarray(mask) != 0).astype(np.uint8)), name
    ball = encode_mask(masks["ball"])
    z0, y0, x0 = ball["box"][0]
    z1, y1, x1 = ball["box"][1]
    assert (z1 - z0, y1 - y0, x1 - x0) == (13, 13, 13)  # cropped to the ball's bounding box
    assert len(ball["bits"]) < 4 * math.ceil(13**3 / 8 / 3) + 4  # base64 of 1 bit per voxel of the box
    assert len(ball["bits"]) * 100 < masks["ball"].size  # < 1 % of one byte per voxel of the volume
    empty = encode_mask(np.zeros(shape, np.uint8))
    assert empty == {"shape": list(shape), "box": None, "bits": ""}
    assert not decode_mask(empty, shape).any()


def test_decode_refuses_a_mask_of_another_shape_or_a_damaged_one() -> None:
    encoded = encode_mask(_ball((40, 96, 96), (20, 48, 48), 5))
    with pytest.raises(
        MaskCodecError, match=r"GTV mask \(40 x 96 x 96 voxels.*does not fit the CT series \(41 x 96 x 96"
    ):
        decode_mask(encoded, (41, 96, 96))
    with pytest.raises(MaskCodecError, match="damaged"):
        decode_mask({**encoded, "bits": encoded["bits"][:-8]}, (40, 96, 96))
    with pytest.raises(MaskCodecError, match="outside the volume"):
        decode_mask({**encoded, "box": [[0, 0, 0], [50, 10, 10]]}, (40, 96, 96))
    with pytest.raises(MaskCodecError, match="damaged"):
        decode_mask({"box": None}, (40, 96, 96))
    with pytest.raises(ValueError, match="3-D"):
        encode_mask(np.ones((4, 4), np.uint8))


# ----------------------------------------------------------------------------------------------- worker jobs


@dataclass
class Env:
    store: Store
    queue: JobQueue
    study_dir: Path
    study_uid: str
    series_uid: str
    manifest: dict[str, Any]
    truth_gtv: NDArray[np.uint8]
    note: str


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One store, one demo study (seed 0: a GTV of about 80 cc, so the mesh volume is meaningful on a 4 mm grid)."""
    import SimpleITK as sitk  # noqa: N813

    from core.demo.generator import generate_demo_study

    root = tmp_path_factory.mktemp("analyse")
    study_dir = root / "study"
    generate_demo_study(study_dir, seed=0, shape=SMALL_SHAPE, spacing_mm=SMALL_SPACING)
    data_dir = root / "store"
    store = Store.create(data_dir, key_mode="passphrase", passphrase=lambda _p: "store-passphrase-1")
    users = UserRepository(store)
    admin = users.create_first_admin("admin", "admin-password-1")
    rad = users.add(Access(admin, Permission.MANAGE_USERS), "rad1", Role.RADIOLOGIST, "radiologist-pw-1")
    report = import_paths(store, Access(rad, Permission.IMPORT_STUDIES), [study_dir / "ct"])
    manifest = json.loads((study_dir / "manifest.json").read_text())
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(study_dir / "truth" / "gtv.nii.gz"))).astype(np.uint8)
    note = (study_dir / "note.txt").read_text(encoding="utf-8")
    yield Env(store, JobQueue(store), study_dir, report.studies[0], manifest["ct_series_instance_uid"], manifest,
              truth, note)  # fmt: skip
    store.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def host(env: Env) -> Iterator[WorkerHost]:
    worker = WorkerHost(env.store.paths.data_dir, key=env.store.handover_key(), poll_s=0.1)
    worker.start()
    yield worker
    worker.stop(timeout_s=10)


def _submit(env: Env, mask: NDArray[Any] | None, note: str | None, facts: dict[str, Any] | None = None) -> int:
    payload = analysis_job_payload(study_uid=env.study_uid, series_uid=env.series_uid, mask=mask, note=note,
                                   facts=facts)  # fmt: skip
    return env.queue.submit(ANALYSE_JOB, payload, study_uid=env.study_uid, created_by="rad1")


def _until(condition: Any, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _reads(env: Env) -> int:
    rows = env.store.query("SELECT count(*) FROM audit WHERE action = 'study.read_images' AND actor = 'rad1'")
    return int(str(rows[0][0]))


def _read_purposes(env: Env) -> list[str]:
    """The audited purpose of each CT read by rad1, oldest first."""
    with env.store.transaction() as conn:
        return [str(e.details.get("purpose")) for e in entries(conn, actor="rad1", action="study.read_images")]


def test_the_ct_read_is_audited_with_its_purpose(env: Env) -> None:
    access = access_for_user(env.store, "rad1", Permission.READ_PATIENT_DATA)
    before = len(_read_purposes(env))
    load_ct_series(env.store, access, env.study_uid, env.series_uid)
    ct = load_ct_series(env.store, access, env.study_uid, env.series_uid, purpose="analysis")
    assert ct.volume.array.shape == env.truth_gtv.shape
    assert _read_purposes(env)[before:] == ["segmentation", "analysis"]


@pytest.mark.slow
def test_analyse_job_in_the_worker_matches_the_truth_and_the_in_process_analysis(env: Env, host: WorkerHost) -> None:
    reads_before = _reads(env)
    job_id = _submit(env, env.truth_gtv, env.note, {"age": 67})
    row = str(env.store.query("SELECT payload FROM jobs WHERE id = ?", (job_id,))[0][0])
    assert len(row) < len(env.note) + 2000  # the note, the facts and the packed mask: no pixel data in the row
    messages: list[str] = []
    job: Job = env.queue.wait(job_id, timeout_s=240, on_progress=lambda j: messages.append(j.message))
    assert job.status == "done", job.error
    result = job.result
    # radiomics of the truth GTV, with IBSI tags
    features = {f["tag"]: f["value"] for f in result["features"]}
    assert len(features) > 50 and result["radiomics_error"] == ""
    truth_mm3 = env.manifest["structure_volumes_cc"]["gtv"] * 1000.0
    # ibsi-d resamples to 2 mm isotropic before counting voxels or meshing: close to the truth, not equal
    assert features["morph_vol_approx"] == pytest.approx(truth_mm3, rel=0.03)
    assert features["morph_volume"] == pytest.approx(truth_mm3, rel=0.08)
    # NLP of the note: the mentions point into the note's text
    assert len(result["mentions"]) >= 3
    for m in result["mentions"]:
        assert env.note[m["start"] : m["end"]] == m["text"]
    # the recommendation, with the typed fact among its facts
    rec = result["recommendation"]
    assert rec["recommendations"] and rec["decision_support_notice"]
    assert rec["facts"]["age"]["value"] == 67
    # progress reached the job row: the row is sampled every 0.2 s, so some step messages (each well under a
    # second here) may be missed; the ones seen are the worker's, in its order (every step is checked in-process
    # below). The worker read the CT as the job's user (audited).
    steps = ["CT series loaded", "radiomics of the GTV (ibsi-d)", "NLP of the clinical note", "rules and model scores"]
    seen = [
        next(i for i, step in enumerate(steps) if m.startswith(step)) for m in messages if m.startswith(tuple(steps))
    ]
    assert seen and seen == sorted(seen) and job.progress == 1.0
    assert _reads(env) == reads_before + 1 and _read_purposes(env)[-1] == "analysis"
    # the same numbers as the analysis run here on the series read from the files (what the GUI did before)
    ct = read_series_dir(env.study_dir / "ct")
    here = json.loads(json.dumps(analyse(ct.volume.array, ct.volume.spacing_mm, env.truth_gtv, env.note,
                                         facts={"age": 67})))  # fmt: skip
    assert [f["tag"] for f in result["features"]] == [f["tag"] for f in here["features"]]
    for got, want in zip(result["features"], here["features"], strict=True):
        assert got["value"] == pytest.approx(want["value"], rel=1e-9, nan_ok=True), got["tag"]
    assert result["mentions"] == here["mentions"]
    assert rec["recommendations"] == here["recommendation"]["recommendations"]


class _Recording(JobContext):
    """The worker's JobContext (real queue), recording each progress report; cancelled once `cancel_after` was
    reported."""

    def __init__(self, queue: JobQueue, job: Job, cancel_after: str | None = None) -> None:
        super().__init__(queue, job, min_interval_s=0.0)
        self.seen: list[tuple[float, str]] = []
        self.cancel_after = cancel_after

    def progress(self, fraction: float, message: str) -> None:
        self.seen.append((fraction, message))
        super().progress(fraction, message)

    def cancelled(self) -> bool:
        return any(m == self.cancel_after for _, m in self.seen) or super().cancelled()


@pytest.mark.slow
def test_the_handler_reports_each_step_and_stops_between_steps(env: Env) -> None:
    """run_analyse in this process with the worker's JobContext on the real store (a job id with no row: its
    progress writes change nothing, so a running worker cannot interfere)."""
    payload = analysis_job_payload(study_uid=env.study_uid, series_uid=env.series_uid, mask=env.truth_gtv,
                                   note=env.note)  # fmt: skip
    job = Job(10**9, ANALYSE_JOB, "running", payload, {}, 0.0, "", "", env.study_uid, "rad1", "", "")
    ctx = _Recording(env.queue, job)
    result = run_analyse(env.store, ctx, env.store.paths.data_dir)
    assert [m for _, m in ctx.seen] == [
        "loading the CT series",
        f"CT series loaded ({env.truth_gtv.shape[0]} slices)",
        "radiomics of the GTV (ibsi-d)",
        "NLP of the clinical note",
        "rules and model scores",
        "storing the result",
    ]
    fractions = [f for f, _ in ctx.seen]
    assert fractions == sorted(fractions) and fractions[-1] < 1.0 and result["mentions"]
    ctx = _Recording(env.queue, job, cancel_after="radiomics of the GTV (ibsi-d)")
    with pytest.raises(JobCancelledError):
        run_analyse(env.store, ctx, env.store.paths.data_dir)
    assert ctx.seen[-1][1] == "radiomics of the GTV (ibsi-d)"  # stopped before the NLP step


@pytest.mark.slow
def test_a_mask_of_another_shape_fails_with_the_reason(env: Env, host: WorkerHost) -> None:
    wrong = np.zeros((env.truth_gtv.shape[0] - 1, *env.truth_gtv.shape[1:]), np.uint8)
    wrong[10:14, 40:44, 40:44] = 1
    job = env.queue.wait(_submit(env, wrong, env.note), timeout_s=120)
    assert job.status == "failed"
    z, y, x = env.truth_gtv.shape
    assert job.error == (
        f"the GTV mask ({z - 1} x {y} x {x} voxels, slices x rows x columns) does not fit the CT series "
        f"({z} x {y} x {x} voxels): it was drawn on another series. Open the study again and rerun the analysis"
    )
    # no mask at all still gives the NLP and the recommendation, and says why there are no features
    job = env.queue.wait(_submit(env, None, env.note), timeout_s=120)
    assert job.status == "done", job.error
    assert job.result["features"] == [] and "no GTV mask" in job.result["radiomics_error"]
    assert job.result["mentions"] and job.result["recommendation"]["recommendations"]


@pytest.mark.slow
def test_cancelling_a_running_analysis_ends_it_cancelled(env: Env, host: WorkerHost) -> None:
    job_id = _submit(env, env.truth_gtv, env.note)
    _until(lambda: env.queue.get(job_id).status != "queued")
    assert env.queue.get(job_id).status == "running"
    env.queue.cancel(job_id, "rad1")
    job = env.queue.wait(job_id, timeout_s=60)
    assert (job.status, job.message, job.result) == ("cancelled", "cancelled by rad1", {})
    after = env.queue.wait(_submit(env, None, None), timeout_s=120)  # the worker carries on with the next job
    assert after.status == "done", after.error

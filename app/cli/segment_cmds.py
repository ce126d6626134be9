"""`radplan segment`, `radplan worker`, `radplan jobs`: AI segmentation through the background worker."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from app.bootstrap import AppContext
from app.cli.common import echo_json, pass_app
from core.jobs import JOB_STATES, Job, JobError, JobQueue
from core.security.roles import Permission
from core.segmentation.models import DEFAULT_MODEL
from core.segmentation.service import BACKEND_CHOICES, segment_job_payload, submit_segmentation

__all__ = ["engine_worker", "jobs", "segment", "worker"]


def _parse_seed(seed: str | None) -> tuple[int, int, int] | None:
    if seed is None:
        return None
    try:
        x, y, z = (int(v) for v in seed.split(","))
    except ValueError as exc:
        raise click.BadParameter(
            "give the seed as X,Y,Z (column, row, slice; whole numbers)", param_hint="--seed"
        ) from exc
    return x, y, z


class _ProgressPrinter:
    """One line on stderr per new message or 10 % step."""

    def __init__(self) -> None:
        self.last: tuple[str, int] = ("", -1)

    def __call__(self, fraction: float, message: str) -> None:
        key = (message, int(fraction * 10))
        if key != self.last:
            self.last = key
            click.echo(f"  {fraction * 100:5.1f}%  {message}", err=True)

    def job(self, job: Job) -> None:
        self(job.progress, f"[{job.status}] {job.message}")


@click.command()
@click.option("--study", "study_uid", metavar="UID", help="A stored study: runs as a job in the background worker.")
@click.option(
    "--input", "input_dir", type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="A folder of DICOM files (one CT series): runs in this process, nothing is stored.",
)  # fmt: skip
@click.option(
    "--series", "series_uid", metavar="UID", help="The image series (default: the CT series with most images)."
)
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="auto", show_default=True)
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Segmentation model ('radplan model list').")
@click.option("--seed", metavar="X,Y,Z", help="Seed voxel (column, row, slice) for --method region-grow.")
@click.option("--method", type=click.Choice(["model", "region-grow"]), default="model", show_default=True)
@click.option("--label", default="gtv", show_default=True, help="Structure name of the region-grow mask.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), help="Writes seg.dcm + *.nii.gz.")
@click.option(
    "--timeout", "timeout_s", type=float, default=3600.0, show_default=True, help="Seconds to wait (--study)."
)
@click.option("--no-wait", is_flag=True, help="--study: submit the job and return its number.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def segment(
    app: AppContext, study_uid: str | None, input_dir: Path | None, series_uid: str | None, backend: str, model: str,
    seed: str | None, method: str, label: str, out_dir: Path | None, timeout_s: float, no_wait: bool, as_json: bool,
) -> None:  # fmt: skip
    """AI segmentation of a CT series: DIR/seg.dcm (DICOM SEG) and DIR/<structure>.nii.gz masks.

    --study UID runs in the background worker (one GPU job at a time), stores the SEG into the study and, with
    --out, also writes the files. --input SERIES_DIR runs here and needs --out. --backend auto picks the fastest
    backend available and says which. Decision support: every contour must be checked by a clinician.
    """
    if (study_uid is None) == (input_dir is None):
        raise click.UsageError("give exactly one of --study UID or --input SERIES_DIR")
    seed_xyz = _parse_seed(seed)
    if method == "region-grow" and seed_xyz is None:
        raise click.UsageError("--method region-grow needs --seed X,Y,Z")
    if seed_xyz is not None and method != "region-grow":
        raise click.UsageError("--seed is for --method region-grow")
    if input_dir is not None:
        if out_dir is None:
            raise click.UsageError("--input needs --out DIR")
        _segment_files(app, input_dir, series_uid, backend, model, method, seed_xyz, label, out_dir, as_json)
        return
    assert study_uid is not None
    access = app.authorize(Permission.RUN_ANALYSIS)
    payload = segment_job_payload(
        study_uid=study_uid, series_uid=series_uid, backend=backend, model=model, out_dir=out_dir, method=method,
        seed_xyz=seed_xyz, label=label,
    )  # fmt: skip
    queue = JobQueue(app.store())
    job_id = submit_segmentation(queue, access, payload)
    if no_wait:
        click.echo(f"job {job_id} queued ('radplan jobs show {job_id}'; a worker runs it: 'radplan worker')")
        return
    job = _run_and_wait(app, queue, job_id, timeout_s)
    if as_json:
        echo_json({"job": job_id, **job.result})
        return
    _echo_result(job.result)
    click.echo(f"stored in study {study_uid} as segmentation version {job.result.get('version')}")


def _run_and_wait(app: AppContext, queue: JobQueue, job_id: int, timeout_s: float) -> Job:
    app.ensure_worker()
    printer = _ProgressPrinter()
    try:
        job = queue.wait(job_id, timeout_s, on_progress=printer.job)
    except KeyboardInterrupt:
        queue.cancel(job_id, app.session().user.name)
        click.echo(f"job {job_id}: cancel requested", err=True)
        job = queue.wait(job_id, 60.0)
    if job.status == "failed":
        raise JobError(f"job {job_id} failed: {job.error}")
    if job.status == "cancelled":
        raise JobError(f"job {job_id} was cancelled ({job.message})")
    return job


def _echo_result(result: dict[str, Any]) -> None:
    click.echo(f"backend: {result.get('backend')} - {result.get('backend_reason', '')}")
    for note in result.get("notes", []):
        click.echo(f"note: {note}")
    for name, cc in result.get("volumes_cc", {}).items():
        click.echo(f"  {name:14} {cc:10.1f} cc")
    timings = result.get("timings_s", {})
    click.echo("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    if result.get("out_dir"):
        click.echo(f"written: {result['out_dir']}/seg.dcm and one .nii.gz per structure")


def _segment_files(
    app: AppContext, input_dir: Path, series_uid: str | None, backend: str, model: str, method: str,
    seed_xyz: tuple[int, int, int] | None, label: str, out_dir: Path, as_json: bool,
) -> None:  # fmt: skip
    from core.segmentation.result import write_result
    from core.segmentation.service import read_series_dir
    from engines.jobs import segment_series

    t0 = time.perf_counter()
    ct = read_series_dir(input_dir, series_uid)
    payload = segment_job_payload(
        study_uid="", backend=backend, model=model, method=method, seed_xyz=seed_xyz, label=label
    )
    result, reason = segment_series(ct.volume, payload, app.settings.data_dir, _ProgressPrinter(), lambda: False)
    write_result(result, ct.volume, ct.images, out_dir)
    summary = {
        "out_dir": str(out_dir),
        "backend": result.backend,
        "backend_reason": reason,
        "model": f"{result.model_name} {result.model_version}",
        "volumes_cc": {k: round(v, 2) for k, v in result.volumes_cc.items()},
        "timings_s": {**{k: round(v, 3) for k, v in result.timings_s.items()},
                      "end_to_end": round(time.perf_counter() - t0, 3)},
        "notes": list(result.notes),
    }  # fmt: skip
    if as_json:
        echo_json(summary)
    else:
        _echo_result(summary)


@click.command()
@click.option("--for", "run_for_s", type=float, default=None, help="Stop after this many seconds (default: Ctrl-C).")
@pass_app
def worker(app: AppContext, run_for_s: float | None) -> None:
    """Run the background worker in the foreground (supervised: a crashed worker is restarted, its job failed)."""
    stop = {"now": False}

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    host = app.ensure_worker()
    click.echo(f"worker running (pid {host.pid}) for {app.settings.data_dir}; Ctrl-C stops it", err=True)
    deadline = None if run_for_s is None else time.monotonic() + run_for_s
    try:
        while not stop["now"] and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.5)
            if not host.is_alive() and host.last_exit == "another worker is already running":
                raise JobError("another worker is already running for this data dir")
    except KeyboardInterrupt:
        pass
    click.echo("worker stopping (a running job goes back to the queue)", err=True)


@click.group()
def jobs() -> None:
    """Background jobs: list, show, cancel; selftest checks the worker."""


@jobs.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice(JOB_STATES))
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def jobs_list(app: AppContext, states: tuple[str, ...], limit: int, as_json: bool) -> None:
    app.authorize(Permission.READ_PATIENT_DATA)
    found = JobQueue(app.store()).list(states or None, limit)
    if as_json:
        echo_json(found)
        return
    for job in found:
        click.echo(f"{job.id:5} {job.kind:9} {job.status:9} {job.progress * 100:5.1f}%  {job.created_by:10} "
                   f"{job.created[:19]}  {job.error or job.message}")  # fmt: skip
    if not found:
        click.echo("no jobs")


@jobs.command("show")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def jobs_show(app: AppContext, job_id: int, as_json: bool) -> None:
    app.authorize(Permission.READ_PATIENT_DATA)
    job = JobQueue(app.store()).get(job_id)
    if as_json:
        echo_json(job)
        return
    click.echo(job.summary())
    for key in ("study_uid", "created_by", "created", "started", "finished", "attempts"):
        click.echo(f"  {key}: {getattr(job, key)}")
    if not job.result:
        return
    if job.kind == "segment":
        _echo_result(job.result)
    elif job.kind == "analyse":
        _echo_analysis(job.result)
    else:
        for key, value in job.result.items():
            click.echo(f"  {key}: {value}")


def _echo_analysis(result: dict[str, Any]) -> None:
    """An 'analyse' job's result in a few lines (the whole result, features included, with --json)."""
    rec = result.get("recommendation") or {}
    click.echo(f"radiomics: {len(result.get('features') or [])} features"
               + (f" ({result['radiomics_error']})" if result.get("radiomics_error") else ""))  # fmt: skip
    click.echo(f"note: {len(result.get('mentions') or [])} findings")
    for item in rec.get("recommendations") or []:
        dose = (f" {item['total_dose_gy']} Gy in {item['fractions']} fractions"
                if item.get("total_dose_gy") is not None and item.get("fractions") else "")  # fmt: skip
        click.echo(f"recommendation: {item.get('intent', '?')} {item.get('modality', '?')}{dose} "
                   f"(rules {', '.join(item.get('rule_ids') or [])}; {item.get('source', '')})")  # fmt: skip
    click.echo(f"rules fired: {len(rec.get('rules_fired') or [])}, model scores: {len(rec.get('scores') or [])}")
    if rec.get("decision_support_notice"):
        click.echo(str(rec["decision_support_notice"]))


@jobs.command("cancel")
@click.argument("job_id", type=int)
@pass_app
def jobs_cancel(app: AppContext, job_id: int) -> None:
    access = app.authorize(Permission.RUN_ANALYSIS)
    queue = JobQueue(app.store())
    queue.cancel(job_id, access.user.name)
    click.echo(f"job {job_id}: {queue.get(job_id).message}")


@jobs.command("selftest")
@click.option("--seconds", type=float, default=2.0, show_default=True)
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True)
@pass_app
def jobs_selftest(app: AppContext, seconds: float, timeout_s: float) -> None:
    """Check the worker: a job that only waits and reports progress."""
    access = app.authorize(Permission.RUN_ANALYSIS)
    queue = JobQueue(app.store())
    job_id = queue.submit("selftest", {"seconds": seconds, "steps": 10}, study_uid=None, created_by=access.user.name)
    job = _run_and_wait(app, queue, job_id, timeout_s)
    click.echo(f"job {job_id} done by worker pid {job.result.get('pid')}")


@click.command("engine-worker", hidden=True, context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def engine_worker(args: tuple[str, ...]) -> None:
    """The worker process itself, for frozen builds (engines.host starts `radplan engine-worker ...` there)."""
    from engines.worker import main as worker_main

    raise SystemExit(worker_main(list(args)))

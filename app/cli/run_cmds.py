"""`radplan run` (the whole pipeline for a study from a PACS or a folder, or a cohort) and `radplan demo` (the same
against an embedded demo PACS). See docs/pipeline.md."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from app.bootstrap import AppContext
from app.cli.common import echo_json, pass_app
from core.security.roles import Permission
from core.security.session import Access

__all__ = ["demo", "run"]

DISCLAIMER = "Decision support only: every recommendation and plan must be checked by a qualified clinician."


def _authorizer(app: AppContext) -> Callable[[Permission], Access]:
    cache: dict[Permission, Access] = {}

    def authorize(permission: Permission) -> Access:
        if permission not in cache:
            cache[permission] = app.authorize(permission)
        return cache[permission]

    return authorize


class _Printer:
    """Progress lines: a line when a step starts and ends, and its own progress at most every 25 %."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.index, self.last = total, quiet, 0, -1.0
        self.names: list[str] = []

    def __call__(self, step: str, fraction: float, message: str) -> None:
        if self.quiet:
            return
        if step not in self.names:
            self.names.append(step)
            self.last = -1.0
        n = self.names.index(step) + 1
        first = self.last < 0.0
        if first or fraction >= 1.0 or fraction - self.last >= 0.25:
            self.last = fraction
            mark = "done" if fraction >= 1.0 else f"{100 * fraction:3.0f}%"
            click.echo(f"[{n:2d}/{self.total}] {step:10} {mark:>4}  {message}", err=True)


def _summary(summary: Any, node_name: str | None) -> None:
    from core.pipeline.graph import PIPELINE

    click.echo(f"\nrun {summary.run_id} of study {summary.study_uid}: {summary.status}")
    if summary.already_done:
        click.echo("  (finished earlier: nothing was run again; --fresh starts a new run)")
    click.echo(f"  {'step':12} {'seconds':>8}")
    for step in PIPELINE:
        value = summary.seconds.get(step.name)
        click.echo(f"  {step.name:12} {'(earlier)' if value is None else f'{value:8.2f}':>8}")
    click.echo(f"  {'total':12} {summary.total_s:8.2f}")
    rec = summary.recommendation
    if rec:
        dose = f"{rec['total_dose_gy']:g} Gy in {rec['fractions']} fractions" if rec.get("total_dose_gy") else "no RT"
        click.echo(f"recommendation: {rec['intent']} {rec['modality']}, {dose} [{', '.join(rec['rule_ids'])}]")
    else:
        questions = summary.outputs.get("questions") or []
        click.echo("recommendation: none; open questions: " + "; ".join(q["question"] for q in questions))
    plan_id = summary.outputs.get("plan_id")
    click.echo(f"plan: {plan_id} (draft)" if plan_id else f"plan: none ({summary.outputs.get('reason', '')})")
    click.echo(f"PDF: {summary.pdf}" if summary.pdf else "PDF: none")
    sent = summary.outputs.get("sent") or {}
    if sent:
        click.echo(f"sent to {node_name}: {', '.join(sorted(sent))}")
    click.echo(DISCLAIMER)


def _study_in_folder(folder: Path) -> str:
    import pydicom
    from pydicom.errors import InvalidDicomError

    found: set[str] = set()
    for path in folder.rglob("*"):
        if path.is_file():
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "Modality"])
            except (InvalidDicomError, OSError, ValueError):
                continue
            if ds.get("Modality") == "CT" and "StudyInstanceUID" in ds:
                found.add(str(ds.StudyInstanceUID))
    if len(found) != 1:
        raise click.UsageError(
            f"{folder} holds CT images of {len(found)} studies; give --study UID" if found else f"no CT under {folder}"
        )
    return found.pop()


def run_study(
    app: AppContext,
    study_uid: str,
    out: Path,
    *,
    node: Any = None,
    input_dir: Path | None = None,
    options: Any = None,
    fresh: bool = False,
    quiet: bool = False,
    segmenter: Any = None,
) -> Any:
    """Build the context from the app and run (or resume) the pipeline; raises PipelineError on a failed step."""
    from core.models.registry import SHIPPED_MODELS
    from core.pacs.association import LocalAE
    from core.pipeline.context import PipelineContext, PipelineOptions
    from core.pipeline.graph import PIPELINE, run_pipeline
    from core.pipeline.segmenter import JobQueueSegmenter

    local = LocalAE(ae_title=app.settings.ae_title, storage_port=app.settings.storage_port) if node else None
    ctx = PipelineContext(
        store=app.store(),
        authorize=_authorizer(app),
        study_uid=study_uid,
        out_dir=out,
        segmenter=segmenter or JobQueueSegmenter(ensure_worker=getattr(app, "ensure_worker", None)),
        options=options or PipelineOptions(),
        node=node,
        local=local,
        input_dir=input_dir,
        model_roots=(app.settings.data_dir / "models" / "risk", SHIPPED_MODELS),
        progress=_Printer(len(PIPELINE), quiet),
    )
    return run_pipeline(ctx, fresh=fresh)


def _fail(exc: Exception, step: str) -> None:
    from core.pipeline.context import PipelineError

    raise PipelineError(
        f"{exc} -- what the completed steps made is kept; run the same command again to resume from step '{step}'."
    ) from exc


def _cohort(
    app: AppContext,
    node_name: str,
    studies_file: Path,
    workers: int,
    scheduler: str | None,
    out: Path,
    send_back: bool,
    as_json: bool,
) -> None:
    from core.pipeline.cohort import read_study_list, run_cohort

    uids = read_study_list(studies_file)
    app.authorize(Permission.RUN_ANALYSIS)  # sign in once here: the children get the same credentials (env)
    base = [sys.executable, "-m", "app", "--data-dir", str(app.settings.data_dir), "run", "--pacs", node_name]
    commands = {
        uid: [*base, "--study", uid, "--out", str(out / uid), "--json", "--quiet"]
        + (["--send-back"] if send_back else [])
        for uid in uids
    }
    env = {**os.environ, "RADPLAN_USER": app.session().user.name}
    rows = run_cohort(commands, env, workers=workers, scheduler=scheduler)
    if as_json:
        echo_json([r.__dict__ for r in rows])
    else:
        click.echo(f"{'study':64} {'status':7} {'seconds':>8}  recommendation / error")
        for r in rows:
            click.echo(f"{r.study_uid:64} {r.status:7} {r.seconds:8.1f}  {r.detail}")
        click.echo(f"{sum(r.status == 'ok' for r in rows)}/{len(rows)} studies done. {DISCLAIMER}")
    if any(r.status != "ok" for r in rows):
        raise click.exceptions.Exit(1)


@click.command("run")
@click.option("--pacs", "node_name", metavar="NODE", help="Retrieve from this PACS node (radplan pacs add).")
@click.option("--study", "study_uid", metavar="UID", help="Study Instance UID.")
@click.option(
    "--studies",
    "studies_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A cohort: a text file of Study Instance UIDs, one a line.",
)
@click.option(
    "--input",
    "input_dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="A folder of DICOM files instead of a PACS (a note.txt there is attached as the clinical note).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Output folder (PDF, features; default: <data dir>/runs/<study UID>).",
)
@click.option("--send-back", is_flag=True, help="C-STORE the SEG, RT Structure Set and PDF back to the PACS.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Cohort: parallel studies.")
@click.option("--scheduler", metavar="tcp://HOST:PORT", help="Cohort: run on this Dask scheduler.")
@click.option("--fresh", is_flag=True, help="Start a new run instead of resuming an unfinished one.")
@click.option("--site", default="nsclc", show_default=True, help="Rule base.")
@click.option("--radiomics-config", default="clinical", show_default=True, help="Radiomics configuration.")
@click.option("--model", "model_name", default=None, help="Segmentation model (default: the engine's).")
@click.option("--backend", default=None, help="Inference backend (default: the best available).")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def run(
    app: AppContext,
    node_name: str | None,
    study_uid: str | None,
    studies_file: Path | None,
    input_dir: Path | None,
    out: Path | None,
    send_back: bool,
    workers: int,
    scheduler: str | None,
    fresh: bool,
    site: str,
    radiomics_config: str,
    model_name: str | None,
    backend: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Run the whole pipeline for one study: retrieve, CT series, AI segmentation, radiomics, note NLP, model
    scores, rule base, draft plan (DVH with an RT Dose), PDF, optional send-back. A re-run after a failure resumes
    from the failed step. Exit 1 with the reason when a step fails."""
    from core.pacs.nodes import get_node
    from core.pipeline.context import PipelineOptions, StepError

    if studies_file is not None:
        if not node_name or study_uid or input_dir:
            raise click.UsageError("--studies goes with --pacs NODE (and not with --study or --input)")
        _cohort(
            app, node_name, studies_file, workers, scheduler, out or app.settings.data_dir / "runs", send_back, as_json
        )
        return
    if (node_name is None) == (input_dir is None):
        raise click.UsageError("give --pacs NODE --study UID, or --input DIR")
    if node_name is not None and not study_uid:
        raise click.UsageError("--pacs needs --study UID (or --studies LIST.txt)")
    if input_dir is not None and send_back:
        raise click.UsageError("--send-back needs --pacs: a folder has no PACS to send to")
    uid = study_uid or _study_in_folder(input_dir)  # type: ignore[arg-type]
    node = get_node(app.store(), node_name) if node_name else None
    options = PipelineOptions(
        send_back=send_back, site=site, radiomics_config=radiomics_config, model=model_name, backend=backend
    )
    try:
        summary = run_study(
            app,
            uid,
            out or app.settings.data_dir / "runs" / uid,
            node=node,
            input_dir=input_dir,
            options=options,
            fresh=fresh,
            quiet=quiet,
        )
    except StepError as exc:
        _fail(exc, exc.step)
    if as_json:
        echo_json(_json_summary(summary))
    else:
        _summary(summary, node_name)


def _json_summary(summary: Any, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": summary.run_id,
        "study_uid": summary.study_uid,
        "status": summary.status,
        "seconds": summary.seconds,
        "total_s": summary.total_s,
        "resumed": list(summary.resumed),
        "already_done": summary.already_done,
        "recommendation": summary.recommendation,
        "plan_id": summary.outputs.get("plan_id"),
        "pdf": summary.pdf,
        "sent": summary.outputs.get("sent") or {},
        **extra,
    }


def _shape(value: str) -> tuple[int, int, int]:
    try:
        x, y, z = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter("use COLSxROWSxSLICES, e.g. 512x512x150") from None
    return x, y, z


@click.command("demo")
@click.option("--headless", is_flag=True, help="Do not open the app: print the PDF path.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for the demo study and results (default: <data dir>/demo).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Demo patient.")
@click.option("--shape", default=None, metavar="CxRxS", help="Smaller demo CT (e.g. 128x128x60; default 512x512x150).")
@click.option("--spacing", default=None, metavar="X,Y,Z", help="With --shape: voxel size in mm (default: same FOV).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (implies --headless).")
@pass_app
def demo(
    app: AppContext,
    headless: bool,
    out: Path | None,
    seed: int,
    shape: str | None,
    spacing: str | None,
    as_json: bool,
) -> None:
    """The main job on built-in defaults: an embedded demo PACS (in this process) serves a synthetic thorax CT study
    with an RT Dose and a clinical note; the whole pipeline runs against it (results sent back to it), then the app
    opens on the result when a display exists. Run again after a failure: it resumes."""
    from app.cli.gui_cmds import has_display
    from core.pipeline.context import PipelineOptions, StepError
    from core.pipeline.demo import demo_study, start_demo_pacs

    out = out or app.settings.data_dir / "demo"
    size = _shape(shape) if shape else (512, 512, 150)
    if spacing:
        try:
            x, y, z = (float(v) for v in spacing.split(","))
        except ValueError:
            raise click.BadParameter("use X,Y,Z in mm, e.g. 4,4,5", param_hint="--spacing") from None
        vox = (x, y, z)
    else:  # the default field of view (409.6 x 409.6 x 375 mm) at the asked shape
        vox = (409.6 / size[0], 409.6 / size[1], 375.0 / size[2])
    app.authorize(Permission.RUN_ANALYSIS)
    started = time.perf_counter()
    click.echo(f"demo study (seed {seed}, {size[0]}x{size[1]}x{size[2]}) in {out / 'study'}", err=True)
    study = demo_study(out / "study", seed=seed, shape=size, spacing_mm=vox)
    generated = time.perf_counter() - started
    pacs, node = start_demo_pacs(study.folder, our_ae=app.settings.ae_title, our_port=app.settings.storage_port)
    click.echo(
        f"embedded demo PACS {node.ae_title} on 127.0.0.1:{node.port} ({len(pacs.datasets)} instances)", err=True
    )
    try:
        summary = run_study(app, study.study_uid, out / "results", node=node, options=PipelineOptions(send_back=True))
    except StepError as exc:
        _fail(exc, exc.step)
    finally:
        received = sorted(str(ds.Modality) for ds in pacs.received)
        pacs.stop()
    total = time.perf_counter() - started
    if as_json:
        echo_json(_json_summary(summary, received_back=received, demo_data_s=generated, wall_s=total))
        return
    _summary(summary, node.name)
    click.echo(
        f"demo data {generated:.1f} s; the demo PACS received back: {', '.join(received) or 'nothing'}; "
        f"wall time {total:.1f} s"
    )
    parent = click.get_current_context().parent
    has_gui = (
        parent is not None
        and isinstance(parent.command, click.Group)
        and "gui" in parent.command.list_commands(parent)  # lazy commands are listed before they are imported
    )
    if headless or not has_display() or not has_gui:
        click.echo(summary.pdf or "no PDF (no radiotherapy recommendation)")
        return
    subprocess.run(
        [sys.executable, "-m", "app", "--data-dir", str(app.settings.data_dir), "gui", "--study", study.study_uid],
        check=False,
    )

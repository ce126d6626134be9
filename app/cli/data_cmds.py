"""`radplan demo-data`, `radplan import`, `radplan studies`: test data, import and the local study list."""

from __future__ import annotations

import time
from pathlib import Path

import click

from app.bootstrap import AppContext
from app.cli.common import EXIT_ERROR, echo_json, pass_app
from core.dicom.importer import import_paths
from core.security.roles import Permission
from core.store.studies import list_studies

__all__ = ["demo_data", "import_cmd", "studies"]


def _shape(value: str) -> tuple[int, int, int]:
    try:
        cols, rows, slices = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter("use COLSxROWSxSLICES, e.g. 512x512x150") from None
    return cols, rows, slices


@click.command("demo-data")
@click.argument("out", type=click.Path(path_type=Path, file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True, help="Different seeds, different anatomy.")
@click.option("--shape", default="512x512x150", show_default=True, help="CT size COLSxROWSxSLICES.")
@click.option("--spacing", default="0.8x0.8x2.5", show_default=True, help="Voxel size in mm (x y z).")
def demo_data(out: Path, seed: int, shape: str, spacing: str) -> None:
    """Write a synthetic thorax CT study with truth masks, RTSTRUCT, RTDOSE, a clinical note and a manifest."""
    from core.demo import generate_demo_study

    try:
        sx, sy, sz = (float(v) for v in spacing.lower().split("x"))
    except ValueError:
        raise click.BadParameter("use XxYxZ in mm, e.g. 0.8x0.8x2.5") from None
    start = time.perf_counter()
    manifest = generate_demo_study(out, seed=seed, shape=_shape(shape), spacing_mm=(sx, sy, sz))
    click.echo(
        f"demo study (seed {seed}) written to {out} in {time.perf_counter() - start:.1f} s: "
        f"{manifest.n_ct_instances} CT instances, manifest {out / 'manifest.json'}"
    )


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=32, show_default=True)
@pass_app
def import_cmd(app: AppContext, paths: tuple[Path, ...], as_json: bool, batch_size: int) -> None:
    """Import DICOM files, folders and zip archives into the encrypted store (as received bytes)."""
    access = app.authorize(Permission.IMPORT_STUDIES)
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if not as_json and (done == total or done % batch_size == 0):
            click.echo(f"progress {done}/{total}", err=True)

    report = import_paths(app.store(), access, list(paths), batch_size=batch_size, progress=progress)
    elapsed = time.perf_counter() - start
    if as_json:
        echo_json({**report.__dict__, "seconds": round(elapsed, 3)})
    else:
        click.echo(
            f"{report.stored} stored, {report.already_present} already present, "
            f"{report.skipped_non_dicom} non-DICOM skipped, {len(report.damaged)} damaged, "
            f"{len(report.conflicts)} conflicting, {len(report.studies)} stud(y/ies), {elapsed:.1f} s"
        )
        for name, why in report.damaged:
            click.echo(f"damaged: {name}: {why}", err=True)
        for conflict in report.conflicts:
            click.echo(f"conflict: {conflict}", err=True)
    if not report.ok:
        raise click.exceptions.Exit(EXIT_ERROR)


@click.command()
@click.option("--patient-id", help="Only this patient's studies.")
@click.option(
    "--break-glass",
    "break_glass",
    metavar="REASON",
    help="Emergency access for roles without patient-data rights (flagged in the audit trail).",
)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def studies(app: AppContext, patient_id: str | None, break_glass: str | None, as_json: bool) -> None:
    """List the studies in the local store."""
    access = app.authorize(Permission.READ_PATIENT_DATA, break_glass_reason=break_glass)
    rows = list_studies(app.store(), access, patient_id=patient_id)
    if as_json:
        echo_json(rows)
        return
    for s in rows:
        click.echo(
            f"{s.study_date:8} {s.patient_id:12} {s.patient_name:24} {','.join(s.modalities):10} "
            f"{s.series:3} series {s.instances:5} inst  {s.status:8} {s.study_uid}"
        )

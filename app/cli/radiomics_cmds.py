"""`radplan radiomics`: IBSI-tagged feature extraction from image + mask files, and the IBSI phantom check."""

from __future__ import annotations

import math
from pathlib import Path

import click

from app.bootstrap import AppContext
from app.cli.common import pass_app
from core.radiomics.configs import CONFIGS
from core.security.roles import Permission

__all__ = ["radiomics"]


@click.group(invoke_without_command=True)
@click.option(
    "--image", type=click.Path(path_type=Path, exists=True), help="Image: NIfTI/NRRD/MHA file or DICOM series folder."
)
@click.option(
    "--mask", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="Label mask on the image grid."
)
@click.option(
    "--roi", metavar="NAME",
    help="ROI name: of an RT Structure Set or DICOM SEG given as --mask (--image: series folder), or with --study.",
)  # fmt: skip
@click.option(
    "--study", "study_uid", metavar="UID",
    help="A stored study: its image series and stored segmentation (SEG, else RTSTRUCT) ROI --roi; the features are "
    "stored with the study (--out optional).",
)  # fmt: skip
@click.option("--label", type=int, help="ROI label value in the mask (default: every non-zero voxel; clinical: 1).")
@click.option("--config", "config", type=click.Choice(sorted(CONFIGS)), default="clinical", show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Output CSV: ibsi_tag,feature,value.")
@pass_app
@click.pass_context
def radiomics(
    ctx: click.Context, app: AppContext, image: Path | None, mask: Path | None, roi: str | None,
    study_uid: str | None, label: int | None, config: str, out: Path | None,
) -> None:  # fmt: skip
    """Radiomics features with IBSI tags (pyradiomics name alongside where one exists).

    `radplan radiomics --image IMG --mask MASK --config NAME --out features.csv` extracts (or --image SERIES_DIR
    --mask RTSTRUCT.dcm|SEG.dcm --roi NAME, or --study UID --roi NAME from the store); configurations:
    clinical (pyradiomics, CT default), ibsi-digital-phantom, ibsi-a ... ibsi-e (IBSI 1 CT configurations).
    Values are in the image unit (HU for CT), mm, mm^2, mm^3 or dimensionless; see docs/radiomics.md.
    """
    if ctx.invoked_subcommand is not None:
        return
    if study_uid is not None:
        _stored(app, study_uid, roi, config, out, image, mask, label)
        return
    missing = [name for name, value in (("--image", image), ("--mask", mask), ("--out", out)) if value is None]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (or use a subcommand: batch, ibsi-check)")
    assert image is not None and mask is not None and out is not None
    access = app.authorize(Permission.RUN_ANALYSIS)
    from core.radiomics.service import extract_to_csv  # heavy (scipy, pyradiomics): loaded on use

    report = extract_to_csv(app.store(), access, image, mask, config, out, label, roi)
    click.echo(f"{report.n_features} features ({config}) written to {out} in {report.seconds:.1f} s")


def _stored(
    app: AppContext, study_uid: str, roi: str | None, config: str, out: Path | None, image: Path | None,
    mask: Path | None, label: int | None,
) -> None:  # fmt: skip
    if image is not None or mask is not None or label is not None:
        raise click.UsageError("--study takes the image and the segmentation from the store: no --image/--mask/--label")
    if roi is None:
        raise click.UsageError("--study needs --roi NAME (a segment of the stored SEG or an ROI of its RTSTRUCT)")
    access = app.authorize(Permission.RUN_ANALYSIS)
    from core.radiomics.extract import write_features_csv
    from core.radiomics.stored import extract_stored

    result = extract_stored(app.store(), access, study_uid, roi, config)
    click.echo(
        f"{len(result.features)} features ({config}, ROI {roi} from the stored {result.source_modality}) stored with "
        f"the study as version {result.version}"
    )
    if out is not None:
        write_features_csv(result.features, out)
        click.echo(f"written to {out}")


@radiomics.command("batch")
@click.option(
    "--manifest",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="CSV: case_id,image,mask[,label][,roi][,config]; relative paths from its folder.",
)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Output Parquet file.")
@click.option(
    "--config",
    "config",
    type=click.Choice(sorted(CONFIGS)),
    default="clinical",
    show_default=True,
    help="For cases without a config column value.",
)
@click.option("--scheduler", default="local", show_default=True, help="local (a LocalCluster) or tcp://HOST:PORT.")
@click.option("--workers", type=click.IntRange(1, 256), help="LocalCluster worker processes (default: CPUs, max 4).")
@click.option("--retries", type=click.IntRange(0, 10), default=2, show_default=True)
@click.option(
    "--resume/--fresh",
    default=True,
    show_default=True,
    help="Reuse the cases already done with unchanged inputs (progress journal or earlier output), or recompute all.",
)
@pass_app
def batch(
    app: AppContext, manifest: Path, out: Path, config: str, scheduler: str, workers: int | None, retries: int,
    resume: bool,
) -> None:  # fmt: skip
    """Extract a cohort on Dask distributed: one row per case, with its error instead of aborting the batch."""
    access = app.authorize(Permission.RUN_ANALYSIS)

    def progress(done: int, total: int, case_id: str, status: str) -> None:
        if status == "reused":
            click.echo(f"{done} reused, {total - done} to extract", err=True)
        else:
            click.echo(f"progress {done}/{total} {case_id} {status}", err=True)

    from core.radiomics.service import batch_to_parquet

    report = batch_to_parquet(
        app.store(), access, manifest, out, config, scheduler=scheduler, n_workers=workers, retries=retries,
        progress=progress, resume=resume,
    )  # fmt: skip
    click.echo(
        f"{report.n_ok} ok, {report.n_failed} failed ({report.n_reused} reused), written to {out} "
        f"in {report.seconds:.1f} s"
    )
    if report.n_failed:  # a ClickException: main() turns click's Exit into status 0 with standalone_mode=False
        raise click.ClickException(f"{report.n_failed} case(s) failed: see the error column of {out}")


@radiomics.command("ibsi-check")
@click.option(
    "--phantom",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Folder with image.nii.gz, mask.nii.gz and reference_values.csv (default: the copy in tests/data).",
)
def ibsi_check(phantom: Path | None) -> None:
    """Compute every IBSI 1 digital phantom feature and compare with the IBSI reference values."""
    from core.radiomics.ibsi_check import DEFAULT_PHANTOM_DIR, check_phantom

    rows = check_phantom(phantom or DEFAULT_PHANTOM_DIR)
    click.echo(f"{'tag':34} {'reference':>11} {'tolerance':>9} {'ours':>13}  result")
    for r in rows:
        ours = "-" if r.ours is None or not math.isfinite(r.ours) else f"{r.ours:.6g}"
        if r.reference is None:
            click.echo(f"{r.tag:34} {'-':>11} {'-':>9} {ours:>13}  n/a (no reference)")
            continue
        result = "pass" if r.passed else "FAIL"
        click.echo(f"{r.tag:34} {r.reference:>11.6g} {r.tolerance or 0:>9.3g} {ours:>13}  {result}")
    with_ref = [r for r in rows if r.reference is not None]
    passed = sum(1 for r in with_ref if r.passed)
    click.echo(f"{passed}/{len(with_ref)} features with a reference value pass ({len(rows) - len(with_ref)} without)")
    if passed != len(with_ref):
        raise click.ClickException(f"{len(with_ref) - passed} feature(s) outside the IBSI tolerance")

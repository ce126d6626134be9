"""`radplan dvh` and `radplan plan ...`: DVHs from DICOM files; treatment plans, their review, approval, PDF and
DICOM export."""

from __future__ import annotations

from pathlib import Path

import click

from app.bootstrap import AppContext
from app.cli.common import echo_json, env_or_prompt, pass_app
from core.security.roles import Permission, Role

__all__ = ["dvh", "plan"]

_DVH_KEYS = ("roi", "volume_cc", "min_gy", "max_gy", "mean_gy", "d99_gy", "d95_gy", "d5_gy", "d1_gy", "d0_03cc_gy")


@click.command()
@click.option(
    "--dose",
    "dose_path",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="RT Dose file (Gy).",
)
@click.option(
    "--struct",
    "struct_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="RT Structure Set file.",
)
@click.option(
    "--mask",
    "masks",
    multiple=True,
    metavar="NAME=PATH",
    help="A binary mask image (NIfTI, NRRD...) as ROI NAME (repeatable).",
)
@click.option("--roi", "rois", multiple=True, metavar="NAME", help="Only these ROIs (repeatable; default: all).")
@click.option(
    "--end-caps",
    type=click.Choice(["half_slice", "none"]),
    default="half_slice",
    show_default=True,
    help="How far the first and last contour planes extend (docs/plan.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per ROI.")
def dvh(
    dose_path: Path,
    struct_path: Path | None,
    masks: tuple[str, ...],
    rois: tuple[str, ...],
    end_caps: str,
    as_json: bool,
) -> None:
    """Dose-volume numbers per ROI: volume (cc), Dmin/Dmax/Dmean, D99, D95, D5, D1 and D0.03cc (Gy).

    Reads the files only (no store); sub-voxel structure sampling and trilinear dose interpolation.
    """
    from core.plan.dose_io import dvh_metrics, read_dose_file, read_mask_file, read_struct_file

    if struct_path is None and not masks:
        raise click.UsageError("give --struct RTSTRUCT.dcm and/or --mask NAME=PATH")
    try:
        dose = read_dose_file(dose_path)
        structures = read_struct_file(struct_path, end_caps=end_caps) if struct_path else None  # type: ignore[arg-type]
        extra = []
        for item in masks:
            name, sep, path = item.partition("=")
            if not sep or not name.strip() or not Path(path).is_file():
                raise click.BadParameter(f"{item!r}: use NAME=PATH of an existing mask image", param_hint="--mask")
            extra.append(read_mask_file(Path(path), name.strip()))
        rows = dvh_metrics(dose, structures, rois, extra=extra)
    except (ValueError, KeyError) as exc:
        raise click.ClickException(str(exc).strip("\"'")) from exc
    table = [{k: (getattr(r, k) if k == "roi" else round(float(getattr(r, k)), 4)) for k in _DVH_KEYS} for r in rows]
    if as_json:
        echo_json(table)
        return
    click.echo(
        f"{'ROI':16} {'cc':>9} {'min':>7} {'max':>7} {'mean':>7} {'D99':>7} {'D95':>7} {'D5':>7} {'D1':>7} "
        f"{'D0.03cc':>7}   (Gy)"
    )
    for t in table:
        click.echo(
            f"{t['roi']:16} " + " ".join(f"{t[k]:9.3f}" if k == "volume_cc" else f"{t[k]:7.2f}" for k in _DVH_KEYS[1:])
        )


@click.group()
def plan() -> None:
    """Treatment plans: create, show, review (physicist), approve or reject (clinician), PDF, DICOM export.

    Decision support only: every plan requires clinician confirmation.
    """


def _margins(value: str) -> tuple[float, float, float]:
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter("margins are X,Y,Z in mm, or one number for all three") from None
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or min(parts) < 0:
        raise click.BadParameter("margins are X,Y,Z in mm (non-negative), or one number for all three")
    return parts[0], parts[1], parts[2]


@plan.command("create")
@click.option("--study", "study_uid", required=True, metavar="UID", help="Study Instance UID in the store.")
@click.option("--dose-gy", type=float, default=None, help="Prescribed total dose (Gy).")
@click.option("--fractions", type=int, default=None, help="Number of fractions.")
@click.option(
    "--from-recommendation",
    is_flag=True,
    help="Take dose, fractions, technique and intent from the latest accepted recommendation.",
)
@click.option("--technique", default="SBRT", show_default=True, help="SBRT, IMRT, VMAT, 3D-CRT ...")
@click.option("--intent", type=click.Choice(["curative", "palliative"]), default="curative", show_default=True)
@click.option("--ctv-margin", default="0", show_default=True, help="GTV->CTV margin X,Y,Z (mm).")
@click.option("--ptv-margin", default="5", show_default=True, help="CTV->PTV margin X,Y,Z (mm).")
@click.option("--constraint-set", default=None, help="Constraint set id (default: chosen by fractionation).")
@click.option("--central", is_flag=True, help="Central tumour (5-fraction SBRT uses RTOG 0813).")
@click.option("--alpha-beta", "alpha_beta", multiple=True, metavar="ROI=GY", help="alpha/beta override (Gy).")
@click.option("--notes", default="", help="Free-text notes.")
@click.option(
    "--from",
    "from_plan",
    type=int,
    default=None,
    metavar="ID",
    help="Make a new version of this plan (same study) instead of an unrelated plan.",
)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def plan_create(app: AppContext, study_uid: str, dose_gy: float | None, fractions: int | None,
                from_recommendation: bool, technique: str, intent: str,
                ctv_margin: str, ptv_margin: str, constraint_set: str | None, central: bool,
                alpha_beta: tuple[str, ...], notes: str, from_plan: int | None, as_json: bool) -> None:  # fmt: skip
    """Create a draft plan for a stored study with a prescription entered by hand (--from ID: a new version of an
    existing plan; approved plans never change)."""
    from core.plan.builder import PlanOptions, build_plan_content, recommended_prescription
    from core.plan.model import Prescription
    from core.plan.radiobiology import AlphaBetaTable
    from core.plan.repository import create_plan, new_version

    access = app.authorize(Permission.EDIT_PLANS)
    try:
        overrides = {k.strip(): float(v) for k, v in (item.split("=", 1) for item in alpha_beta)}
        if from_recommendation:
            if dose_gy is not None or fractions is not None:
                raise click.UsageError("--from-recommendation takes dose and fractions from the recommendation")
            prescription = recommended_prescription(app.store(), access, study_uid)
        elif dose_gy is None or fractions is None:
            raise click.UsageError("give --dose-gy and --fractions, or --from-recommendation")
        else:
            prescription = Prescription(dose_gy, fractions, technique, intent)
        options = PlanOptions(ctv_margins_mm=_margins(ctv_margin), ptv_margins_mm=_margins(ptv_margin),
                              constraint_set=constraint_set, central=central,
                              alpha_beta=AlphaBetaTable(overrides=overrides), notes=notes)  # fmt: skip
        content = build_plan_content(app.store(), access, study_uid, prescription, options)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    record = (
        create_plan(app.store(), access, content)
        if from_plan is None
        else new_version(app.store(), access, from_plan, content)
    )
    if as_json:
        echo_json({"plan_id": record.plan_id, "version": record.version, "status": record.status,
                   "dose_computed": content.dose_computed})  # fmt: skip
        return
    click.echo(f"plan {record.plan_id} (version {record.version}) created as draft"
               + ("" if content.dose_computed else "; prescription only: dose not computed"))  # fmt: skip


@plan.command("list")
@click.option("--study", "study_uid", default=None, metavar="UID", help="Only this study's plans.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def plan_list(app: AppContext, study_uid: str | None, as_json: bool) -> None:
    """List plans: id, study, version, status."""
    from core.plan.repository import list_plans

    access = app.authorize(Permission.READ_PATIENT_DATA)
    rows = list_plans(app.store(), access, study_uid)
    if as_json:
        echo_json([{"plan_id": r[0], "study_uid": r[1], "version": r[2], "status": r[3]} for r in rows])
        return
    for plan_id, study, version, status in rows:
        click.echo(f"{plan_id:5}  v{version:<3} {status:10} {study}")


@plan.command("show")
@click.argument("plan_id", type=int)
@click.option("--break-glass", metavar="REASON", help="Emergency access (flagged in the audit trail).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def plan_show(app: AppContext, plan_id: int, break_glass: str | None, as_json: bool) -> None:
    """Show a plan: prescription with BED/EQD2, constraints, signatures."""
    import dataclasses

    from core.plan.repository import get_plan

    access = app.authorize(Permission.READ_PATIENT_DATA, break_glass_reason=break_glass)
    record = get_plan(app.store(), access, plan_id)
    c = record.content
    rx = c.prescription
    if as_json:
        data = dataclasses.asdict(record)
        data["prescription_biology"] = [
            rx.biological(c.alpha_beta["tumour_gy"]),
            rx.biological(c.alpha_beta["normal_gy"]),
        ]
        data["content"].pop("dvh_curves", None)
        echo_json(data)
        return
    click.echo(f"plan {record.plan_id} version {record.version}: {record.status.upper()}  study {record.study_uid}")
    click.echo(f"prescription: {rx.total_dose_gy:g} Gy in {rx.fractions} fractions ({rx.dose_per_fraction_gy:.2f} Gy "
               f"per fraction), {rx.technique}, {rx.intent}")  # fmt: skip
    for ab in (c.alpha_beta["tumour_gy"], c.alpha_beta["normal_gy"]):
        b = rx.biological(ab)
        click.echo(f"  alpha/beta {ab:g} Gy: BED {b['bed_gy']:.1f} Gy, EQD2 {b['eqd2_gy']:.1f} Gy")
    click.echo(f"constraints: {c.constraint_set_name}" + ("" if c.dose_computed else " (dose not computed)"))
    for r in c.constraint_results:
        value = "-" if r.value is None else f"{r.value:.2f}"
        click.echo(f"  {r.structure:24} {r.metric:9} {value:>9} {r.comparison} {r.limit:g} {r.unit:3} "
                   f"{r.status.upper():13} {r.note}")  # fmt: skip
    for s in record.signatures:
        click.echo(f"signed {s.decision} by {s.signer} ({s.role}) at {s.signed_at}: {s.meaning}"
                   + (f" - {s.comment}" if s.comment else ""))  # fmt: skip
    click.echo("Decision support - requires clinician confirmation.")


def _sign_password(app: AppContext) -> str:
    name = app.session().user.name
    return env_or_prompt("RADPLAN_SIGN_PASSWORD", f"Re-enter the password of {name} to sign: ")


@plan.command("review")
@click.argument("plan_id", type=int)
@click.option("--comment", default="", help="Review comment.")
@pass_app
def plan_review(app: AppContext, plan_id: int, comment: str) -> None:
    """Physicist review of a draft plan (electronic signature: RADPLAN_SIGN_PASSWORD or a prompt)."""
    from core.plan.repository import review_plan

    access = app.authorize(Permission.REVIEW_PLANS)
    record = review_plan(app.store(), access, plan_id, _sign_password(app), comment=comment)
    click.echo(f"plan {record.plan_id} reviewed by {access.user.name}")


@plan.command("approve")
@click.argument("plan_id", type=int)
@click.option("--comment", default="", help="Approval comment.")
@pass_app
def plan_approve(app: AppContext, plan_id: int, comment: str) -> None:
    """Clinician approval of a reviewed plan (electronic signature); the approved plan becomes immutable."""
    from core.plan.repository import APPROVAL_PERMISSION, approve_plan

    access = app.authorize(APPROVAL_PERMISSION)
    record = approve_plan(app.store(), access, plan_id, _sign_password(app), comment=comment)
    click.echo(f"plan {record.plan_id} approved by {access.user.name}")


@plan.command("reject")
@click.argument("plan_id", type=int)
@click.option("--reason", required=True, help="Why the plan is rejected.")
@pass_app
def plan_reject(app: AppContext, plan_id: int, reason: str) -> None:
    """Reject a draft or reviewed plan with a reason (physicist or clinician; electronic signature)."""
    from core.plan.repository import APPROVAL_PERMISSION, reject_plan

    role = app.session().user.role
    access = app.authorize(Permission.REVIEW_PLANS if role is Role.PHYSICIST else APPROVAL_PERMISSION)
    try:
        record = reject_plan(app.store(), access, plan_id, _sign_password(app), reason=reason)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"plan {record.plan_id} rejected by {access.user.name}")


@plan.command("pdf")
@click.option("--plan", "plan_id", type=int, required=True, help="Plan id.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="PDF file to write.")
@pass_app
def plan_pdf(app: AppContext, plan_id: int, out: Path) -> None:
    """Write the plan as a paginated PDF document for signature."""
    from core.plan.report import write_plan_pdf

    access = app.authorize(Permission.READ_PATIENT_DATA)
    pages = write_plan_pdf(app.store(), access, plan_id, out)
    click.echo(f"plan {plan_id}: {pages} page(s) written to {out}")


@plan.command("export")
@click.option("--plan", "plan_id", type=int, required=True, help="Plan id (approved).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Output folder.")
@pass_app
def plan_export(app: AppContext, plan_id: int, out: Path) -> None:
    """Export an approved plan as DICOM Encapsulated PDF (+ CTV/PTV RTSTRUCT), also kept in the store for
    'radplan pacs send --what pdf' when your role may store instances."""
    from core.plan.export import export_plan_dicom
    from core.security.roles import role_allows

    access = app.authorize(Permission.READ_PATIENT_DATA)
    can_store = role_allows(access.user.role, Permission.IMPORT_STUDIES)
    store_as = app.authorize(Permission.IMPORT_STUDIES) if can_store else None
    for path in export_plan_dicom(app.store(), access, plan_id, out, store_as=store_as):
        click.echo(f"written {path}")
    if store_as is not None:
        click.echo("stored with the study: send it with 'radplan pacs send NODE --study UID --what pdf'")
    else:
        click.echo("not stored in the local store (your role cannot store instances): import the files to send them")

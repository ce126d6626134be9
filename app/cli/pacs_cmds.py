"""`radplan pacs ...`: PACS nodes (admins), C-ECHO, C-FIND, retrieve (C-GET / C-MOVE) and C-STORE of results."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from app.bootstrap import AppContext
from app.cli.common import EXIT_ERROR, echo_json, pass_app
from core.security.roles import Permission

if TYPE_CHECKING:  # core.pacs (pynetdicom) is imported by the commands that need it, to keep `radplan` fast
    from core.pacs.association import LocalAE
    from core.pacs.retrieve import RetrieveProgress

__all__ = ["export", "pacs"]


def _local(app: AppContext) -> LocalAE:
    from core.pacs.association import LocalAE

    return LocalAE(ae_title=app.settings.ae_title, storage_port=app.settings.storage_port)


def _web_url(node: object) -> str:
    url = str(getattr(node, "dicomweb_url", ""))
    if not url:
        raise click.UsageError(
            f"node {getattr(node, 'name', '?')} has no DICOMweb URL ('radplan pacs add ... --dicomweb URL')"
        )
    return url


@click.group()
def pacs() -> None:
    """PACS nodes, query (C-FIND), retrieve (C-GET / C-MOVE) and sending results back (C-STORE)."""


@pacs.command("add")
@click.argument("name")
@click.option("--aet", required=True, help="The PACS's AE title.")
@click.option("--host", required=True)
@click.option("--port", required=True, type=click.IntRange(1, 65535))
@click.option("--tls", is_flag=True, help="DICOM TLS (TLS 1.2+, BCP 195); needs --ca.")
@click.option("--ca", "ca_file", type=click.Path(path_type=Path, dir_okay=False), help="CA of the PACS certificate.")
@click.option("--cert", "cert_file", type=click.Path(path_type=Path, dir_okay=False), help="Our client certificate.")
@click.option("--key", "key_file", type=click.Path(path_type=Path, dir_okay=False), help="Its private key.")
@click.option("--dicomweb", "dicomweb_url", default="", help="DICOMweb base URL of the same PACS (optional).")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds for connection, ACSE, DIMSE and network.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    default=3,
    show_default=True,
    help="Extra retrieve attempts after a dropped association (back-off 1 s, 2 s, 4 s, ...).",
)
@click.option("--replace", is_flag=True, help="Update the node if it exists.")
@pass_app
def add_cmd(
    app: AppContext,
    name: str,
    aet: str,
    host: str,
    port: int,
    tls: bool,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    dicomweb_url: str,
    timeout_s: float,
    retries: int,
    replace: bool,
) -> None:
    """Add a PACS node (admins)."""
    from core.pacs.nodes import PacsNode, add_node

    access = app.authorize(Permission.MANAGE_PACS)
    node = PacsNode(
        name=name,
        ae_title=aet,
        host=host,
        port=port,
        tls=tls,
        ca_file=str(ca_file or ""),
        cert_file=str(cert_file or ""),
        key_file=str(key_file or ""),
        dicomweb_url=dicomweb_url,
        timeout_s=timeout_s,
        retries=retries,
    )
    try:
        add_node(app.store(), access, node, replace=replace)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(f"PACS node {name}: {aet}@{host}:{port}{' (TLS)' if tls else ''}")


@pacs.command("remove")
@click.argument("name")
@pass_app
def remove_cmd(app: AppContext, name: str) -> None:
    """Remove a PACS node (admins)."""
    from core.pacs.nodes import remove_node

    remove_node(app.store(), app.authorize(Permission.MANAGE_PACS), name)
    click.echo(f"PACS node {name} removed")


@pacs.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def list_cmd(app: AppContext, as_json: bool) -> None:
    """The configured PACS nodes, and our own AE title and storage port."""
    from core.pacs.nodes import list_nodes

    app.session()
    nodes = list_nodes(app.store())
    if as_json:
        echo_json({"local": _local(app), "nodes": nodes})
        return
    click.echo(f"this workstation: AE {app.settings.ae_title}, storage port {app.settings.storage_port}")
    for n in nodes:
        click.echo(
            f"{n.name:16} {n.ae_title:16} {n.host}:{n.port}{'  TLS' if n.tls else ''}  timeout {n.timeout_s:g} s"
        )


@pacs.command("echo")
@click.argument("name")
@pass_app
def echo_cmd(app: AppContext, name: str) -> None:
    """C-ECHO (verification) to a node."""
    from core.pacs.nodes import get_node
    from core.pacs.query import echo

    app.session()
    node = get_node(app.store(), name)
    ms = echo(_local(app), node)
    click.echo(f"{name}: C-ECHO ok in {ms:.1f} ms")


@pacs.command("find")
@click.argument("name")
@click.option("--patient-id", default="", help="Patient ID (wildcards * and ? allowed).")
@click.option("--patient-name", default="", help="Patient name, DICOM form FAMILY^GIVEN (wildcards allowed).")
@click.option("--modality", default="", help="e.g. CT.")
@click.option("--date", default="", help="YYYYMMDD or FROM-TO (YYYYMMDD-YYYYMMDD), either end may be left open.")
@click.option("--accession", default="")
@click.option("--study", "study_uid", default="", help="Study Instance UID (with --level series: its series).")
@click.option("--level", type=click.Choice(["study", "series"]), default="study", show_default=True)
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="At most this many answers (the query is cancelled after them).",
)
@click.option("--dicomweb", "use_web", is_flag=True, help="Use the node's DICOMweb URL (QIDO-RS, study level).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def find_cmd(
    app: AppContext,
    name: str,
    patient_id: str,
    patient_name: str,
    modality: str,
    date: str,
    accession: str,
    study_uid: str,
    level: str,
    limit: int,
    use_web: bool,
    as_json: bool,
) -> None:
    """C-FIND (Study Root) on a node, or QIDO-RS with --dicomweb."""
    from core.pacs.nodes import get_node
    from core.pacs.query import FindQuery, find

    access = app.authorize(Permission.READ_PATIENT_DATA)
    query = FindQuery(
        level="series" if level == "series" else "study",
        patient_id=patient_id,
        patient_name=patient_name,
        modality=modality,
        date=date,
        accession=accession,
        study_uid=study_uid,
        limit=limit,
    )
    try:
        query.check()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    node = get_node(app.store(), name)
    if use_web:
        from core.pacs.dicomweb import qido_studies

        if level != "study":
            raise click.BadParameter("--dicomweb searches at study level only")
        found = qido_studies(app.store(), access, _web_url(node), query, timeout=node.timeout_s)
    else:
        found = find(app.store(), access, _local(app), node, query)
    if as_json:
        echo_json({"results": found.results, "truncated": found.truncated})
        return
    for r in found.results:
        what = (
            f"{r.series_number or '':>4} {r.modalities[0] if r.modalities else '':6} {r.n_instances or 0:5} inst"
            if r.level == "series"
            else f"{','.join(r.modalities):10} {r.n_series or 0:3} series {r.n_instances or 0:5} inst"
        )
        uid = r.series_uid if r.level == "series" else r.study_uid
        click.echo(f"{r.study_date:8} {r.patient_id:12} {r.patient_name:24} {what}  {uid}")
    if found.truncated:
        click.echo(f"more than {limit} answers: only the first {limit} are shown (narrow the query)", err=True)


@pacs.command("retrieve")
@click.argument("name")
@click.option("--study", "study_uid", required=True, help="Study Instance UID.")
@click.option("--series", "series_uid", default="", help="Only this series.")
@click.option(
    "--method",
    type=click.Choice(["get", "move"]),
    default="get",
    show_default=True,
    help="C-GET, or C-MOVE to our storage SCP (settings ae_title / storage_port).",
)
@click.option("--dicomweb", "use_web", is_flag=True, help="Use the node's DICOMweb URL (WADO-RS), whole study.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def retrieve_cmd(
    app: AppContext, name: str, study_uid: str, series_uid: str, method: str, use_web: bool, as_json: bool
) -> None:
    """Retrieve a study into the store: resumable (stored instances are skipped), retried when the association
    drops; Ctrl-C cancels (what arrived is kept)."""
    from core.pacs.nodes import get_node
    from core.pacs.retrieve import retrieve_study

    access = app.authorize(Permission.IMPORT_STUDIES)
    node = get_node(app.store(), name)
    if use_web:
        from core.pacs.dicomweb import wado_retrieve_study

        if series_uid:
            raise click.BadParameter("--dicomweb retrieves whole studies")
        web = wado_retrieve_study(app.store(), access, _web_url(node), study_uid, timeout=node.timeout_s)
        click.echo(f"study {study_uid}: {web.already_present} already stored, {web.stored} stored now, complete")
        return
    cancel = threading.Event()
    last = [0.0]

    def progress(p: RetrieveProgress) -> None:
        now = time.monotonic()
        if not as_json and (p.done == p.total or now - last[0] >= 0.5):
            last[0] = now
            click.echo(f"progress {p.done}/{p.total} instances, {p.mb_per_s:.1f} MB/s", err=True)

    def on_sigint(_sig: int, _frame: FrameType | None) -> None:
        cancel.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        report = retrieve_study(
            app.store(),
            access,
            _local(app),
            node,
            study_uid,
            series_uid=series_uid,
            method="move" if method == "move" else "get",
            progress=progress,
            cancel=cancel,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    if as_json:
        echo_json({**report.__dict__, "mb_per_s": round(report.mb_per_s, 2)})
    else:
        click.echo(
            f"study {study_uid}: {report.total} instances, {report.already_present} already stored, "
            f"{report.stored} stored now, {report.received_bytes / 1e6:.1f} MB in {report.seconds:.1f} s "
            f"({report.mb_per_s:.1f} MB/s), {report.attempts} attempt(s), "
            f"{'complete' if report.complete else 'INCOMPLETE'}"
        )
    for conflict in report.conflicts:
        click.echo(f"conflict: {conflict}", err=True)
    if report.conflicts or report.damaged:
        raise click.exceptions.Exit(EXIT_ERROR)


@pacs.command("send")
@click.argument("name")
@click.option("--study", "study_uid", required=True, help="Study Instance UID.")
@click.option("--what", type=click.Choice(["seg", "rtstruct", "pdf", "all"]), required=True)
@click.option("--dicomweb", "use_web", is_flag=True, help="Use the node's DICOMweb URL (STOW-RS).")
@pass_app
def send_cmd(app: AppContext, name: str, study_uid: str, what: str, use_web: bool) -> None:
    """Send stored results of a study (DICOM SEG, RTSTRUCT, PDF report) to a node with C-STORE (or STOW-RS)."""
    from core.pacs.nodes import get_node
    from core.pacs.send import send_results, send_results_web

    access = app.authorize(Permission.READ_PATIENT_DATA)
    node = get_node(app.store(), name)
    kind = {"seg": "seg", "rtstruct": "rtstruct", "pdf": "pdf"}.get(what, "all")
    if use_web:
        url = _web_url(node)
        report = send_results_web(app.store(), access, node, url, study_uid, kind, timeout=node.timeout_s)  # type: ignore[arg-type]
    else:
        report = send_results(app.store(), access, _local(app), node, study_uid, kind)  # type: ignore[arg-type]
    sent = ", ".join(f"{n} {k}" for k, n in report.sent.items())
    click.echo(f"sent to {name}: {sent}")
    for k in report.none_stored:
        click.echo(f"note: the study has no stored {k} result; none sent", err=True)
    for failure in report.failed:
        click.echo(f"failed: {failure}", err=True)
    if report.failed:
        raise click.exceptions.Exit(EXIT_ERROR)


@click.command("export")
@click.option("--study", "study_uid", required=True, help="Study Instance UID.")
@click.option(
    "--deidentify",
    "out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Write the study de-identified (PS3.15 Annex E basic profile, retain longitudinal temporal information "
    "with modified dates, clean descriptors) into this new or empty folder.",
)
@pass_app
def export(app: AppContext, study_uid: str, out: Path) -> None:
    """Export a study de-identified, for research or teaching."""
    from core.dicom.deid import DeidentificationError, export_study

    access = app.authorize(Permission.READ_PATIENT_DATA)
    try:
        report = export_study(app.store(), access, study_uid, out)
    except DeidentificationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{report.files} instances de-identified into {report.folder} (new study UID {report.new_study_uid})")

"""`radplan audit ...`: read, verify and export the hash-chained audit trail."""

from __future__ import annotations

from pathlib import Path

import click

from app.bootstrap import AppContext
from app.cli.common import echo_json, pass_app
from core.errors import StoreCorruptError
from core.security.roles import Permission
from core.store import audit as audit_log
from core.store.audit_dicom import audit_message_xml
from core.store.users import record_access

__all__ = ["audit"]


@click.group()
def audit() -> None:
    """The audit trail of every access to and change of patient data."""


@audit.command("list")
@click.option("--since", help="ISO date/time, e.g. 2026-11-01.")
@click.option("--actor")
@click.option("--action", help="Action name, '*' wildcards allowed (e.g. 'study.*').")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def audit_list(app: AppContext, since: str | None, actor: str | None, action: str | None, as_json: bool) -> None:
    access = app.authorize(Permission.VIEW_AUDIT)
    store = app.store()
    rows = list(audit_log.entries(store.conn, since=since, actor=actor, action=action))
    with store.transaction() as conn:
        record_access(conn, access, "audit.export", details={"format": "list", "entries": len(rows)})
    if as_json:
        echo_json(rows)
        return
    for e in rows:
        flag = " BREAK-GLASS" if e.break_glass else ""
        objs = ", ".join(f"{o.kind}:{o.identifier}" for o in e.objects)
        click.echo(f"{e.seq:6} {e.ts} {e.actor:12} {e.action:16} {e.outcome}{flag} {objs}")


@audit.command("verify")
@pass_app
def audit_verify(app: AppContext) -> None:
    """Re-compute the hash chain; exit 1 and list the problems if any row was edited, inserted or deleted."""
    access = app.authorize(Permission.VIEW_AUDIT)
    store = app.store()
    result = audit_log.verify(store.conn)
    try:
        with store.transaction() as conn:
            record_access(
                conn,
                access,
                "audit.verify",
                outcome="success" if result.ok else "serious_failure",
                details={"entries": result.checked, "problems": len(result.problems)},
            )
    except StoreCorruptError:  # a destroyed head anchor: the problems below say so
        pass
    if result.ok:
        click.echo(f"audit trail intact: {result.checked} entries, hash chain verified")
        return
    for problem in result.problems:
        click.echo(f"TAMPERED: {problem}", err=True)
    raise click.ClickException(f"audit trail verification failed ({len(result.problems)} problem(s))")


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["dicom", "json"]), default="dicom", show_default=True)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="dicom: a folder that receives one PS3.15 A.5 XML message per entry; json: a file.",
)
@click.option("--since")
@pass_app
def audit_export(app: AppContext, fmt: str, out: Path, since: str | None) -> None:
    access = app.authorize(Permission.VIEW_AUDIT)
    store = app.store()
    with store.transaction() as conn:
        record_access(conn, access, "audit.export", details={"format": fmt})
    rows = list(audit_log.entries(store.conn, since=since))
    if fmt == "json":
        import dataclasses
        import json

        out.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=2, default=str), encoding="utf-8")
    else:
        out.mkdir(parents=True, exist_ok=True)
        for entry, xml in zip(rows, audit_message_xml(rows), strict=True):
            (out / f"audit-{entry.seq:08d}.xml").write_bytes(xml)
    click.echo(f"exported {len(rows)} audit entries ({fmt}) to {out}")

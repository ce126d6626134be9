"""`radplan user ...`: accounts and roles (admins only)."""

from __future__ import annotations

import click

from app.bootstrap import AppContext
from app.cli.common import echo_json, env_or_prompt, pass_app
from core.security.roles import Permission, Role

__all__ = ["user"]


@click.group()
def user() -> None:
    """Manage user accounts (administrators)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@pass_app
def user_add(app: AppContext, name: str, role: str) -> None:
    """Add a user (new password: RADPLAN_NEW_PASSWORD or a prompt)."""
    access = app.authorize(Permission.MANAGE_USERS)
    password = env_or_prompt("RADPLAN_NEW_PASSWORD", f"New password for {name}: ", confirm=True)
    app.users().add(access, name, Role(role), password)
    click.echo(f"added {role} {name}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def user_list(app: AppContext, as_json: bool) -> None:
    app.authorize(Permission.MANAGE_USERS)
    users = app.users().list()
    if as_json:
        echo_json([{"name": u.name, "role": u.role.value, "active": u.active} for u in users])
        return
    for u in users:
        click.echo(f"{u.name:20} {u.role.value:12} {'active' if u.active else 'disabled'}")


@user.command("disable")
@click.argument("name")
@pass_app
def user_disable(app: AppContext, name: str) -> None:
    access = app.authorize(Permission.MANAGE_USERS)
    app.users().set_active(access, name, False)
    click.echo(f"disabled {name}")


@user.command("enable")
@click.argument("name")
@pass_app
def user_enable(app: AppContext, name: str) -> None:
    access = app.authorize(Permission.MANAGE_USERS)
    app.users().set_active(access, name, True)
    click.echo(f"enabled {name}")


@user.command("passwd")
@click.argument("name", required=False)
@pass_app
def user_passwd(app: AppContext, name: str | None) -> None:
    """Change your own password, or (admins) another user's. New password: RADPLAN_NEW_PASSWORD or a prompt."""
    session = app.session()
    target = name or session.user.name
    password = env_or_prompt("RADPLAN_NEW_PASSWORD", f"New password for {target}: ", confirm=True)
    if target == session.user.name:
        session.touch()
        app.users().change_own_password(session.user, password)
    else:
        app.users().set_password(app.authorize(Permission.MANAGE_USERS), target, password)
    click.echo(f"password changed for {target}")

"""`radplan init` and `radplan store ...`: create, inspect, back up, restore and rekey the encrypted store."""

from __future__ import annotations

from pathlib import Path

import click

from app.bootstrap import AppContext
from app.cli.common import echo_json, env_or_prompt, pass_app
from core.security.roles import Permission
from core.store import audit
from core.store.backup import create_backup, restore_backup
from core.store.database import schema_version
from core.store.keys import find_secure_keyring
from core.store.store import Store
from core.store.users import UserRepository, record_access

__all__ = ["init", "store"]

_KEY_MODE = click.Choice(["keyring", "passphrase"])


def _key_mode(app: AppContext, option: str | None) -> str | None:
    return option or app.settings.key_mode or None


@click.command()
@click.option("--admin", "admin_name", required=True, metavar="NAME", help="Name of the first administrator.")
@click.option(
    "--key-mode",
    type=_KEY_MODE,
    help="Where the store key lives (default: keyring when a secure "
    "one exists, else a passphrase from RADPLAN_PASSPHRASE or a prompt).",
)
@pass_app
def init(app: AppContext, admin_name: str, key_mode: str | None) -> None:
    """Create the encrypted store and its first administrator (password: RADPLAN_PASSWORD or a prompt)."""
    password = env_or_prompt("RADPLAN_PASSWORD", f"Password for {admin_name}: ", confirm=True)
    store = Store.create(
        app.settings.data_dir,
        key_mode=_key_mode(app, key_mode),  # type: ignore[arg-type]
        passphrase=lambda p: env_or_prompt("RADPLAN_PASSPHRASE", p, confirm=True),
    )
    try:
        UserRepository(store).create_first_admin(admin_name, password)
        with store.transaction() as conn:
            audit.record(
                conn,
                actor=admin_name,
                role="admin",
                action="store.init",
                details={"key_mode": store.meta.key_mode},
            )
    finally:
        store.close()
    click.echo(
        f"created store {store.meta.store_id} in {app.settings.data_dir} "
        f"(key in {store.meta.key_mode}); first admin: {admin_name}"
    )


@click.group()
def store() -> None:
    """Inspect, back up, restore and rekey the encrypted store."""


@store.command("info")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def store_info(app: AppContext, as_json: bool) -> None:
    """Store id, key mode, schema version, size, integrity of the database and of every encrypted instance file
    (no patient data)."""
    s = app.store()
    backend = find_secure_keyring()
    info = {
        "data_dir": str(s.paths.data_dir),
        "store_id": s.meta.store_id,
        "created": s.meta.created,
        "key_mode": s.meta.key_mode,
        "keyring_backend": type(backend).__module__ if backend is not None else None,
        "schema_version": schema_version(s.conn),
        "database_bytes": s.paths.database.stat().st_size,
        "cipher_integrity": [r[0] for r in s.query("PRAGMA cipher_integrity_check")] or ["ok"],
        "integrity": s.query("PRAGMA quick_check")[0][0],
        "instance_files": s.query("SELECT count(*) FROM instances WHERE blob IS NOT NULL")[0][0],
        "instance_file_problems": s.blobs.problems(
            str(r[0]) for r in s.query("SELECT blob FROM instances WHERE blob IS NOT NULL")
        ),
    }
    if as_json:
        echo_json(info)
    else:
        for key, value in info.items():
            click.echo(f"{key:18} {value}")


@store.command("backup")
@click.argument("path", type=click.Path(path_type=Path))
@pass_app
def store_backup(app: AppContext, path: Path) -> None:
    """Write an encrypted backup (passphrase: RADPLAN_BACKUP_PASSPHRASE or a prompt). Admins only."""
    access = app.authorize(Permission.MANAGE_STORE)
    phrase = env_or_prompt("RADPLAN_BACKUP_PASSPHRASE", "Backup passphrase: ", confirm=True)
    info = create_backup(app.store(), path, phrase, actor=access.user.name, role=access.user.role.value)
    click.echo(f"backup written: {info.path} ({info.size_bytes} bytes, schema {info.schema_version})")


@store.command("restore")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--key-mode", type=_KEY_MODE)
@pass_app
def store_restore(app: AppContext, path: Path, key_mode: str | None) -> None:
    """Restore a backup into an empty data directory, under a new store key."""
    phrase = env_or_prompt("RADPLAN_BACKUP_PASSPHRASE", "Backup passphrase: ")
    restored = restore_backup(
        path,
        app.settings.data_dir,
        phrase,
        key_mode=_key_mode(app, key_mode),  # type: ignore[arg-type]
        passphrase=lambda p: env_or_prompt("RADPLAN_PASSPHRASE", p),
    )
    restored.close()
    click.echo(f"restored into {app.settings.data_dir} (store {restored.meta.store_id})")


@store.command("rekey")
@pass_app
def store_rekey(app: AppContext) -> None:
    """Re-encrypt the store under a new random key (passphrase mode: RADPLAN_NEW_PASSPHRASE or a prompt)."""
    access = app.authorize(Permission.MANAGE_STORE)
    s = app.store()
    s.rekey(passphrase=lambda p: env_or_prompt("RADPLAN_NEW_PASSPHRASE", p, confirm=True))
    with s.transaction() as conn:
        record_access(conn, access, "store.rekey", details={"key_mode": s.meta.key_mode})
    click.echo(f"store {s.meta.store_id} re-encrypted under a new key ({s.meta.key_mode})")

"""Encrypted, portable backups of the whole store.

A backup file is: the magic line, a JSON header (format, store id, schema version, time, scrypt salt and
parameters, key check value), then a complete SQLCipher database encrypted under a key derived from the backup
passphrase, with every instance's bytes inline (instances kept in encrypted files, core.store.blobs, are copied
into it). It is independent of the machine's keyring, so it is also the way to move a store or to recover from a
lost keyring entry. Restore goes into an empty data directory and re-encrypts under a fresh store key.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import StoreCorruptError, StoreExistsError, WrongKeyError
from core.store import audit
from core.store.database import PAGE_SIZE, connect, schema_version
from core.store.keys import ScryptParams, key_check_value
from core.store.meta import KeyMode, StorePaths
from core.store.store import PassphraseSource, Store

__all__ = ["BACKUP_MAGIC", "BackupInfo", "create_backup", "read_backup_header", "restore_backup"]

BACKUP_MAGIC = b"RADPLAN-BACKUP-1\n"
_MIN_PASSPHRASE = 12


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    store_id: str
    schema_version: int
    created: str
    size_bytes: int


def _derive(passphrase: str, salt: bytes, params: ScryptParams) -> bytes:
    return params.derive(passphrase, salt)


def create_backup(store: Store, path: Path, passphrase: str, *, actor: str, role: str) -> BackupInfo:
    """Write an encrypted backup to path (never overwrites an existing file)."""
    if len(passphrase) < _MIN_PASSPHRASE:
        raise ValueError(f"a backup passphrase needs at least {_MIN_PASSPHRASE} characters")
    path = Path(path)
    if path.exists():
        raise StoreExistsError(f"{path} exists; choose a new file name for the backup")
    params, salt = ScryptParams(), secrets.token_bytes(16)
    key = _derive(passphrase, salt, params)
    with store.transaction() as conn:  # the backup itself is audited, and included in the backup
        audit.record(conn, actor=actor, role=role, action="store.backup", details={"file": path.name})
    created = audit.entries(store.conn, action="store.backup")
    last = list(created)[-1]
    fd, tmp_db = tempfile.mkstemp(prefix=".radplan-backup-", suffix=".db", dir=path.parent)
    os.close(fd)
    os.unlink(tmp_db)  # sqlcipher_export needs to create the file itself
    try:
        with store._lock:
            store.conn.execute(f"ATTACH DATABASE ? AS backup KEY \"x'{key.hex()}'\"", (tmp_db,))
            try:
                store.conn.execute(f"PRAGMA backup.cipher_page_size = {int(store.meta.page_size)}")
                store.conn.execute("SELECT sqlcipher_export('backup')")
                _inline_instance_files(store)
                store.conn.execute(f"PRAGMA backup.user_version = {schema_version(store.conn)}")
            finally:
                store.conn.execute("DETACH DATABASE backup")
        header = {
            "format": 1,
            "store_id": store.meta.store_id,
            "schema_version": schema_version(store.conn),
            "created": last.ts,
            "kdf": {"name": "scrypt", "n": params.n, "r": params.r, "p": params.p, "salt": salt.hex()},
            "key_check": key_check_value(key),
            "page_size": store.meta.page_size,  # the store's own; backups written before this field have 4 KiB
        }
        blob = Path(tmp_db).read_bytes()
        header_bytes = json.dumps(header, sort_keys=True).encode()
        with open(path, "xb") as out:
            out.write(BACKUP_MAGIC + len(header_bytes).to_bytes(4, "big") + header_bytes + blob)
            out.flush()
            os.fsync(out.fileno())
    finally:
        Path(tmp_db).unlink(missing_ok=True)
    return BackupInfo(path, store.meta.store_id, schema_version(store.conn), last.ts, path.stat().st_size)


def _inline_instance_files(store: Store) -> None:
    """Copy every instance kept in an encrypted file into the attached backup database's instance_data, so the
    backup is one self-contained file (the restored store reads them inline). One instance in memory at a time."""
    rows = store.conn.execute("SELECT id, blob FROM main.instances WHERE blob IS NOT NULL ORDER BY id").fetchall()
    store.conn.execute("BEGIN")
    try:
        for instance_id, name in rows:
            store.conn.execute(
                "INSERT INTO backup.instance_data (instance_fk, data) VALUES (?, ?)",
                (instance_id, store.blobs.read(str(name))),
            )
        store.conn.execute("UPDATE backup.instances SET blob = NULL")
    except BaseException:
        store.conn.execute("ROLLBACK")
        raise
    store.conn.execute("COMMIT")


def read_backup_header(path: Path) -> tuple[dict[str, object], int]:
    """The backup's JSON header and the offset of its database bytes."""
    with open(path, "rb") as fh:
        head = fh.read(len(BACKUP_MAGIC) + 4)
        if not head.startswith(BACKUP_MAGIC):
            raise StoreCorruptError(f"{path} is not a RadPlan backup")
        length = int.from_bytes(head[len(BACKUP_MAGIC) :], "big")
        try:
            header = json.loads(fh.read(length))
        except ValueError as exc:
            raise StoreCorruptError(f"{path}: damaged backup header") from exc
    return header, len(BACKUP_MAGIC) + 4 + length


def restore_backup(
    path: Path,
    data_dir: Path,
    backup_passphrase: str,
    *,
    key_mode: KeyMode | None = None,
    passphrase: PassphraseSource | None = None,
) -> Store:
    """Restore a backup into an empty data directory, re-encrypted under a new store key."""
    paths = StorePaths(Path(data_dir))
    if paths.exists():
        raise StoreExistsError(f"{paths.data_dir} already holds a store; restore into an empty data directory")
    header, offset = read_backup_header(path)
    kdf = header["kdf"]
    assert isinstance(kdf, dict)
    params = ScryptParams(n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"]))
    key = _derive(backup_passphrase, bytes.fromhex(str(kdf["salt"])), params)
    if key_check_value(key) != header["key_check"]:
        raise WrongKeyError("wrong backup passphrase; nothing was restored")
    kwargs: dict[str, PassphraseSource] = {} if passphrase is None else {"passphrase": passphrase}
    page_size = int(header.get("page_size", PAGE_SIZE))  # type: ignore[call-overload]
    if passphrase is None:  # today's page size either way
        new_store = Store.create(paths.data_dir, key_mode=key_mode)
    else:
        new_store = Store.create(paths.data_dir, key_mode=key_mode, passphrase=passphrase)
    new_key = new_store._key
    new_store.close()
    tmp, exported = paths.data_dir / ".restore.db", paths.data_dir / ".restore-new.db"
    with open(path, "rb") as fh:
        fh.seek(offset)
        tmp.write_bytes(fh.read())
    try:
        src = connect(tmp, key, key_is_verified=True, page_size=page_size)
        try:
            integrity = src.execute("PRAGMA integrity_check").fetchone()[0]
            if integrity != "ok":
                raise StoreCorruptError(f"the backup's database fails its integrity check: {integrity}")
            # Export the restored copy under the new store's key and page size (a backup of an older 4 KiB store
            # comes back as a 64 KiB one), then put it in place.
            src.execute(f"ATTACH DATABASE ? AS target KEY \"x'{new_key.hex()}'\"", (str(exported),))
            try:
                src.execute(f"PRAGMA target.cipher_page_size = {int(new_store.meta.page_size)}")
                src.execute("SELECT sqlcipher_export('target')")
                if src.execute("SELECT 1 FROM target.sqlite_master WHERE name = 'storage_keys'").fetchone():
                    # every instance is inline in a backup: the restored store makes itself a new file key
                    src.execute("DELETE FROM target.storage_keys")
                src.execute(f"PRAGMA target.user_version = {schema_version(src)}")
            finally:
                src.execute("DETACH DATABASE target")
        finally:
            src.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(paths.database) + suffix).unlink(missing_ok=True)
        os.replace(exported, paths.database)
    finally:
        for name in (tmp, exported):
            for suffix in ("", "-wal", "-shm"):
                Path(str(name) + suffix).unlink(missing_ok=True)
    restored = Store.open(paths.data_dir, **kwargs)
    with restored.transaction() as conn:
        audit.record(
            conn,
            actor="system",
            role="",
            action="store.restore",
            details={"backup_store_id": header["store_id"], "backup_created": header["created"]},
        )
    return restored

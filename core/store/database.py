"""SQLCipher connection and numbered schema migrations.

One long-lived connection per process, WAL journal, FULL synchronous (an import killed with SIGKILL or a power cut
leaves the last committed transaction), temp storage in memory so no plaintext temp file reaches the disk.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import sqlcipher3

from core.errors import StoreCorruptError, WrongKeyError

__all__ = [
    "NEW_STORE_PAGE_SIZE",
    "PAGE_SIZE",
    "Connection",
    "apply_migrations",
    "check_file",
    "connect",
    "key_pragma",
    "migrations",
    "schema_version",
]

#: SQLCipher page size of stores created before page sizes were recorded (store.json without "page_size"), and of
#: backup files (SQLCipher's default for attached databases).
PAGE_SIZE = 4096
#: Page size of new stores: every page carries its own IV and HMAC, so 64 KiB pages cost 41 % less CPU to write
#: and 34 % less to read than 4 KiB pages for pixel-data blobs (measured in docs/store.md, bench/store_io.py).
NEW_STORE_PAGE_SIZE = 65536
if TYPE_CHECKING:  # sqlcipher3 ships no type stubs; its Connection has exactly sqlite3's DB-API
    import sqlite3

    from core.store.blobs import BlobStore

    class Connection(sqlite3.Connection):
        blobs: BlobStore

else:

    class Connection(sqlcipher3.Connection):
        """A SQLCipher connection that carries its store's instance files (``blobs``, set by the Store)."""

        blobs = None


_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def key_pragma(key: bytes) -> str:
    return f"PRAGMA key = \"x'{key.hex()}'\""


def check_file(path: Path, page_size: int = PAGE_SIZE) -> None:
    """Refuse a database file that is empty or truncated before SQLCipher sees it."""
    size = path.stat().st_size
    if size == 0 or size % page_size != 0:
        raise StoreCorruptError(
            f"the database file {path} is damaged or truncated ({size} bytes is not a whole number of "
            f"{page_size}-byte pages). It was not modified; restore it from a backup ('radplan store restore')."
        )


def connect(
    path: Path, key: bytes, *, create: bool = False, key_is_verified: bool = False, page_size: int = PAGE_SIZE
) -> Connection:
    """Open (or with create=True, create) the encrypted database.

    key_is_verified says the key matched the store's key-check value, so a failure to read means a damaged file
    rather than a wrong key. page_size: the store's SQLCipher page size (store.json), fixed when it was created.
    """
    if not create:
        if not path.exists():
            raise StoreCorruptError(
                f"the database file {path} is missing while the store metadata exists; it is not recreated. "
                "Restore it from a backup ('radplan store restore')."
            )
        check_file(path, page_size)
    conn: Connection = sqlcipher3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=30.0, factory=Connection
    )
    try:
        conn.execute("PRAGMA cipher_log_level = NONE")  # errors are ours to report, not SQLCipher's stderr
        conn.execute(key_pragma(key))
        conn.execute(f"PRAGMA cipher_page_size = {int(page_size)}")
        conn.execute("PRAGMA temp_store = MEMORY")
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlcipher3.DatabaseError as exc:
            if key_is_verified:
                raise StoreCorruptError(
                    f"the database file {path} cannot be decrypted although the key is right: it is damaged "
                    f"({exc}). It was not modified; restore it from a backup."
                ) from exc
            raise WrongKeyError("the key does not open this store; nothing was modified") from exc
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
    except BaseException:
        conn.close()
        raise
    return conn


def migrations() -> list[tuple[int, str, str]]:
    """(number, name, sql) for every packaged migration, in order."""
    found = []
    for entry in resources.files("core.store.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    for expected, (number, name, _) in enumerate(found, start=1):
        if number != expected:
            raise RuntimeError(f"migration numbering has a gap or duplicate at {name}")
    return found


def schema_version(conn: Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def apply_migrations(conn: Connection) -> int:
    """Bring the schema up to date, one transaction per migration. Returns the new version."""
    current = schema_version(conn)
    known = migrations()
    if current > len(known):
        raise StoreCorruptError(
            f"the store has schema version {current}, newer than this RadPlan knows ({len(known)}): "
            "upgrade RadPlan before opening it"
        )
    for number, _name, sql in known[current:]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return schema_version(conn)


def _split_sql(sql: str) -> list[str]:
    """Split a migration into statements; CREATE TRIGGER bodies (BEGIN ... END;) stay whole."""
    statements, buf = [], []
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        buf.append(line)
        text = "\n".join(buf)
        in_trigger = text.lstrip().upper().startswith("CREATE TRIGGER")
        if stripped.endswith(";") and (not in_trigger or stripped.upper() == "END;"):
            statements.append(text)
            buf = []
    if buf:
        statements.append("\n".join(buf))
    return statements

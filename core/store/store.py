"""The Store: creates and opens the encrypted database with its key, runs migrations, rekeys.

Key handling (see core/store/keys.py): the 256-bit raw key lives in a secure OS keyring (mode "keyring") or is
wrapped under a passphrase in store.json (mode "passphrase"). A rekey is crash-safe: the new key is saved as
"pending" before the database is rekeyed, and whichever key opens the database is promoted on the next open.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from core.errors import (
    KeyringUnavailableError,
    StoreCorruptError,
    StoreExistsError,
    StoreNotFoundError,
    WrongKeyError,
)
from core.store.blobs import BlobStore, ensure_storage_key
from core.store.database import NEW_STORE_PAGE_SIZE, Connection, apply_migrations, connect, key_pragma
from core.store.keys import (
    KeyringSlot,
    WrappedKey,
    find_secure_keyring,
    key_check_value,
    new_key,
    unwrap_key,
    wrap_key,
)
from core.store.meta import KeyMode, StoreMeta, StorePaths

__all__ = ["PassphraseSource", "Store", "utc_now"]

#: Asked for a passphrase with a prompt text; returns it (from the environment, a dialog or the terminal).
PassphraseSource = Callable[[str], str]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _no_passphrase(prompt: str) -> str:
    raise WrongKeyError(f"a passphrase is needed ({prompt.strip()}): set RADPLAN_PASSPHRASE or run interactively")


class Store:
    """An open encrypted store. One per process; use `transaction()` for every write."""

    def __init__(self, paths: StorePaths, meta: StoreMeta, conn: Connection, key: bytes) -> None:
        self.paths = paths
        self.meta = meta
        self.conn = conn
        self._key = key  # needed by backup/restore inside this package; never logged or written
        self._lock = threading.RLock()
        self._blobs: BlobStore | None = None  # set by _attach_blobs once the schema is current

    @property
    def blobs(self) -> BlobStore:
        """The store's encrypted instance files (core.store.blobs)."""
        if self._blobs is None:
            raise RuntimeError("the store's instance files are not attached yet (schema not migrated)")
        return self._blobs

    def _attach_blobs(self) -> None:
        """Attach the instance files, with their key from the database; `conn.blobs` serves readers of a bare
        connection."""
        self._blobs = BlobStore(self.paths.instances, ensure_storage_key(self.conn, utc_now()))
        self.conn.blobs = self._blobs

    # ----------------------------------------------------------------- create / open
    @classmethod
    def create(
        cls,
        data_dir: Path,
        *,
        key_mode: KeyMode | None = None,
        passphrase: PassphraseSource = _no_passphrase,
        page_size: int = NEW_STORE_PAGE_SIZE,
    ) -> Store:
        """Create a new store in data_dir. key_mode None picks the keyring when a secure one exists. page_size: the
        database's SQLCipher page size, recorded in store.json (a restore keeps its backup's)."""
        paths = StorePaths(Path(data_dir))
        if paths.exists():
            raise StoreExistsError(f"a store already exists in {paths.data_dir}; it was left untouched")
        if key_mode is None:
            key_mode = "keyring" if find_secure_keyring() is not None else "passphrase"
        store_id = str(uuid.uuid4())
        key = new_key()
        wrapped = None
        if key_mode == "keyring":
            KeyringSlot().save(store_id, key)
        else:
            phrase = passphrase("New store passphrase: ")
            wrapped = wrap_key(key, phrase, aad=store_id.encode()).to_json()
        meta = StoreMeta(
            store_id=store_id,
            created=utc_now(),
            key_mode=key_mode,
            key_check=key_check_value(key),
            wrapped_key=wrapped,
            page_size=page_size,
        )
        paths.data_dir.mkdir(parents=True, exist_ok=True)
        paths.data_dir.chmod(0o700)
        conn = connect(paths.database, key, create=True, page_size=page_size)
        paths.database.chmod(0o600)  # SQLite gives the -wal/-shm files the same mode
        try:
            apply_migrations(conn)
        except BaseException:
            conn.close()
            paths.database.unlink(missing_ok=True)
            raise
        meta.save(paths.meta)  # last: a store exists only once its database is complete
        store = cls(paths, meta, conn, key)
        store._attach_blobs()
        return store

    @classmethod
    def open(cls, data_dir: Path, *, passphrase: PassphraseSource = _no_passphrase) -> Store:
        paths = StorePaths(Path(data_dir))
        if not paths.meta.exists():
            if paths.database.exists():
                raise StoreCorruptError(
                    f"{paths.database} exists but its metadata {paths.meta.name} is missing; the store is not "
                    "recreated. Restore store.json or the whole store from a backup."
                )
            raise StoreNotFoundError(f"no store in {paths.data_dir}: create one with 'radplan init'")
        meta = StoreMeta.load(paths.meta)
        key, pending = _load_keys(meta, passphrase)
        conn, used = _open_with(paths, key, pending, meta)
        store = cls(paths, meta, conn, used)
        try:
            store._settle_pending_rekey(promote=pending is not None and used == pending, pending_key=pending)
            apply_migrations(conn)
            store._attach_blobs()
        except BaseException:
            conn.close()
            raise
        return store

    @staticmethod
    def needs_passphrase(data_dir: Path) -> bool:
        """Whether opening the store in data_dir asks for a passphrase (passphrase mode). Reads only store.json: no
        key, no database. False when there is no store or store.json is unreadable (`open` then says why)."""
        paths = StorePaths(Path(data_dir))
        if not paths.meta.exists():
            return False
        try:
            return StoreMeta.load(paths.meta).key_mode == "passphrase"
        except StoreCorruptError:
            return False

    @classmethod
    def open_with_key(cls, data_dir: Path, key: bytes) -> Store:
        """Open with the raw key handed over by the process that opened the store (the worker host's pipe)."""
        paths = StorePaths(Path(data_dir))
        if not paths.meta.exists():
            raise StoreNotFoundError(f"no store in {paths.data_dir}: create one with 'radplan init'")
        meta = StoreMeta.load(paths.meta)
        if key_check_value(key) not in (meta.key_check, meta.pending_key_check):
            raise WrongKeyError("the key handed over does not open this store; nothing was modified")
        conn = connect(paths.database, key, key_is_verified=True, page_size=meta.page_size)
        try:
            apply_migrations(conn)
            store = cls(paths, meta, conn, key)
            store._attach_blobs()
        except BaseException:
            conn.close()
            raise
        return store

    def handover_key(self) -> bytes:
        """The raw key, only to hand to our own worker process over a pipe (never argv, env, logs or disk)."""
        return self._key

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- transactions
    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[object, ...] | dict[str, object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self.conn.execute(sql, params).fetchall())

    # ----------------------------------------------------------------- key rotation
    def rekey(self, *, passphrase: PassphraseSource = _no_passphrase) -> None:
        """Re-encrypt the database under a fresh random key (crash-safe; see module docstring)."""
        with self._lock:
            key = new_key()
            meta = self.meta
            if meta.key_mode == "keyring":
                KeyringSlot().save(_pending_name(meta), key)
                meta = meta.with_changes(pending_key_check=key_check_value(key))
            else:
                phrase = passphrase("New store passphrase: ")
                wrapped = wrap_key(key, phrase, aad=meta.store_id.encode()).to_json()
                meta = meta.with_changes(pending_key_check=key_check_value(key), pending_wrapped_key=wrapped)
            meta.save(self.paths.meta)
            self.meta = meta
            self.conn.execute(key_pragma(key).replace("PRAGMA key", "PRAGMA rekey"))
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._key = key
            self._settle_pending_rekey(promote=True, pending_key=key)

    def _settle_pending_rekey(self, *, promote: bool, pending_key: bytes | None) -> None:
        """Promote the pending key when it is the one that opens the database, else forget it."""
        meta = self.meta
        if meta.pending_key_check is None:
            return
        if promote and pending_key is not None:
            if meta.key_mode == "keyring":
                KeyringSlot().save(meta.store_id, pending_key)
            meta = meta.with_changes(
                key_check=meta.pending_key_check,
                wrapped_key=meta.pending_wrapped_key if meta.key_mode == "passphrase" else None,
            )
        meta = meta.with_changes(pending_key_check=None, pending_wrapped_key=None)
        meta.save(self.paths.meta)
        if self.meta.key_mode == "keyring":
            KeyringSlot().delete(_pending_name(self.meta))
        self.meta = meta


def _pending_name(meta: StoreMeta) -> str:
    return f"{meta.store_id}.pending"


def _load_keys(meta: StoreMeta, passphrase: PassphraseSource) -> tuple[bytes | None, bytes | None]:
    """(main key, pending key) as far as they can be obtained; a wrong key or passphrase raises WrongKeyError."""
    aad = meta.store_id.encode()
    if meta.key_mode == "keyring":
        slot = KeyringSlot()
        main = slot.load(meta.store_id)
        pending = None
        if meta.pending_key_check is not None:
            with contextlib.suppress(Exception):
                pending = slot.load(_pending_name(meta))
    elif meta.key_mode == "passphrase":
        if meta.wrapped_key is None:
            raise StoreCorruptError("store.json says passphrase mode but holds no wrapped key")
        phrase = passphrase("Store passphrase: ")
        main, pending = None, None
        with contextlib.suppress(WrongKeyError):
            main = unwrap_key(WrappedKey.from_json(meta.wrapped_key), phrase, aad=aad)
        if meta.pending_wrapped_key is not None:
            with contextlib.suppress(WrongKeyError):
                pending = unwrap_key(WrappedKey.from_json(meta.pending_wrapped_key), phrase, aad=aad)
        if main is None and pending is None:
            raise WrongKeyError("wrong passphrase: the store key could not be unwrapped; nothing was modified")
    else:
        raise KeyringUnavailableError(f"unknown key mode {meta.key_mode!r} in store.json")
    if main is not None and key_check_value(main) != meta.key_check and pending is None:
        raise WrongKeyError("the key found for this store does not match it; nothing was modified")
    return main, pending


def _open_with(
    paths: StorePaths, main: bytes | None, pending: bytes | None, meta: StoreMeta
) -> tuple[Connection, bytes]:
    """Open with the main key, or with the pending key after an interrupted rekey."""
    candidates = [k for k in (main, pending) if k is not None]
    last: Exception | None = None
    for key in candidates:
        verified = key_check_value(key) in (meta.key_check, meta.pending_key_check)
        try:
            conn = connect(
                paths.database, key, key_is_verified=verified and len(candidates) == 1, page_size=meta.page_size
            )
        except (WrongKeyError, StoreCorruptError) as exc:
            last = exc
            continue
        return conn, key
    if isinstance(last, WrongKeyError) and any(key_check_value(k) == meta.key_check for k in candidates):
        raise StoreCorruptError(
            f"the database file {paths.database} cannot be decrypted although the key is right: it is damaged. "
            "It was not modified; restore it from a backup ('radplan store restore')."
        ) from last
    assert last is not None
    raise last

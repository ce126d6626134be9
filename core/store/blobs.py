"""Instance files: the received bytes of each DICOM instance, encrypted at rest outside the SQLCipher database.

Writing 150 MB of pixel data into SQLCipher pages (AES-CBC and an HMAC per page, WAL then checkpoint) cost about
1 CPU-second, most of a PACS retrieve's storage cost. Each instance is now one file under
``<data dir>/instances/<2 hex>/<name>``, sealed with AES-256-GCM:

    b"RPI1" | 12-byte random nonce | ciphertext | 16-byte tag      (associated data: b"RPI1" + name)

* The 256-bit data key is random, made once per store and kept in the encrypted database (``storage_keys``); a
  database rekey does not touch the files. Sub-keys for sealing and naming are derived from it with HKDF-SHA256.
* The name is HMAC-SHA256(naming key, SHA-256 of the bytes): content-addressed (writing the same bytes twice is one
  file), yet it does not reveal which known file a store holds. The name is the associated data, so a file moved
  or swapped to another name fails authentication like a modified one.
* Writes are crash-safe: a temporary file, fsync, rename, fsync of the folder, and only then the database row that
  names it. A crash in between leaves an unreferenced file, never a row without its file.

Readers select ``i.blob, d.data`` from ``instances i LEFT JOIN instance_data d ON d.instance_fk = i.id`` and pass both
values to ``stored_bytes``: a NULL name means the bytes are inline in ``instance_data`` (instances stored before
files existed, restored backups).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.errors import StoreCorruptError

if TYPE_CHECKING:
    from core.store.database import Connection

__all__ = ["BlobStore", "ensure_storage_key", "stored_bytes"]


_MAGIC = b"RPI1"
_NONCE = 12
_TAG = 16


def _subkey(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"radplan instance files: " + purpose).derive(key)


class BlobStore:
    """The encrypted instance files of one store (``root`` = ``<data dir>/instances``)."""

    def __init__(self, root: Path, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the instance file key must be 32 bytes")
        self.root = root
        self._aead = AESGCM(_subkey(key, b"seal"))
        self._name_key = _subkey(key, b"name")

    def name_for(self, sha256_hex: str) -> str:
        """The file name for bytes with this SHA-256 (hex)."""
        return hmac.new(self._name_key, bytes.fromhex(sha256_hex), hashlib.sha256).hexdigest()

    def path(self, name: str) -> Path:
        return self.root / name[:2] / name

    def seal(self, name: str, data: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return _MAGIC + nonce + self._aead.encrypt(nonce, data, _MAGIC + name.encode("ascii"))

    def write(self, items: Sequence[tuple[str, bytes]]) -> int:
        """Seal and write (name, bytes) pairs durably; names already on disk are skipped (same name, same bytes).
        Returns the number of files written. On an error, files already renamed into place stay (unreferenced)."""
        pending: list[tuple[int, Path, Path]] = []
        folders: set[Path] = set()
        try:
            for name, data in items:
                final = self.path(name)
                if final.exists() or any(p[2] == final for p in pending):
                    continue
                if final.parent not in folders:
                    final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    folders.add(final.parent)
                tmp = final.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                pending.append((fd, tmp, final))
                _write_all(fd, self.seal(name, data))
            for fd, _tmp, _final in pending:
                os.fsync(fd)
        finally:
            for fd, _tmp, _final in pending:
                os.close(fd)
        written = 0
        try:
            for _fd, tmp, final in pending:
                os.replace(tmp, final)
                written += 1
        finally:
            for _fd, tmp, _final in pending[written:]:
                tmp.unlink(missing_ok=True)
        for folder in folders:
            _fsync_dir(folder)
        return written

    def read(self, name: str) -> bytes:
        """The bytes of file ``name``; StoreCorruptError (saying which file and why) when it is missing or fails
        authentication."""
        path = self.path(name)
        try:
            sealed = path.read_bytes()
        except FileNotFoundError:
            raise StoreCorruptError(
                f"the instance file {path} is missing: the store is damaged. Restore it from a backup "
                "('radplan store restore'); 'radplan store info' lists every missing or damaged file."
            ) from None
        if len(sealed) < len(_MAGIC) + _NONCE + _TAG or not sealed.startswith(_MAGIC):
            raise StoreCorruptError(f"the instance file {path} is damaged (not a RadPlan instance file)")
        nonce = sealed[len(_MAGIC) : len(_MAGIC) + _NONCE]
        try:
            return self._aead.decrypt(nonce, sealed[len(_MAGIC) + _NONCE :], _MAGIC + name.encode("ascii"))
        except InvalidTag:
            raise StoreCorruptError(
                f"the instance file {path} fails authentication: it was modified, damaged or moved. Restore the "
                "store from a backup ('radplan store restore')."
            ) from None

    def problems(self, names: Iterable[str]) -> list[str]:
        """One sentence per named file that is missing or fails authentication (reads and checks every file)."""
        out = []
        for name in names:
            try:
                self.read(name)
            except StoreCorruptError as exc:
                out.append(str(exc))
        return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_storage_key(conn: Connection, now: str) -> bytes:
    """The store's instance file key, made (random, 256 bits) on first use; safe with several processes. Opening a
    store that has its key only reads (no write lock while another process holds one)."""
    row = conn.execute("SELECT key FROM storage_keys WHERE id = 1").fetchone()
    if row is not None:
        return bytes(row[0])
    conn.execute(
        "INSERT INTO storage_keys (id, key, created) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING",
        (secrets.token_bytes(32), now),
    )
    return bytes(conn.execute("SELECT key FROM storage_keys WHERE id = 1").fetchone()[0])


def stored_bytes(conn: Connection, blob: str | None, inline: bytes | None) -> bytes:
    """An instance's bytes from its ``i.blob, d.data`` columns: its file when it has one, else the inline copy."""
    if blob is not None:
        return conn.blobs.read(blob)
    if inline is None:
        raise StoreCorruptError("an instance has neither a file nor inline bytes: the store is damaged")
    return bytes(inline)

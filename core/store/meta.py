"""store.json: the store's non-secret metadata (id, key mode, key check value, wrapped key), written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from core.errors import StoreCorruptError

__all__ = ["META_FORMAT", "KeyMode", "StoreMeta", "StorePaths", "atomic_write_bytes"]

META_FORMAT = 1
KeyMode = Literal["keyring", "passphrase"]


@dataclass(frozen=True)
class StorePaths:
    """Where a store's files live inside its data directory."""

    data_dir: Path

    @property
    def database(self) -> Path:
        return self.data_dir / "radplan.db"

    @property
    def meta(self) -> Path:
        return self.data_dir / "store.json"

    @property
    def instances(self) -> Path:
        """The encrypted instance files (core.store.blobs)."""
        return self.data_dir / "instances"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def exists(self) -> bool:
        return self.meta.exists() or self.database.exists()


@dataclass(frozen=True)
class StoreMeta:
    store_id: str
    created: str
    key_mode: KeyMode
    key_check: str
    wrapped_key: dict[str, Any] | None = None
    pending_key_check: str | None = None
    pending_wrapped_key: dict[str, Any] | None = None
    format: int = META_FORMAT
    notes: dict[str, str] = field(default_factory=dict)
    #: SQLCipher page size of the database (bytes); stores written before it was recorded use 4096.
    page_size: int = 4096

    def with_changes(self, **changes: Any) -> StoreMeta:
        return replace(self, **changes)

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, json.dumps(asdict(self), indent=2, sort_keys=True).encode())

    @classmethod
    def load(cls, path: Path) -> StoreMeta:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if int(data.get("format", 0)) != META_FORMAT:
                raise StoreCorruptError(f"{path.name} has unsupported format {data.get('format')!r}")
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise StoreCorruptError(f"the store metadata {path} cannot be read: {exc}") from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that a crash leaves either the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

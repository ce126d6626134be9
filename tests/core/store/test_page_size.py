"""SQLCipher page size: new stores use 64 KiB pages (recorded in store.json); stores and backups written with the
earlier 4 KiB pages keep opening and restoring (real SQLCipher files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import StoreCorruptError
from core.store.backup import BACKUP_MAGIC, create_backup, read_backup_header, restore_backup
from core.store.database import NEW_STORE_PAGE_SIZE, PAGE_SIZE
from core.store.store import Store

PHRASE = "store-passphrase-1"


def phrase(_prompt: str) -> str:
    return PHRASE


def _probe(store: Store, value: str) -> None:
    with store.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('probe', ?)", (value,))
        conn.execute("CREATE TABLE blobs (data BLOB)")
        conn.execute("INSERT INTO blobs VALUES (randomblob(300000))")


def _read(store: Store) -> tuple[str, int]:
    value = store.conn.execute("SELECT value FROM meta WHERE key = 'probe'").fetchone()[0]
    return value, store.conn.execute("SELECT length(data) FROM blobs").fetchone()[0]


def test_new_store_uses_large_pages(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "s", key_mode="passphrase", passphrase=phrase)
    _probe(store, "kept")
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert store.meta.page_size == NEW_STORE_PAGE_SIZE == 65536
    assert store.conn.execute("PRAGMA cipher_page_size").fetchone()[0] == str(NEW_STORE_PAGE_SIZE)
    store.close()
    assert json.loads((tmp_path / "s" / "store.json").read_text())["page_size"] == NEW_STORE_PAGE_SIZE
    assert (tmp_path / "s" / "radplan.db").stat().st_size % NEW_STORE_PAGE_SIZE == 0
    reopened = Store.open(tmp_path / "s", passphrase=phrase)
    assert _read(reopened) == ("kept", 300000)
    reopened.close()


def test_store_from_before_page_sizes_were_recorded_still_opens(tmp_path: Path) -> None:
    data_dir = tmp_path / "old"
    store = Store.create(data_dir, key_mode="passphrase", passphrase=phrase, page_size=PAGE_SIZE)
    _probe(store, "old")
    store.close()
    meta = json.loads((data_dir / "store.json").read_text())
    del meta["page_size"]  # store.json as the earlier versions wrote it
    (data_dir / "store.json").write_text(json.dumps(meta))
    reopened = Store.open(data_dir, passphrase=phrase)
    assert reopened.meta.page_size == 4096 and _read(reopened) == ("old", 300000)
    reopened.close()


def test_cut_at_a_small_page_boundary_is_reported_for_a_large_page_store(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "s", key_mode="passphrase", passphrase=phrase)
    _probe(store, "kept")
    store.close()
    db = tmp_path / "s" / "radplan.db"
    data = db.read_bytes()
    assert len(data) > 2 * NEW_STORE_PAGE_SIZE
    db.write_bytes(data[: NEW_STORE_PAGE_SIZE + 4096])  # a whole number of 4 KiB pages, not of 64 KiB ones
    with pytest.raises(StoreCorruptError, match="65536-byte pages"):
        Store.open(tmp_path / "s", passphrase=phrase)
    assert db.stat().st_size == NEW_STORE_PAGE_SIZE + 4096  # not modified


@pytest.mark.parametrize("page_size", [PAGE_SIZE, NEW_STORE_PAGE_SIZE])
def test_backup_restores_into_a_large_page_store(tmp_path: Path, page_size: int) -> None:
    """A backup keeps its store's page size; a restore always gives a store with today's page size, so backup +
    restore moves an older 4 KiB store to 64 KiB pages."""
    store = Store.create(tmp_path / "s", key_mode="passphrase", passphrase=phrase, page_size=page_size)
    _probe(store, "kept")
    create_backup(store, tmp_path / "b.rpbak", "backup-passphrase-1", actor="admin", role="admin")
    store.close()
    header, _ = read_backup_header(tmp_path / "b.rpbak")
    assert header["page_size"] == page_size
    restored = restore_backup(
        tmp_path / "b.rpbak", tmp_path / "r", "backup-passphrase-1", key_mode="passphrase", passphrase=phrase
    )
    assert restored.meta.page_size == NEW_STORE_PAGE_SIZE
    assert restored.conn.execute("PRAGMA cipher_page_size").fetchone()[0] == str(NEW_STORE_PAGE_SIZE)
    assert _read(restored) == ("kept", 300000)
    restored.close()
    assert not list((tmp_path / "r").glob(".restore*"))  # no temporary copy left behind
    again = Store.open(tmp_path / "r", passphrase=phrase)
    assert _read(again) == ("kept", 300000)
    assert again.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again.close()


def test_backup_written_before_page_sizes_were_recorded_restores(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "s", key_mode="passphrase", passphrase=phrase, page_size=PAGE_SIZE)
    _probe(store, "old")
    create_backup(store, tmp_path / "b.rpbak", "backup-passphrase-1", actor="admin", role="admin")
    store.close()
    header, offset = read_backup_header(tmp_path / "b.rpbak")
    del header["page_size"]  # the header as earlier versions wrote it
    raw = (tmp_path / "b.rpbak").read_bytes()[offset:]
    head = json.dumps(header, sort_keys=True).encode()
    (tmp_path / "old.rpbak").write_bytes(BACKUP_MAGIC + len(head).to_bytes(4, "big") + head + raw)
    restored = restore_backup(
        tmp_path / "old.rpbak", tmp_path / "r", "backup-passphrase-1", key_mode="passphrase", passphrase=phrase
    )
    assert restored.meta.page_size == NEW_STORE_PAGE_SIZE and _read(restored) == ("old", 300000)
    restored.close()

"""The encrypted store: key handling, bad keys, damaged files, rekey, backup and restore (real SQLCipher files)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import sqlcipher3

from core.errors import (
    KeyMissingError,
    KeyringUnavailableError,
    StoreCorruptError,
    StoreExistsError,
    StoreNotFoundError,
    WrongKeyError,
)
from core.store import keys
from core.store.backup import create_backup, restore_backup
from core.store.database import migrations, schema_version
from core.store.keys import KeyringSlot, ScryptParams, unwrap_key, wrap_key
from core.store.store import Store

PHRASE = "store-passphrase-1"


def phrase(_prompt: str) -> str:
    return PHRASE


def digest_dir(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir()) if p.is_file()}


def make_store(data_dir: Path, mode: str = "passphrase") -> Store:
    store = Store.create(data_dir, key_mode=mode, passphrase=phrase)  # type: ignore[arg-type]
    with store.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('probe', 'kept')")
    return store


def probe(store: Store) -> str:
    return str(store.query("SELECT value FROM meta WHERE key = 'probe'")[0][0])


def test_database_is_encrypted_and_migrated(data_dir: Path) -> None:
    store = make_store(data_dir)
    assert schema_version(store.conn) == len(migrations()) >= 1
    for name in ("store.json", "radplan.db", "radplan.db-wal"):  # while open: the WAL exists
        assert (data_dir / name).stat().st_mode & 0o077 == 0, name
    store.close()
    header = (data_dir / "radplan.db").read_bytes()[:16]
    assert header != b"SQLite format 3\x00"
    with pytest.raises(sqlcipher3.DatabaseError):  # plain SQLite cannot read it
        sqlcipher3.connect(str(data_dir / "radplan.db")).execute("SELECT * FROM sqlite_master").fetchall()
    meta = json.loads((data_dir / "store.json").read_text())
    assert meta["key_mode"] == "passphrase" and "ciphertext" in meta["wrapped_key"]
    assert data_dir.stat().st_mode & 0o077 == 0


def test_reopen_with_passphrase(data_dir: Path) -> None:
    make_store(data_dir).close()
    with Store.open(data_dir, passphrase=phrase) as store:
        assert probe(store) == "kept"


def test_wrong_passphrase_is_refused_and_nothing_changes(data_dir: Path) -> None:
    make_store(data_dir).close()
    before = digest_dir(data_dir)
    with pytest.raises(WrongKeyError, match="wrong passphrase"):
        Store.open(data_dir, passphrase=lambda _p: "not-the-passphrase")
    assert digest_dir(data_dir) == before


def test_create_refuses_existing_store(data_dir: Path) -> None:
    make_store(data_dir).close()
    before = digest_dir(data_dir)
    with pytest.raises(StoreExistsError):
        Store.create(data_dir, key_mode="passphrase", passphrase=phrase)
    assert digest_dir(data_dir) == before


def test_open_missing_store_says_how_to_create(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError, match="radplan init"):
        Store.open(tmp_path / "nothing")


@pytest.mark.parametrize("cut", [0, 4096 + 100, 3000])
def test_truncated_database_is_reported_not_recreated(data_dir: Path, cut: int) -> None:
    make_store(data_dir).close()
    db = data_dir / "radplan.db"
    db.write_bytes(db.read_bytes()[:cut])
    before = digest_dir(data_dir)
    with pytest.raises(StoreCorruptError, match=r"truncated|damaged"):
        Store.open(data_dir, passphrase=phrase)
    assert digest_dir(data_dir) == before


def test_damaged_page_with_right_key_is_corruption_not_wrong_key(data_dir: Path) -> None:
    make_store(data_dir).close()
    db = data_dir / "radplan.db"
    data = bytearray(db.read_bytes())
    data[100:400] = bytes(300)  # page 1 (schema) damaged: the HMAC check fails
    db.write_bytes(bytes(data))
    before = digest_dir(data_dir)
    with pytest.raises(StoreCorruptError, match="damaged"):
        Store.open(data_dir, passphrase=phrase)
    assert digest_dir(data_dir) == before


def test_missing_database_or_metadata_is_never_recreated(data_dir: Path) -> None:
    make_store(data_dir).close()
    (data_dir / "radplan.db").rename(data_dir / "moved.db")
    with pytest.raises(StoreCorruptError, match="missing"):
        Store.open(data_dir, passphrase=phrase)
    assert not (data_dir / "radplan.db").exists()
    (data_dir / "moved.db").rename(data_dir / "radplan.db")
    (data_dir / "store.json").unlink()
    with pytest.raises(StoreCorruptError, match="metadata"):
        Store.open(data_dir, passphrase=phrase)
    with pytest.raises(StoreExistsError):
        Store.create(data_dir, key_mode="passphrase", passphrase=phrase)


def test_passphrase_rekey_keeps_data_and_retires_old_key(data_dir: Path) -> None:
    store = make_store(data_dir)
    old_meta = json.loads((data_dir / "store.json").read_text())
    store.rekey(passphrase=lambda _p: "a-new-passphrase")
    store.close()
    with pytest.raises(WrongKeyError):
        Store.open(data_dir, passphrase=phrase)
    with Store.open(data_dir, passphrase=lambda _p: "a-new-passphrase") as reopened:
        assert probe(reopened) == "kept"
    new_meta = json.loads((data_dir / "store.json").read_text())
    assert new_meta["key_check"] != old_meta["key_check"] and new_meta["pending_key_check"] is None
    old_key = unwrap_key(keys.WrappedKey.from_json(old_meta["wrapped_key"]), PHRASE, aad=old_meta["store_id"].encode())
    conn = sqlcipher3.connect(str(data_dir / "radplan.db"))
    conn.execute(f"PRAGMA key = \"x'{old_key.hex()}'\"")
    with pytest.raises(sqlcipher3.DatabaseError):
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()


def test_rekey_interrupted_after_database_rekey_recovers(data_dir: Path) -> None:
    """Crash between 'database rekeyed' and 'metadata promoted': the next open finds the pending key."""
    store = make_store(data_dir)
    meta = store.meta
    new = keys.new_key()
    wrapped = wrap_key(new, "after-crash-phrase", aad=meta.store_id.encode()).to_json()
    meta.with_changes(pending_key_check=keys.key_check_value(new), pending_wrapped_key=wrapped).save(
        data_dir / "store.json"
    )
    store.conn.execute(f"PRAGMA rekey = \"x'{new.hex()}'\"")
    store.conn.close()  # the process dies here
    with Store.open(data_dir, passphrase=lambda _p: "after-crash-phrase") as reopened:
        assert probe(reopened) == "kept"
        assert reopened.meta.key_check == keys.key_check_value(new)
        assert reopened.meta.pending_key_check is None


def test_rekey_interrupted_before_database_rekey_keeps_old_key(data_dir: Path) -> None:
    store = make_store(data_dir)
    new = keys.new_key()
    wrapped = wrap_key(new, "never-used-phrase", aad=store.meta.store_id.encode()).to_json()
    store.meta.with_changes(pending_key_check=keys.key_check_value(new), pending_wrapped_key=wrapped).save(
        data_dir / "store.json"
    )
    store.close()  # crash before PRAGMA rekey
    with Store.open(data_dir, passphrase=phrase) as reopened:
        assert probe(reopened) == "kept"
        assert reopened.meta.pending_key_check is None


def test_backup_and_restore_roundtrip(data_dir: Path, tmp_path: Path) -> None:
    store = make_store(data_dir)
    backup = tmp_path / "store.rpbak"
    info = create_backup(store, backup, "backup-passphrase-1", actor="admin", role="admin")
    store.close()
    assert info.size_bytes == backup.stat().st_size
    raw = backup.read_bytes()
    assert b"SQLite format 3" not in raw and b"kept" not in raw
    with pytest.raises(StoreExistsError):
        create_backup(Store.open(data_dir, passphrase=phrase), backup, "backup-passphrase-1", actor="a", role="a")
    target = tmp_path / "restored"
    with pytest.raises(WrongKeyError):
        restore_backup(backup, target, "wrong-backup-phrase", key_mode="passphrase", passphrase=phrase)
    assert not target.exists() or not any(target.iterdir())
    restored = restore_backup(
        backup,
        target,
        "backup-passphrase-1",
        key_mode="passphrase",
        passphrase=lambda _p: "restored-phrase-1",
    )
    assert probe(restored) == "kept"
    actions = [r[0] for r in restored.query("SELECT action FROM audit ORDER BY seq")]
    assert actions[-2:] == ["store.backup", "store.restore"]
    restored.close()
    with pytest.raises(StoreExistsError):
        restore_backup(backup, target, "backup-passphrase-1", key_mode="passphrase", passphrase=phrase)


def test_wrapped_key_roundtrip_and_tamper() -> None:
    key = keys.new_key()
    fast = ScryptParams(n=2**14)
    wrapped = wrap_key(key, "pw-123456789", aad=b"store", params=fast)
    assert unwrap_key(keys.WrappedKey.from_json(wrapped.to_json()), "pw-123456789", aad=b"store") == key
    with pytest.raises(WrongKeyError):
        unwrap_key(wrapped, "pw-123456789", aad=b"other-store")
    with pytest.raises(ValueError):
        wrap_key(key, "", aad=b"store")


class _PlaintextLikeBackend:
    priority = 10

    def get_password(self, service: str, name: str) -> str | None:
        return None


def test_insecure_keyring_backends_are_refused() -> None:
    from keyring.backends import fail

    for backend in (_PlaintextLikeBackend(), fail.Keyring()):
        with pytest.raises(KeyringUnavailableError, match="insecure"):
            KeyringSlot(backend)
    assert "keyring.backends.fail.Keyring" not in keys.SECURE_KEYRING_BACKENDS


@pytest.mark.keyring
def test_keyring_store_roundtrip_wrong_and_missing_key(data_dir: Path) -> None:
    store = make_store(data_dir, mode="keyring")
    store_id = store.meta.store_id
    assert store.meta.wrapped_key is None
    store.close()
    slot = KeyringSlot()
    assert slot.load(store_id).hex() not in (data_dir / "store.json").read_text()
    with Store.open(data_dir) as reopened:
        assert probe(reopened) == "kept"
    before = digest_dir(data_dir)
    good = slot.load(store_id)
    slot.save(store_id, keys.new_key())  # somebody replaced the keyring entry
    with pytest.raises(WrongKeyError, match="does not match"):
        Store.open(data_dir)
    assert digest_dir(data_dir) == before
    slot.delete(store_id)
    with pytest.raises(KeyMissingError, match="radplan store restore"):
        Store.open(data_dir)
    assert digest_dir(data_dir) == before
    slot.save(store_id, good)
    with Store.open(data_dir) as reopened:
        assert probe(reopened) == "kept"


@pytest.mark.keyring
def test_keyring_rekey_replaces_the_keyring_entry(data_dir: Path) -> None:
    store = make_store(data_dir, mode="keyring")
    slot = KeyringSlot()
    old = slot.load(store.meta.store_id)
    store.rekey()
    new = slot.load(store.meta.store_id)
    assert new != old
    with pytest.raises(KeyMissingError):
        slot.load(f"{store.meta.store_id}.pending")
    store.close()
    with Store.open(data_dir) as reopened:
        assert probe(reopened) == "kept"


def test_store_from_a_newer_radplan_is_refused(data_dir: Path) -> None:
    store = make_store(data_dir)
    store.conn.execute("PRAGMA user_version = 999")
    store.close()
    with pytest.raises(StoreCorruptError, match="upgrade RadPlan"):
        Store.open(data_dir, passphrase=phrase)

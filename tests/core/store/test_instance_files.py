"""Instance files (core.store.blobs): every stored instance's bytes in an AES-256-GCM file outside SQLCipher,
read back exactly; tampering, swapping and deletion detected with a clear error; crash-safe; through rekey and
backup/restore; older stores' inline bytes still read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from core.dicom.importer import import_paths
from core.dicom.volumes import study_volumes
from core.errors import StoreCorruptError
from core.pipeline.dicom_io import instance_bytes
from core.security.roles import Permission, Role
from core.security.session import Access, User
from core.store.backup import create_backup, restore_backup
from core.store.blobs import BlobStore, stored_bytes
from core.store.store import Store
from tests.core.dicom.test_importer import RADIOLOGIST, ct_bytes

READER = Access(User(2, "rad1", Role.RADIOLOGIST), Permission.READ_PATIENT_DATA)
PHRASE = "store-passphrase-1"


def import_series(store: Store, folder: Path, n: int = 3) -> tuple[str, dict[str, bytes]]:
    """n CT slices written to folder and imported; (study UID, bytes by SOP Instance UID)."""
    study, series = generate_uid(), generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    by_sop = {}
    for k in range(n):
        sop = generate_uid()
        data = ct_bytes(study=study, series=series, sop=sop, number=k + 1, value=k * 10)
        (folder / f"{k}.dcm").write_bytes(data)
        by_sop[sop] = data
    report = import_paths(store, RADIOLOGIST, [folder])
    assert report.stored == n
    return study, by_sop


def stored(store: Store) -> dict[str, bytes]:
    rows = store.query(
        "SELECT i.sop_uid, i.blob, d.data FROM instances i LEFT JOIN instance_data d ON d.instance_fk = i.id"
    )
    return {str(sop): stored_bytes(store.conn, blob, inline) for sop, blob, inline in rows}  # type: ignore[arg-type]


def file_of(store: Store, sop: str) -> Path:
    (name,) = store.query("SELECT blob FROM instances WHERE sop_uid = ?", (sop,))[0]
    return store.blobs.path(str(name))


def test_instances_are_encrypted_files_read_back_exactly(passphrase_store: Store, tmp_path: Path) -> None:
    store = passphrase_store
    _study, by_sop = import_series(store, tmp_path / "in")
    assert stored(store) == by_sop
    assert store.query("SELECT count(*) FROM instance_data")[0][0] == 0  # nothing inline in the database
    for sop, data in by_sop.items():
        sealed = file_of(store, sop).read_bytes()
        assert len(sealed) == len(data) + 4 + 12 + 16  # magic, nonce, tag
        for plain in (b"IMPORTTEST^ROSALIND", b"PAT-IMPORT-01", b"DICM", sop.encode()):
            assert plain not in sealed  # neither the patient nor the instance readable at rest
        assert sop not in file_of(store, sop).name  # the name is a keyed hash, not a UID
        assert stat.S_IMODE(file_of(store, sop).stat().st_mode) == 0o600
    assert stat.S_IMODE(store.paths.instances.joinpath(file_of(store, sop).parent.name).stat().st_mode) == 0o700


def test_same_bytes_are_one_file_and_a_reimport_writes_nothing(passphrase_store: Store, tmp_path: Path) -> None:
    store = passphrase_store
    import_series(store, tmp_path / "in")
    before = {p: p.stat().st_mtime_ns for p in store.paths.instances.glob("*/*")}
    again = import_paths(store, RADIOLOGIST, [tmp_path / "in"])
    assert (again.stored, again.already_present) == (0, 3)
    assert {p: p.stat().st_mtime_ns for p in store.paths.instances.glob("*/*")} == before
    blobs = BlobStore(tmp_path / "files", os.urandom(32))
    name = blobs.name_for("ab" * 32)
    assert blobs.write([(name, b"x" * 100), (name, b"x" * 100)]) == 1
    assert blobs.write([(name, b"x" * 100)]) == 0 and blobs.read(name) == b"x" * 100
    assert not list((tmp_path / "files").glob("*/.*.tmp"))  # no temporary file left behind


def test_modified_swapped_or_missing_files_give_a_clear_error(passphrase_store: Store, tmp_path: Path) -> None:
    store = passphrase_store
    study, by_sop = import_series(store, tmp_path / "in")
    first, second, third = (file_of(store, sop) for sop in by_sop)
    sealed = bytearray(first.read_bytes())
    sealed[len(sealed) // 2] ^= 0x01  # one bit of pixel data
    first.write_bytes(bytes(sealed))
    second_copy = second.read_bytes()
    second.write_bytes(third.read_bytes())  # a valid file under another instance's name
    third.unlink()
    problems = store.blobs.problems(p.name for p in (first, second, third))
    assert len(problems) == 3
    assert "fails authentication" in problems[0] and str(first) in problems[0]
    assert "fails authentication" in problems[1] and str(second) in problems[1]
    assert "is missing" in problems[2] and "restore" in problems[2]
    with pytest.raises(StoreCorruptError, match="fails authentication"):
        study_volumes(store, READER, study)  # a reader gets the sentence, never wrong pixels
    second.write_bytes(second_copy)
    assert store.blobs.read(second.name) == by_sop[list(by_sop)[1]]


def test_a_crash_before_the_commit_leaves_no_row_and_the_import_can_be_repeated(
    passphrase_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.dicom.importer as importer

    store = passphrase_store

    def crash(*_a: object, **_k: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(importer, "record_access", crash)
    with pytest.raises(OSError, match="power cut"):
        import_series(store, tmp_path / "in")
    assert store.query("SELECT count(*) FROM instances")[0][0] == 0
    assert len(list(store.paths.instances.glob("*/*"))) == 3  # written and durable, but unreferenced
    monkeypatch.undo()
    report = import_paths(store, RADIOLOGIST, [tmp_path / "in"])
    assert report.stored == 3 and len(list(store.paths.instances.glob("*/*"))) == 3
    assert sorted(stored(store).values()) == sorted(p.read_bytes() for p in (tmp_path / "in").iterdir())


def test_files_survive_a_rekey_and_a_reopen(passphrase_store: Store, tmp_path: Path) -> None:
    store = passphrase_store
    _study, by_sop = import_series(store, tmp_path / "in")
    store.rekey(passphrase=lambda _p: PHRASE)
    assert stored(store) == by_sop
    data_dir = store.paths.data_dir
    store.close()
    with Store.open(data_dir, passphrase=lambda _p: PHRASE) as reopened:
        assert stored(reopened) == by_sop


def test_backup_carries_the_files_inline_and_restore_reads_them(passphrase_store: Store, tmp_path: Path) -> None:
    store = passphrase_store
    _study, by_sop = import_series(store, tmp_path / "in")
    backup = tmp_path / "store.rpbak"
    create_backup(store, backup, "backup-phrase-123", actor="admin", role="admin")
    raw = backup.read_bytes()
    assert b"IMPORTTEST^ROSALIND" not in raw and b"DICM" not in raw
    restored = restore_backup(backup, tmp_path / "restored", "backup-phrase-123", passphrase=lambda _p: PHRASE)
    try:
        old_key = store.query("SELECT key FROM storage_keys")[0][0]
        assert restored.query("SELECT key FROM storage_keys")[0][0] != old_key  # backup + restore rotates it too
        assert stored(restored) == by_sop
        assert restored.query("SELECT count(*) FROM instances WHERE blob IS NULL")[0][0] == 3  # inline
        more = import_series(restored, tmp_path / "more", 2)[1]  # new instances go to files again
        assert stored(restored) == {**by_sop, **more}
        assert len(list(restored.paths.instances.glob("*/*"))) == 2
    finally:
        restored.close()
    assert stored(store) == by_sop  # the backup changed nothing in the source store


def test_instances_stored_inline_before_files_existed_still_read(passphrase_store: Store, tmp_path: Path) -> None:
    store = passphrase_store
    _study, by_sop = import_series(store, tmp_path / "in")
    with store.transaction() as conn:  # as a store from before migration 0007 holds them
        for sop, data in by_sop.items():
            (iid, name) = conn.execute("SELECT id, blob FROM instances WHERE sop_uid = ?", (sop,)).fetchone()
            conn.execute("INSERT INTO instance_data (instance_fk, data) VALUES (?, ?)", (iid, data))
            conn.execute("UPDATE instances SET blob = NULL WHERE id = ?", (iid,))
            store.blobs.path(name).unlink()
    assert stored(store) == by_sop
    with store.transaction() as conn:  # a product reader (the pipeline's) gets them too
        assert {sop: instance_bytes(conn, sop) for sop in by_sop} == by_sop
    with pytest.raises(StoreCorruptError, match="neither a file nor inline bytes"):
        stored_bytes(store.conn, None, None)

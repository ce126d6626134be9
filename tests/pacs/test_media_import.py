"""`radplan import` of DICOM media: a DICOMDIR stands for the files it references."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from conftest import IMPORTER
from pydicom.fileset import FileSet

from core.demo import generate_demo_study
from core.dicom.importer import import_paths
from core.store.store import Store


@pytest.fixture
def media(tmp_path: Path) -> tuple[Path, int]:
    """A DICOM medium (DICOMDIR + PT*/ST*/SE*/IM* files) written by pydicom's FileSet from a small demo study."""
    src = tmp_path / "src"
    generate_demo_study(src, seed=21, shape=(48, 40, 8), spacing_mm=(8.0, 8.0, 5.0))
    fs = FileSet()
    files = sorted(src.rglob("*.dcm"))
    for path in files:
        fs.add(pydicom.dcmread(path))
    out = tmp_path / "cdrom"
    fs.write(out)
    return out, len(files)


def count(store: Store) -> int:
    return int(store.query("SELECT count(*) FROM instances")[0][0])


def test_dicomdir_path_imports_the_referenced_files(passphrase_store: Store, media: tuple[Path, int]) -> None:
    folder, n = media
    report = import_paths(passphrase_store, IMPORTER, [folder / "DICOMDIR"])
    assert (report.stored, report.files_seen, report.ok) == (n, n, True)
    assert count(passphrase_store) == n


def test_media_folder_skips_the_dicomdir_itself(passphrase_store: Store, media: tuple[Path, int]) -> None:
    folder, n = media
    report = import_paths(passphrase_store, IMPORTER, [folder])
    assert (report.stored, report.damaged, report.skipped_non_dicom) == (n, [], 0)


def test_file_missing_from_the_medium_is_reported_by_name(passphrase_store: Store, media: tuple[Path, int]) -> None:
    folder, n = media
    gone = sorted(p for p in folder.rglob("IM*") if p.is_file())[0]
    gone.unlink()
    report = import_paths(passphrase_store, IMPORTER, [folder / "DICOMDIR"])
    assert report.stored == n - 1
    assert [(Path(name).name, "cannot be read" in why) for name, why in report.damaged] == [(gone.name, True)]


def test_unreadable_dicomdir_is_reported_as_damaged(passphrase_store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "DICOMDIR"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI")
    report = import_paths(passphrase_store, IMPORTER, [bad])
    assert [Path(name).name for name, _ in report.damaged] == ["DICOMDIR"] and report.stored == 0

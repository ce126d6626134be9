"""`radplan export --study UID --deidentify OUT` on a stored demo study (in-process CLI, real store)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from conftest import IMPORTER, READER, DemoStudy

from core.dicom.deid import DeidentificationError, export_study
from core.dicom.importer import import_paths
from core.store.store import Store
from tests.conftest import ADMIN, ADMIN_PW


def test_export_deidentified(passphrase_store: Store, demo_study: DemoStudy, tmp_path: Path) -> None:
    import_paths(passphrase_store, IMPORTER, demo_study.files)
    out = tmp_path / "export"
    report = export_study(passphrase_store, READER, demo_study.study_uid, out)
    files = sorted(out.rglob("*.dcm"))
    assert report.files == len(files) == len(demo_study.files)
    m = demo_study.manifest
    exported = [pydicom.dcmread(f) for f in files]
    assert {str(d.StudyInstanceUID) for d in exported} == {report.new_study_uid} != {m.study_instance_uid}
    assert len({str(d.FrameOfReferenceUID) for d in exported if "FrameOfReferenceUID" in d}) == 1
    for path, ds in zip(files, exported, strict=True):
        raw = path.read_bytes()
        assert m.patient_id.encode() not in raw and m.patient_name.split("^")[0].encode() not in raw
        assert ds.PatientIdentityRemoved == "YES" and ds.StudyDate != m.study_date
    # the RTSTRUCT still points at the (remapped) CT images of the export
    rt = next(d for d in exported if d.Modality == "RTSTRUCT")
    ct_uids = {str(d.SOPInstanceUID) for d in exported if d.Modality == "CT"}
    contour_refs = {
        str(img.ReferencedSOPInstanceUID)
        for roi in rt.ROIContourSequence
        for c in roi.ContourSequence
        for img in c.get("ContourImageSequence", [])
    }
    assert contour_refs and contour_refs <= ct_uids
    assert passphrase_store.query("SELECT count(*) FROM audit WHERE action = 'study.export_deidentified'")[0][0] == 1
    with pytest.raises(DeidentificationError, match="not empty"):
        export_study(passphrase_store, READER, demo_study.study_uid, out)
    with pytest.raises(DeidentificationError, match="not in the store"):
        export_study(passphrase_store, READER, "1.2.3", tmp_path / "none")


def test_export_command_refuses_an_admin(passphrase_store: Store, tmp_path: Path, cli_env: dict[str, str]) -> None:
    """`radplan export` (registered here as main.py will) needs patient-data rights: an admin gets exit code 3."""
    passphrase_store.close()
    code = (
        "import sys; from app.cli.main import cli, main; from app.cli.pacs_cmds import export; "
        "cli.add_command(export); main(sys.argv[1:])"
    )
    env = {**cli_env, "RADPLAN_USER": ADMIN, "RADPLAN_PASSWORD": ADMIN_PW, "RADPLAN_PASSPHRASE": "store-passphrase-1"}
    result = subprocess.run(
        [sys.executable, "-c", code, "export", "--study", "1.2.3", "--deidentify", str(tmp_path / "x")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 3 and "denied" in result.stderr, result.stderr
    assert not (tmp_path / "x").exists()

"""`radplan pacs ...` end to end: a real CLI process, a real encrypted store and a real Orthanc."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from conftest import OUR_AET, DemoStudy
from orthanc_server import OrthancServer

from core.dicom.writers.seg import SegmentSpec, write_seg
from tests.conftest import ADMIN, ADMIN_PW, RAD, RAD_PW, Cli

pytestmark = [pytest.mark.pacs, pytest.mark.slow]
PASS = {"RADPLAN_PASSPHRASE": "store-passphrase-1"}
AS_ADMIN = {**PASS, "RADPLAN_USER": ADMIN, "RADPLAN_PASSWORD": ADMIN_PW}
AS_RAD = {**PASS, "RADPLAN_USER": RAD, "RADPLAN_PASSWORD": RAD_PW}


@pytest.fixture
def pacs_cli(initialised: Cli, cli_env: dict[str, str], move_port: int) -> Cli:
    """The CLI with our AE title and storage port set in the user settings file."""
    Path(cli_env["RADPLAN_USER_CONFIG"]).write_text(f'ae_title = "{OUR_AET}"\nstorage_port = {move_port}\n')
    return initialised


def add(cli: Cli, server: OrthancServer, name: str = "orthanc") -> None:
    cli(
        "pacs",
        "add",
        name,
        "--aet",
        server.aet,
        "--host",
        "127.0.0.1",
        "--port",
        str(server.dicom_port),
        "--timeout",
        "10",
        **AS_ADMIN,
    )


def test_nodes_echo_find_retrieve(pacs_cli: Cli, orthanc: OrthancServer, demo_study: DemoStudy) -> None:
    add(pacs_cli, orthanc)
    denied = pacs_cli("pacs", "add", "other", "--aet", "X", "--host", "h", "--port", "104", check=False, **AS_RAD)
    assert denied.returncode == 3 and "denied" in denied.stderr
    listed = json.loads(pacs_cli("pacs", "list", "--json", **AS_RAD).stdout)
    assert listed["local"]["ae_title"] == OUR_AET
    assert [(n["name"], n["port"]) for n in listed["nodes"]] == [("orthanc", orthanc.dicom_port)]
    assert "C-ECHO ok" in pacs_cli("pacs", "echo", "orthanc", **AS_RAD).stdout

    m = demo_study.manifest
    found = json.loads(pacs_cli("pacs", "find", "orthanc", "--patient-id", m.patient_id, "--json", **AS_RAD).stdout)
    assert [r["study_uid"] for r in found["results"]] == [m.study_instance_uid] and found["truncated"] is False
    series = json.loads(
        pacs_cli(
            "pacs",
            "find",
            "orthanc",
            "--study",
            m.study_instance_uid,
            "--level",
            "series",
            "--modality",
            "CT",
            "--json",
            **AS_RAD,
        ).stdout
    )
    assert [r["series_uid"] for r in series["results"]] == [m.ct_series_instance_uid]
    admin_find = pacs_cli("pacs", "find", "orthanc", check=False, **AS_ADMIN)
    assert admin_find.returncode == 3  # admins have no patient-data rights
    bad_date = pacs_cli("pacs", "find", "orthanc", "--date", "March", check=False, **AS_RAD)
    assert bad_date.returncode == 2 and "date must be" in bad_date.stderr

    first = pacs_cli("pacs", "retrieve", "orthanc", "--study", m.study_instance_uid, **AS_RAD)
    n = len(demo_study.files)
    assert f"{n} instances, 0 already stored, {n} stored now" in first.stdout and "complete" in first.stdout
    assert f"progress {n}/{n} instances" in first.stderr and "MB/s" in first.stderr
    again = json.loads(
        pacs_cli("pacs", "retrieve", "orthanc", "--study", m.study_instance_uid, "--json", **AS_RAD).stdout
    )
    assert (again["already_present"], again["stored"], again["complete"]) == (n, 0, True)
    studies = json.loads(pacs_cli("studies", "--json", **AS_RAD).stdout)
    assert [(s["study_uid"], s["instances"], s["status"]) for s in studies] == [(m.study_instance_uid, n, "complete")]


def test_dicomweb_and_errors(pacs_cli: Cli, orthanc: OrthancServer, demo_study: DemoStudy) -> None:
    m = demo_study.manifest
    pacs_cli("pacs", "add", "web", "--aet", orthanc.aet, "--host", "127.0.0.1", "--port", str(orthanc.dicom_port),
             "--dicomweb", f"{orthanc.url}/dicom-web", **AS_ADMIN)  # fmt: skip
    found = json.loads(
        pacs_cli("pacs", "find", "web", "--dicomweb", "--patient-id", m.patient_id, "--json", **AS_RAD).stdout
    )
    assert [r["study_uid"] for r in found["results"]] == [m.study_instance_uid]
    got = pacs_cli("pacs", "retrieve", "web", "--dicomweb", "--study", m.study_instance_uid, **AS_RAD)
    assert f"0 already stored, {len(demo_study.files)} stored now, complete" in got.stdout
    missing = pacs_cli("pacs", "retrieve", "nowhere", "--study", "1.2.3", check=False, **AS_RAD)
    assert missing.returncode == 1 and "no PACS node named 'nowhere'" in missing.stderr
    pacs_cli(
        "pacs",
        "add",
        "wrong",
        "--aet",
        "WRONGAET",
        "--host",
        "127.0.0.1",
        "--port",
        str(orthanc.dicom_port),
        **AS_ADMIN,
    )
    refused = pacs_cli("pacs", "retrieve", "wrong", "--study", "1.2.3", check=False, **AS_RAD)
    assert refused.returncode == 1 and "refused the association" in refused.stderr


def write_demo_seg(demo: DemoStudy, out: Path) -> Path:
    """A DICOM SEG of the demo's GTV and heart (truth masks) on its CT."""
    labels = np.zeros((len(demo.ct_files), 96, 96), np.uint8)
    for n, name in enumerate(("heart", "gtv"), start=1):
        labels[sitk.GetArrayFromImage(sitk.ReadImage(str(demo.folder / "truth" / f"{name}.nii.gz"))) > 0] = n
    seg = write_seg([pydicom.dcmread(p) for p in demo.ct_files], labels, [SegmentSpec("Heart"), SegmentSpec("GTV")])
    seg.save_as(out, enforce_file_format=True)
    return out


def test_send_results(
    pacs_cli: Cli, orthanc: OrthancServer, empty_orthanc: OrthancServer, demo_study: DemoStudy, tmp_path: Path
) -> None:
    add(pacs_cli, orthanc)
    add(pacs_cli, empty_orthanc, "archive")
    uid = demo_study.manifest.study_instance_uid
    pacs_cli("pacs", "retrieve", "orthanc", "--study", uid, **AS_RAD)
    nothing = pacs_cli("pacs", "send", "archive", "--study", uid, "--what", "pdf", check=False, **AS_RAD)
    assert nothing.returncode == 1 and "nothing to send" in nothing.stderr and "pdf" in nothing.stderr
    no_seg = pacs_cli("pacs", "send", "archive", "--study", uid, "--what", "seg", check=False, **AS_RAD)
    assert no_seg.returncode == 1 and "no stored seg result" in no_seg.stderr
    assert empty_orthanc.instance_count() == 0

    seg_path = write_demo_seg(demo_study, tmp_path / "seg.dcm")
    pacs_cli("import", str(seg_path), **AS_RAD)
    sent = pacs_cli("pacs", "send", "archive", "--study", uid, "--what", "all", **AS_RAD)
    assert "1 seg, 1 rtstruct, 0 pdf" in sent.stdout and "no stored pdf" in sent.stderr
    assert empty_orthanc.instance_count() == 2
    instances = empty_orthanc.get_json("/instances?expand")
    assert isinstance(instances, list)
    received = {i["MainDicomTags"]["SOPInstanceUID"] for i in instances}
    assert received == {demo_study.manifest.rtstruct_sop_instance_uid, str(pydicom.dcmread(seg_path).SOPInstanceUID)}
    denied = pacs_cli("pacs", "send", "archive", "--study", uid, "--what", "seg", check=False, **AS_ADMIN)
    assert denied.returncode == 3


def test_send_results_by_stow_rs(
    pacs_cli: Cli, orthanc: OrthancServer, empty_orthanc: OrthancServer, demo_study: DemoStudy, tmp_path: Path
) -> None:
    add(pacs_cli, orthanc)
    pacs_cli("pacs", "add", "webarchive", "--aet", empty_orthanc.aet, "--host", "127.0.0.1", "--port",
             str(empty_orthanc.dicom_port), "--dicomweb", f"{empty_orthanc.url}/dicom-web", **AS_ADMIN)  # fmt: skip
    add(pacs_cli, empty_orthanc, "noweb")
    uid = demo_study.manifest.study_instance_uid
    pacs_cli("pacs", "retrieve", "orthanc", "--study", uid, **AS_RAD)
    seg_path = write_demo_seg(demo_study, tmp_path / "seg.dcm")
    pacs_cli("import", str(seg_path), **AS_RAD)
    no_url = pacs_cli("pacs", "send", "noweb", "--dicomweb", "--study", uid, "--what", "seg", check=False, **AS_RAD)
    assert no_url.returncode == 2 and "has no DICOMweb URL" in no_url.stderr
    assert empty_orthanc.instance_count() == 0
    sent = pacs_cli("pacs", "send", "webarchive", "--dicomweb", "--study", uid, "--what", "all", **AS_RAD)
    assert "1 seg, 1 rtstruct, 0 pdf" in sent.stdout and "no stored pdf" in sent.stderr
    instances = empty_orthanc.get_json("/instances?expand")
    assert isinstance(instances, list)
    received = {i["MainDicomTags"]["SOPInstanceUID"] for i in instances}
    assert received == {demo_study.manifest.rtstruct_sop_instance_uid, str(pydicom.dcmread(seg_path).SOPInstanceUID)}

"""Interop with DCMTK: our C-STORE to a DCMTK storescp, and our C-GET result read by DCMTK's dcmdump."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from conftest import IMPORTER, READER, DemoStudy
from orthanc_server import free_port

from core.dicom.importer import import_paths
from core.pacs.association import LocalAE
from core.pacs.nodes import PacsNode
from core.pacs.send import send_results
from core.store.store import Store

pytestmark = [
    pytest.mark.pacs,
    pytest.mark.skipif(shutil.which("storescp") is None, reason="DCMTK storescp not installed"),
]


def test_send_to_dcmtk_storescp(passphrase_store: Store, demo_study: DemoStudy, local: LocalAE, tmp_path: Path) -> None:
    import_paths(passphrase_store, IMPORTER, demo_study.files)
    port, out = free_port(), tmp_path / "received"
    out.mkdir()
    scp = subprocess.Popen(["storescp", "-aet", "DCMTKSCP", "-od", str(out), str(port)], stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        node = PacsNode("dcmtk", "DCMTKSCP", "127.0.0.1", port, timeout_s=10.0)
        report = send_results(passphrase_store, READER, local, node, demo_study.study_uid, "rtstruct")
        assert report.sent == {"rtstruct": 1} and report.failed == []
        deadline = time.monotonic() + 10
        while not list(out.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scp.terminate()
        scp.wait(timeout=10)
    files = list(out.iterdir())
    assert len(files) == 1
    received = pydicom.dcmread(files[0])
    original = pydicom.dcmread(demo_study.folder / "rtstruct.dcm")
    assert received.SOPInstanceUID == original.SOPInstanceUID and received == original
    dump = subprocess.run(["dcmdump", str(files[0])], capture_output=True, text=True, check=True).stdout
    assert "RTSTRUCT" in dump

"""The workstation's PACS actions under Xvfb against a real Orthanc (Debian package) on loopback and a real store:
a worklist C-GET retrieve cancelled mid-transfer and then resumed, C-ECHO from the settings (live node and a closed
port), and sending an approved plan's PDF from the plan review - asserting on the task states, the panels' texts,
the store and what Orthanc holds (its REST API)."""

from __future__ import annotations

import io
import logging
import re
import shutil
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import EncapsulatedPDFStorage
from PySide6.QtCore import Qt
from shell_support import close, open_window, sign_in, workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pacs"))
from orthanc_server import ORTHANC, OrthancServer, free_port

from core.demo import generate_demo_study
from core.pacs.nodes import PacsNode, add_node
from core.plan import repository as repo
from core.plan.builder import PlanOptions, build_plan_content
from core.plan.model import Prescription
from core.security.roles import Permission
from core.security.session import Session
from core.store.studies import StudySummary, list_studies
from core.store.users import UserRepository
from core.workstation.demo import ADMIN, PHYSICIST, RADIOLOGIST, DemoWorkspace

pytestmark = [
    pytest.mark.qt,
    pytest.mark.pacs,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which(ORTHANC) is None or shutil.which("storescu") is None,
        reason="Orthanc or DCMTK storescu not installed: run installer/bootstrap.sh",
    ),
]
LOCAL_AET = "RADPLAN"  # core.settings.Settings' default AE title, which shell_support.open_window uses


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    """A private, empty Orthanc that knows our AE title (C-GET, C-STORE and C-ECHO from us are allowed)."""
    server = OrthancServer(tmp_path / "orthanc", modalities={LOCAL_AET: free_port()}).start()
    try:
        yield server
    finally:
        server.stop(kill=True)


def add_orthanc_node(ws: DemoWorkspace, server: OrthancServer) -> None:
    admin = UserRepository(ws.store).authenticate(ADMIN, ws.passwords[ADMIN])
    node = PacsNode("orthanc", server.aet, "127.0.0.1", server.dicom_port, timeout_s=20.0, retries=0)
    add_node(ws.store, Session(admin).authorize(Permission.MANAGE_PACS), node)


def summary(ws: DemoWorkspace, study_uid: str) -> StudySummary | None:
    reader = Session(UserRepository(ws.store).authenticate(RADIOLOGIST, ws.passwords[RADIOLOGIST]))
    studies = list_studies(ws.store, reader.authorize(Permission.READ_PATIENT_DATA))
    return next((s for s in studies if s.study_uid == study_uid), None)


def stored_sop_uids(ws: DemoWorkspace, study_uid: str) -> list[str]:
    sql = ("SELECT i.sop_uid FROM instances i JOIN series se ON se.id = i.series_fk JOIN studies st "
           "ON st.id = se.study_fk WHERE st.study_uid = ?")  # fmt: skip
    return [str(r[0]) for r in ws.store.query(sql, (study_uid,))]


def orthanc_sop_uids(server: OrthancServer) -> list[str]:
    instances = server.get_json("/instances?expand")
    assert isinstance(instances, list)
    return [str(i["MainDicomTags"]["SOPInstanceUID"]) for i in instances]


def test_worklist_retrieve_cancelled_mid_transfer_keeps_it_partial_and_resumes(
    qtbot: Any, tmp_path: Path, orthanc: OrthancServer, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = generate_demo_study(tmp_path / "pacs-study", seed=11, shape=(128, 128, 60), spacing_mm=(3, 3, 4))
    orthanc.upload(sorted((tmp_path / "pacs-study").rglob("*.dcm")))
    in_orthanc = orthanc_sop_uids(orthanc)
    uid = manifest.study_instance_uid
    ws = workspace(tmp_path)
    add_orthanc_node(ws, orthanc)
    window = open_window(qtbot, ws)
    try:
        assert window.ctx.settings.ae_title == LOCAL_AET
        sign_in(qtbot, window, RADIOLOGIST, ws.passwords[RADIOLOGIST])
        worklist = window.panels["worklist"]
        window.show_panel("worklist")
        qtbot.waitUntil(lambda: worklist.node.count() == 1 and worklist.local_table.rowCount() == 1, timeout=15000)

        # The first progress report of the retrieve holds the network thread (a direct connection runs in the
        # emitting thread) until Cancel is pressed on the UI thread: the cancel lands mid-transfer, deterministically.
        first, pressed = threading.Event(), threading.Event()

        def hold(task_id: int, _fraction: float, _message: str) -> None:
            info = window.runner.tasks.get(task_id)
            if info is not None and info.name.startswith("retrieve") and not first.is_set():
                first.set()
                pressed.wait(30)

        window.runner.signals.progress.connect(hold, Qt.ConnectionType.DirectConnection)
        try:
            task = worklist.retrieve(uid)
            assert worklist.cancel_btn.isEnabled() and not worklist.retrieve_btn.isEnabled()
            qtbot.waitUntil(first.is_set, timeout=30000)
            worklist.cancel_btn.click()  # -> cancel_retrieve()
            pressed.set()
            qtbot.waitUntil(lambda: task.status != "running", timeout=60000)
        finally:
            pressed.set()
            window.runner.signals.progress.disconnect(hold)
        assert task.status == "cancelled", (task.status, task.error)
        assert task.error == "" and task.message == "cancelled"
        # no exception escaped into the network thread (pynetdicom would log it and answer the PACS with a failure)
        assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        text = worklist.pacs_message.text()
        assert text.startswith("Retrieve cancelled.") and "Traceback" not in text and "\n" not in text
        assert worklist.retrieve_btn.isEnabled() and not worklist.cancel_btn.isEnabled()
        partial = summary(ws, uid)
        kept = stored_sop_uids(ws, uid)
        assert partial is not None and partial.status != "complete", partial  # half a study is never complete
        assert 1 <= len(kept) < len(in_orthanc) and set(kept) <= set(in_orthanc)
        qtbot.waitUntil(lambda: worklist.local_table.rowCount() == 2, timeout=15000)  # the worklist lists it

        # The window stays usable: search the PACS, retrieve again from the results; it resumes and completes.
        worklist.f_id.setText(manifest.patient_id)
        worklist.search_btn.click()
        qtbot.waitUntil(lambda: worklist.pacs_table.rowCount() == 1, timeout=20000)
        worklist.pacs_table.selectRow(0)
        worklist.retrieve_btn.click()  # -> retrieve_selected()
        again = worklist.retrieve_task
        assert again is not None and again is not task
        qtbot.waitUntil(lambda: again.status != "running", timeout=60000)
        assert again.status == "done", again.error
        text = worklist.pacs_message.text()
        assert text.startswith("retrieved: ") and text.endswith("complete") and "INCOMPLETE" not in text, text
        assert f"{len(kept)} already present" in text
        done = summary(ws, uid)
        assert done is not None and done.status == "complete" and done.instances == len(in_orthanc)
        stored = stored_sop_uids(ws, uid)
        assert len(stored) == len(set(stored)) == len(in_orthanc) and set(stored) == set(in_orthanc)  # no duplicates
    finally:
        close(qtbot, window, ws)


def test_settings_echo_reports_success_and_a_closed_port_as_a_sentence(
    qtbot: Any, tmp_path: Path, orthanc: OrthancServer
) -> None:
    ws = workspace(tmp_path)
    add_orthanc_node(ws, orthanc)
    window = open_window(qtbot, ws)
    try:
        sign_in(qtbot, window, ADMIN, ws.passwords[ADMIN])
        settings = window.panels["settings"]
        qtbot.waitUntil(lambda: settings.nodes_table.rowCount() == 1, timeout=15000)
        settings.echo_btn.click()  # the only node: echoed without a selection
        qtbot.waitUntil(lambda: not settings.pacs_message.text().startswith("echo "), timeout=30000)
        assert re.fullmatch(r"orthanc: C-ECHO ok in \d+\.\d ms", settings.pacs_message.text()), (
            settings.pacs_message.text()
        )

        # A node added in the form, on a loopback port where nothing listens.
        settings.n_name.setText("closed")
        settings.n_aet.setText("NOBODY")
        settings.n_host.setText("127.0.0.1")
        settings.n_port.setValue(free_port())
        settings.add_node_btn.click()
        qtbot.waitUntil(lambda: settings.nodes_table.rowCount() == 2, timeout=15000)
        names = [settings.nodes_table.item(r, 0).text() for r in range(2)]
        settings.nodes_table.selectRow(names.index("closed"))
        settings.echo_btn.click()
        qtbot.waitUntil(lambda: not settings.pacs_message.text().startswith("echo "), timeout=60000)
        text = settings.pacs_message.text()
        assert text.startswith("Echoing closed failed") and text.endswith("."), text
        assert "Traceback" not in text and "\n" not in text and "internal error" not in text, text

        # the live node still answers afterwards
        settings.nodes_table.selectRow(names.index("orthanc"))
        settings.echo_btn.click()
        qtbot.waitUntil(lambda: "C-ECHO ok" in settings.pacs_message.text(), timeout=30000)
    finally:
        close(qtbot, window, ws)


def approved_plan(ws: DemoWorkspace) -> int:
    """A plan on the demo study, reviewed by the physicist and approved by the radiologist (core API)."""
    users = UserRepository(ws.store)
    rad = Session(users.authenticate(RADIOLOGIST, ws.passwords[RADIOLOGIST]))
    phys = Session(users.authenticate(PHYSICIST, ws.passwords[PHYSICIST]))
    edit = rad.authorize(Permission.EDIT_PLANS)
    content = build_plan_content(ws.store, edit, ws.study_uid, Prescription(54.0, 3, "SBRT", "curative"),
                                 PlanOptions())  # fmt: skip
    plan_id = repo.create_plan(ws.store, edit, content).plan_id
    repo.review_plan(ws.store, phys.authorize(Permission.REVIEW_PLANS), plan_id, ws.passwords[PHYSICIST])
    repo.approve_plan(ws.store, rad.authorize(repo.APPROVAL_PERMISSION), plan_id, ws.passwords[RADIOLOGIST])
    return plan_id


def test_plan_review_sends_the_approved_plan_pdf_to_the_pacs(
    qtbot: Any, tmp_path: Path, orthanc: OrthancServer
) -> None:
    ws = workspace(tmp_path)
    add_orthanc_node(ws, orthanc)
    plan_id = approved_plan(ws)
    window = open_window(qtbot, ws)
    try:
        sign_in(qtbot, window, RADIOLOGIST, ws.passwords[RADIOLOGIST])
        worklist = window.panels["worklist"]  # open the study from the worklist, as in the walkthrough
        qtbot.waitUntil(lambda: worklist.local_table.rowCount() == 1, timeout=15000)
        worklist.local_table.selectRow(0)
        worklist.open_selected()
        qtbot.waitUntil(lambda: window.study is not None, timeout=60000)
        plan = window.panels["plan"]
        window.show_panel("plan")
        qtbot.waitUntil(lambda: plan.record is not None and plan.node.count() == 1, timeout=30000)
        assert plan.record.plan_id == plan_id and plan.record.status == "approved"
        assert plan.send_btn.isEnabled() and plan.node.currentText() == "orthanc"
        assert orthanc.instance_count() == 0
        plan.send_btn.click()  # -> send_to_pacs()
        qtbot.waitUntil(lambda: plan.message.text().startswith("sent to") or "failed" in
                        window.statusBar().currentMessage(), timeout=60000)  # fmt: skip
        assert plan.message.text() == "sent to orthanc: 1 pdf", window.statusBar().currentMessage()

        instances = orthanc.get_json("/instances")
        assert isinstance(instances, list) and len(instances) == 1
        tags = orthanc.get_json(f"/instances/{instances[0]}/simplified-tags")
        assert isinstance(tags, dict)
        assert tags["SOPClassUID"] == EncapsulatedPDFStorage and tags["StudyInstanceUID"] == ws.study_uid
        assert tags["DocumentTitle"] == f"Treatment plan {plan_id} v1 (approved)"
        with urllib.request.urlopen(f"{orthanc.url}/instances/{instances[0]}/file", timeout=10) as resp:  # noqa: S310
            ds = pydicom.dcmread(io.BytesIO(resp.read()))
        assert bytes(ds.EncapsulatedDocument).startswith(b"%PDF")
        patient = summary(ws, ws.study_uid)
        assert patient is not None and ds.PatientID == patient.patient_id
    finally:
        close(qtbot, window, ws)

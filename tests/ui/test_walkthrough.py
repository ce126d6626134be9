"""The scripted walkthrough under Xvfb, against a real store and the real engine worker process: sign in, open the
demo study, change the window preset, scroll, run a segmentation job, edit/undo/save masks, run the analysis job, open
the plan, approve it with the signature dialog, preview the PDF - asserting on the model state after each step.
UI-thread stalls are measured by bench/gui_startup.py (a shared 2-vCPU test machine makes them meaningless here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shell_support import close, open_window, sign_in, workspace
from viewer_support import assert_views_not_blank

from app.bootstrap import AppContext, Credentials
from core.jobs import JobQueue
from core.plan.repository import get_plan, review_plan
from core.security.roles import Permission
from core.security.session import Session
from core.store.users import UserRepository
from core.viewer import WINDOW_PRESETS
from core.workstation.analysis import ANALYSE_JOB, decode_mask
from core.workstation.demo import PHYSICIST, RADIOLOGIST
from ui.app import keep_torch_out
from ui.smoke import grab_window, image_is_blank

pytestmark = [pytest.mark.qt, pytest.mark.slow]


@pytest.fixture
def gui_process() -> Any:
    """As `radplan gui`: PyTorch stays out of the GUI process (ui.app.keep_torch_out)."""
    remove = keep_torch_out()
    yield
    remove()


def test_walkthrough(qtbot: Any, tmp_path: Path, gui_process: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from core.workstation.undo import MaskUndoStack

    recorded_on_ui: list[bool] = []
    real_apply = MaskUndoStack.apply

    def apply(stack: MaskUndoStack, label: str, new_mask: Any, description: str) -> bool:
        if description.startswith("AI segmentation"):
            recorded_on_ui.append(threading.current_thread() is threading.main_thread())
        return real_apply(stack, label, new_mask, description)

    monkeypatch.setattr(MaskUndoStack, "apply", apply)
    ws = workspace(tmp_path)
    manifest = json.loads((ws.demo_folder / "manifest.json").read_text())
    ws.store.close()  # the composition root opens the store, as `radplan gui` does, and starts the worker
    app = AppContext(
        settings=ws_settings(ws),
        credentials=Credentials(user=lambda: RADIOLOGIST, password=lambda _n: "", passphrase=lambda _p: ws.passphrase),
    )
    store = app.store()
    ws = type(ws)(ws.data_dir, ws.demo_folder, store, ws.study_uid, ws.passwords, ws.passphrase)
    window = open_window(qtbot, ws, ensure_worker=app.ensure_worker)
    try:
        _walk(qtbot, window, ws, manifest, recorded_on_ui)
    finally:
        close(qtbot, window, ws)
        app.close()


def ws_settings(ws: Any) -> Any:
    from core.settings import Settings

    return Settings(data_dir=ws.data_dir)


def _walk(qtbot: Any, window: Any, ws: Any, manifest: dict[str, Any], recorded_on_ui: list[bool]) -> None:
    # 1. sign in
    sign_in(qtbot, window, RADIOLOGIST, ws.passwords[RADIOLOGIST])
    assert window.session.user.name == RADIOLOGIST
    # 2. open the demo study from the worklist
    worklist = window.panels["worklist"]
    qtbot.waitUntil(lambda: worklist.local_table.rowCount() == 1, timeout=15000)
    worklist.local_table.selectRow(0)
    worklist.open_selected()
    qtbot.waitUntil(lambda: window.study is not None, timeout=60000)
    assert window.study.study_uid == ws.study_uid and window.study.volume.modality == "CT"
    assert "Tumour" in window.study.note or len(window.study.note) > 50  # the demo note came with the study
    host = window.panels["viewer"]
    viewer = host.viewer
    assert viewer is not None and viewer.volume is window.study.volume
    # the second step of opening: the study's RT Structure Set contours and RT Dose reach the viewer
    qtbot.waitUntil(lambda: window.study.overlays_loaded, timeout=60000)
    assert "GTV" in viewer.state.structures("contours") and viewer.dose_sampler is not None
    assert_views_not_blank(qtbot, viewer)  # each view read back from its own OpenGL window, inside the workstation
    # 3. change the window preset
    host.set_preset("lung")
    assert viewer.state.preset == "lung"
    assert (viewer.state.window, viewer.state.level) == (WINDOW_PRESETS["lung"].window, WINDOW_PRESETS["lung"].level)
    assert host.preset.currentText() == "lung"
    # 4. scroll the axial view
    before = viewer.state.slice_index("axial")
    host.scroll("axial", 3)
    assert viewer.state.slice_index("axial") == before + 3
    # 5. run a segmentation job in the engine process (region growing from the tumour centre)
    viewer.set_cursor(manifest["tumour_centre_mm"])
    seg = window.panels["segmentation"]
    window.show_panel("segmentation")
    seg.label.setCurrentText("gtv")
    seg.method.setCurrentIndex(1)
    seg.run_segmentation()
    qtbot.waitUntil(lambda: seg.last_job is not None or "failed" in seg.message.text().lower(), timeout=180000)
    assert seg.last_job is not None, seg.message.text()
    assert seg.last_job.status == "done" and seg.last_job.result["volumes_cc"]["gtv"] > 0
    gtv = window.study.masks.masks["gtv"]
    assert gtv.any() and "inference:" in window._status_labels["backend"].text()
    assert recorded_on_ui == [False], "the job's masks are recorded in the worker thread, not on the UI thread"
    # 5b. edit: brush, undo, redo, save as a new version
    voxels = int(gtv.sum())
    seg.tool.setCurrentText("brush")
    seg.radius.setValue(8.0)
    seg.apply_tool((2, 2, 2))  # a corner far from the tumour
    qtbot.waitUntil(lambda: int(window.study.masks.masks["gtv"].sum()) > voxels, timeout=20000)
    seg.undo()
    assert int(window.study.masks.masks["gtv"].sum()) == voxels
    seg.redo()
    assert int(window.study.masks.masks["gtv"].sum()) > voxels
    seg.undo()
    seg.save_version()
    qtbot.waitUntil(lambda: "saved as version" in seg.message.text(), timeout=20000)
    assert window.study.mask_source.startswith("saved version")
    # 6. the analysis
    analysis = window.panels["analysis"]
    window.show_panel("analysis")
    analysis.facts.setText("age=67")
    analysis.run_analysis()
    qtbot.waitUntil(lambda: analysis.result is not None or "failed" in analysis.status.text(), timeout=240000)
    assert analysis.result is not None, analysis.status.text()
    assert analysis.features_table.rowCount() > 50 and analysis.highlight_count > 0
    jobs = JobQueue(ws.store).list(kind=ANALYSE_JOB)  # it ran in the engine worker, as a job, with the open GTV
    assert [(j.id, j.status) for j in jobs] == [(analysis.job_id, "done")]
    sent = decode_mask(jobs[0].payload["mask"], window.study.volume.array.shape)
    assert np.array_equal(sent, window.study.masks.masks["gtv"] > 0) and jobs[0].payload["facts"] == {"age": 67}
    analysis.feature_search.setText("morph_volume")
    assert 1 <= analysis.features_table.rowCount() < 5
    out = ws.data_dir.parent / "features.csv"
    analysis.export_csv(out)
    qtbot.waitUntil(out.exists, timeout=10000)
    assert out.read_text().splitlines()[0] == "ibsi_tag,feature,value"
    # 7. the plan: create, physicist review (core API, as the physicist would at their workstation), approve here
    plan = window.panels["plan"]
    window.show_panel("plan")
    plan.dose.setValue(54.0)
    plan.fractions.setValue(3)
    assert "BED 151.2 Gy" in plan.biology.text()
    plan.create_plan()
    qtbot.waitUntil(lambda: plan.record is not None, timeout=120000)
    assert plan.record.status == "draft" and plan.curves and plan.constraints.rowCount() > 0
    plan.set_cursor_dose(20.0)
    assert "At 20.00 Gy" in plan.readout.text() and "%" in plan.readout.text()
    physicist = UserRepository(ws.store).authenticate(PHYSICIST, ws.passwords[PHYSICIST])
    review_plan(ws.store, Session(physicist).authorize(Permission.REVIEW_PLANS), plan.record.plan_id,
                ws.passwords[PHYSICIST])  # fmt: skip
    plan.load_plan(plan.record.plan_id)
    qtbot.waitUntil(lambda: plan.record.status == "reviewed", timeout=20000)
    assert plan.approve_btn.isEnabled()
    dialog = plan.sign("approve")
    dialog.password.setText("wrong-password")
    dialog.accept()
    qtbot.waitUntil(lambda: "failed" in window.statusBar().currentMessage().lower(), timeout=20000)
    assert plan.record.status == "reviewed"
    dialog = plan.sign("approve")
    dialog.password.setText(ws.passwords[RADIOLOGIST])
    dialog.comment.setPlainText("approved in the walkthrough")
    dialog.accept()
    qtbot.waitUntil(lambda: plan.record.status == "approved", timeout=20000)
    reader = Session(window.session.user).authorize(Permission.READ_PATIENT_DATA)
    stored = get_plan(ws.store, reader, plan.record.plan_id)
    assert stored.status == "approved" and stored.signatures[-1].signer == RADIOLOGIST
    # 8. preview the PDF
    plan.preview_pdf()
    qtbot.waitUntil(lambda: plan.pdf_doc.pageCount() > 0, timeout=60000)
    assert plan.pdf_path is not None and plan.pdf_path.read_bytes().startswith(b"%PDF")
    # screenshots: the whole window and each panel must show something
    for name in ("viewer", "analysis", "plan"):
        window.show_panel(name)
        qtbot.wait(200)
        assert not image_is_blank(window.tabs.currentWidget().grab().toImage()), name
    window.show_panel("viewer")
    qtbot.wait(300)
    assert not image_is_blank(grab_window(window))
    assert_views_not_blank(qtbot, viewer)
    assert np.array_equal(window.study.masks.masks["gtv"] > 0, gtv > 0)

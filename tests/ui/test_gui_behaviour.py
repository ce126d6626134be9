"""Workstation behaviour that the walkthrough does not reach, in real windows under Xvfb with a real store: Enter
opens a study, the status bar's inference backend, input kept when a job fails, reject and the signature dialog's
own checks, constraint colours, analysis tables, radiomics sorting, the jobs panel with engine jobs, and a recorded
decision that makes the patient a similar previous patient."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QDialogButtonBox
from shell_support import close, open_window, sign_in, workspace

from core.jobs import JobQueue
from core.plan.repository import PlanWorkflowError, get_plan
from core.security.roles import Permission
from core.security.session import Session
from core.store.users import UserRepository
from core.workstation.analysis import ANALYSE_JOB
from core.workstation.demo import PHYSICIST, RADIOLOGIST
from core.workstation.plan_review import STATUS_COLOURS

pytestmark = pytest.mark.qt

#: Facts for which the NSCLC rule base recommends SBRT 54 Gy/3 (NSCLC-R02) and both shipped models score.
FACTS = {"age": 67, "ecog": 1, "histology": "adenocarcinoma", "location": "peripheral", "t_stage": "T1c",
         "n_stage": "N0", "m_stage": "M0", "tumor_diameter_cm": 2.3, "operable": False, "ild": False,
         "prior_thoracic_rt": False, "fev1_percent": 80, "dlco_percent": 70, "bed10_gy": 105,
         "mean_lung_dose_gy": 5}  # fmt: skip
FEATURES = [("morph_volume", "original_shape_MeshVolume", 12000.0), ("morph_sphericity", "original_shape_Sphericity",
            0.8), ("ih_entropy", "original_firstorder_Entropy", 3.2), ("stat_mean", "original_firstorder_Mean", -9.5),
            ("stat_max", "original_firstorder_Maximum", 250.0)]  # fmt: skip


def analysis_result() -> dict[str, Any]:
    """What the engine's analyse job returns (core.workstation.analysis.analyse), built from facts and radiomics
    values without an image: the rules and models are the real ones."""
    from core.models.registry import SHIPPED_MODELS
    from core.rules.recommend import recommend
    from core.rules.rulebase import load_rulebase

    radiomics = {tag: value for tag, _name, value in FEATURES}
    rec = recommend(load_rulebase("nsclc"), FACTS, None, model_roots=[SHIPPED_MODELS], radiomics=radiomics)
    features = [{"tag": t, "pyradiomics": n, "value": v} for t, n, v in FEATURES]
    return {"features": features, "mentions": [], "recommendation": rec, "radiomics_error": ""}


def signed_in(qtbot: Any, tmp_path: Path, user: str = RADIOLOGIST, **ctx: Any) -> tuple[Any, Any]:
    ws = workspace(tmp_path)
    window = open_window(qtbot, ws, **ctx)
    sign_in(qtbot, window, user, ws.passwords[user])
    return ws, window


def open_demo(qtbot: Any, window: Any, ws: Any) -> None:
    window.open_study(ws.study_uid)
    qtbot.waitUntil(lambda: window.study is not None, timeout=30000)


def cells(table: Any, column: int) -> list[str]:
    return [table.item(r, column).text() for r in range(table.rowCount())]


def test_enter_opens_the_selected_local_study(qtbot: Any, tmp_path: Path) -> None:
    from core.demo import generate_demo_study

    ws, window = signed_in(qtbot, tmp_path)
    worklist = window.panels["worklist"]
    other = generate_demo_study(tmp_path / "other", seed=3, shape=(48, 48, 8), spacing_mm=(6.0, 6.0, 6.0))
    worklist.import_paths([str(tmp_path / "other")])
    qtbot.waitUntil(lambda: worklist.local_table.rowCount() == 2, timeout=30000)
    row = cells(worklist.local_table, 6).index(other.study_instance_uid)
    worklist.local_table.selectRow(row)
    worklist.local_table.setFocus()
    qtbot.keyClick(worklist.local_table, Qt.Key.Key_Return)  # a real key press on the table
    qtbot.waitUntil(lambda: window.study is not None, timeout=30000)
    assert window.study.study_uid == other.study_instance_uid
    assert window.tabs.currentWidget() is window.panels["viewer"]
    # Enter in the search box opens the only match
    window.show_panel("worklist")
    worklist.search.setText(ws.study_uid[-12:])
    assert worklist.local_table.rowCount() == 1
    worklist.search.setFocus()
    qtbot.keyClick(worklist.search, Qt.Key.Key_Enter)
    qtbot.waitUntil(lambda: window.study.study_uid == ws.study_uid, timeout=30000)
    # a double-click on a row opens that study too
    window.show_panel("worklist")
    worklist.search.setText("")
    table = worklist.local_table
    row = cells(table, 6).index(other.study_instance_uid)
    where = table.visualRect(table.model().index(row, 1)).center()
    opened: list[str] = []
    window.study_opened.connect(lambda study: opened.append(study.study_uid))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=where)  # a double-click is press, release,
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=where)  # then the double-click event
    qtbot.waitUntil(lambda: window.study.study_uid == other.study_instance_uid, timeout=30000)
    qtbot.wait(500)
    assert opened == [other.study_instance_uid]  # opened once, not once per signal
    close(qtbot, window, ws)


def test_status_bar_names_the_backend_the_engine_would_pick(qtbot: Any, tmp_path: Path) -> None:
    from app.cli.gui_cmds import backend_name
    from engines.backends.availability import expected_auto_choice, gpu_visible

    ws, window = signed_in(qtbot, tmp_path, backend_name=backend_name)
    text = window._status_labels["backend"].text()
    assert text == f"inference: {expected_auto_choice()}"
    name, _, device = expected_auto_choice().partition(" ")
    assert name in ("tensorrt", "onnxruntime", "torch") and device in ("(cuda)", "(cpu)"), text
    if not gpu_visible():  # e.g. TensorRT installed on a machine without a GPU: the engine runs on the CPU
        assert device == "(cpu)" and "tensorrt" not in text, text
    close(qtbot, window, ws)


def test_failed_analysis_keeps_the_note_and_facts(qtbot: Any, tmp_path: Path) -> None:
    reason = "the radiomics step ran out of memory: close other programs and run the analysis again"
    holder: dict[str, Any] = {}

    def failing_engine() -> None:  # plays the engine worker: takes the queued job and fails it with a reason
        queue = JobQueue(holder["ws"].store)
        job = queue.claim_next(os.getpid(), [ANALYSE_JOB])
        assert job is not None
        queue.fail(job.id, reason)

    ws, window = signed_in(qtbot, tmp_path, ensure_worker=failing_engine)
    holder["ws"] = ws
    open_demo(qtbot, window, ws)
    analysis = window.panels["analysis"]
    analysis.note.setPlainText("Peripheral adenocarcinoma of the right upper lobe, 2.3 cm. No nodal disease.")
    analysis.facts.setText("age=67, ecog=1")
    note, facts = analysis.note.toPlainText(), analysis.facts.text()
    analysis.run_btn.click()
    qtbot.waitUntil(lambda: analysis.run_btn.isEnabled(), timeout=30000)
    status = analysis.status.text()
    assert analysis.result is None
    assert reason in status and "kept" in status and "Traceback" not in status and status.endswith("."), status
    assert analysis.note.toPlainText() == note and analysis.facts.text() == facts
    job = JobQueue(ws.store).get(analysis.job_id)
    assert job.status == "failed" and job.error == reason
    close(qtbot, window, ws)


def test_failed_plan_creation_keeps_the_prescription(qtbot: Any, tmp_path: Path, monkeypatch: Any) -> None:
    import core.plan.builder

    def no_structures(*_a: Any, **_k: Any) -> Any:
        raise PlanWorkflowError("the study has no RT structure set: segment it and save the masks first")

    monkeypatch.setattr(core.plan.builder, "build_plan_content", no_structures)
    ws, window = signed_in(qtbot, tmp_path)
    open_demo(qtbot, window, ws)
    plan = window.panels["plan"]
    plan.dose.setValue(60.0)
    plan.fractions.setValue(8)
    plan.technique.setCurrentText("VMAT")
    plan.intent.setCurrentText("palliative")
    biology = plan.biology.text()
    plan.create_btn.click()
    qtbot.waitUntil(lambda: "prescription you entered is kept" in window.statusBar().currentMessage(), timeout=30000)
    message = window.statusBar().currentMessage()
    assert message.startswith("Creating the plan failed: the study has no RT structure set") and "Traceback" not in \
        message  # fmt: skip
    assert (plan.dose.value(), plan.fractions.value(), plan.technique.currentText(), plan.intent.currentText()) == (
        60.0, 8, "VMAT", "palliative")  # fmt: skip
    assert plan.biology.text() == biology and plan.record is None and plan.create_btn.isEnabled()
    close(qtbot, window, ws)


def create_plan(qtbot: Any, plan: Any, dose: float = 54.0, fractions: int = 3) -> None:
    plan.dose.setValue(dose)
    plan.fractions.setValue(fractions)
    plan.create_btn.click()
    qtbot.waitUntil(lambda: plan.record is not None, timeout=120000)


def test_constraint_table_colours_and_status_words(qtbot: Any, tmp_path: Path) -> None:
    from dataclasses import replace

    ws, window = signed_in(qtbot, tmp_path)
    open_demo(qtbot, window, ws)
    plan = window.panels["plan"]
    create_plan(qtbot, plan)
    record = plan.record
    assert {r.status for r in record.content.constraint_results} == {"pass", "not_evaluated"}  # the demo's OARs

    def check(results: Any) -> None:
        table = plan.constraints
        assert table.rowCount() == len(results) > 0
        for row, r in enumerate(results):
            colour, word = STATUS_COLOURS[r.status]
            assert table.item(row, 0).text() == r.structure and table.item(row, 6).text() == word
            for col in range(table.columnCount()):
                assert table.item(row, col).background().color().name() == colour

    check(record.content.constraint_results)
    # the demo plan fails nothing: show the same plan with two results marked fail and warning
    results = list(record.content.constraint_results)
    results[0], results[1] = replace(results[0], status="fail"), replace(results[1], status="warning")
    plan.show_record(replace(record, content=replace(record.content, constraint_results=tuple(results))))
    check(results)
    assert {"PASS", "FAIL", "WARNING", "NOT EVALUATED"} == set(cells(plan.constraints, 6))
    assert plan.constraints.item(0, 0).background().color().name() == "#b71c1c"  # red for a failed limit
    assert len(plan.curves) > 1  # one DVH curve per structure
    close(qtbot, window, ws)


def sign_with(qtbot: Any, plan: Any, decision: str, password: str, comment: str) -> Any:
    dialog = plan.sign(decision)
    qtbot.waitExposed(dialog)
    dialog.password.setText(password)
    dialog.comment.setPlainText(comment)
    dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()  # the Sign button
    return dialog


def test_reject_in_the_gui_and_the_signature_dialog_checks(qtbot: Any, tmp_path: Path) -> None:
    ws, window = signed_in(qtbot, tmp_path)
    open_demo(qtbot, window, ws)
    plan = window.panels["plan"]
    create_plan(qtbot, plan)
    assert plan.record.status == "draft" and plan.reject_btn.isEnabled() and not plan.approve_btn.isEnabled()
    # no password: the dialog refuses and stays open
    dialog = sign_with(qtbot, plan, "reject", "", "dose too high for the chest wall")
    assert dialog.isVisible() and dialog.error.text() == "Enter your password to sign."
    dialog.close()
    # a rejection reason shorter than 5 characters: refused too
    dialog = sign_with(qtbot, plan, "reject", ws.passwords[RADIOLOGIST], "no")
    assert dialog.isVisible() and "reason for the rejection" in dialog.error.text()
    dialog.close()
    qtbot.wait(200)
    assert get_plan(ws.store, reader(ws), plan.record.plan_id).status == "draft"
    # both right: the plan is rejected, with the reason stored in the signature
    dialog = sign_with(qtbot, plan, "reject", ws.passwords[RADIOLOGIST], "Chest wall dose too high; replan")
    assert not dialog.isVisible()
    qtbot.waitUntil(lambda: plan.record.status == "rejected", timeout=20000)
    assert plan.message.text() == f"plan {plan.record.plan_id} is now rejected"
    stored = get_plan(ws.store, reader(ws), plan.record.plan_id)
    assert stored.status == "rejected"
    assert not plan.reject_btn.isEnabled() and not plan.approve_btn.isEnabled()
    close(qtbot, window, ws)


def reader(ws: Any) -> Any:
    user = UserRepository(ws.store).authenticate(RADIOLOGIST, ws.passwords[RADIOLOGIST])
    return Session(user).authorize(Permission.READ_PATIENT_DATA)


def test_physicist_reviews_in_the_gui(qtbot: Any, tmp_path: Path) -> None:
    from core.plan.builder import PlanOptions, build_plan_content
    from core.plan.model import Prescription
    from core.plan.repository import create_plan as store_plan

    ws = workspace(tmp_path)
    radiologist = Session(UserRepository(ws.store).authenticate(RADIOLOGIST, ws.passwords[RADIOLOGIST]))
    content = build_plan_content(ws.store, radiologist.authorize(Permission.EDIT_PLANS), ws.study_uid,
                                 Prescription(54.0, 3, "SBRT", "curative"), PlanOptions())  # fmt: skip
    plan_id = store_plan(ws.store, radiologist.authorize(Permission.EDIT_PLANS), content).plan_id
    window = open_window(qtbot, ws)
    sign_in(qtbot, window, PHYSICIST, ws.passwords[PHYSICIST])
    open_demo(qtbot, window, ws)
    plan = window.panels["plan"]
    qtbot.waitUntil(lambda: plan.record is not None and plan.record.plan_id == plan_id, timeout=30000)
    assert plan.review_btn.isEnabled() and not plan.approve_btn.isEnabled() and not plan.create_btn.isEnabled()
    dialog = sign_with(qtbot, plan, "review", "wrong password", "")
    assert not dialog.isVisible()  # the dialog checks only that a password is there; the store checks it
    qtbot.waitUntil(lambda: "failed" in window.statusBar().currentMessage(), timeout=20000)
    assert plan.record.status == "draft"
    sign_with(qtbot, plan, "review", ws.passwords[PHYSICIST], "")
    qtbot.waitUntil(lambda: plan.record.status == "reviewed", timeout=20000)
    assert get_plan(ws.store, reader(ws), plan_id).status == "reviewed"
    close(qtbot, window, ws)


def test_analysis_tables_sorting_and_a_recorded_decision_makes_a_similar_patient(qtbot: Any, tmp_path: Path) -> None:
    ws, window = signed_in(qtbot, tmp_path)
    open_demo(qtbot, window, ws)
    analysis = window.panels["analysis"]
    result = analysis_result()
    rec = result["recommendation"]
    analysis.show_result(result)
    # model scores: one row per model, the first selected, its contributions drawn as one bar each
    scores = analysis.scores_table
    assert scores.rowCount() == len(rec["scores"]) == 2
    assert cells(scores, 0) == [s["title"] or s["model"] for s in rec["scores"]]
    assert [float(p) for p in cells(scores, 2)] == [round(s["probability"], 3) for s in rec["scores"]]
    assert scores.selectionModel().selectedRows()[0].row() == 0
    bars = [i for i in analysis.contrib_plot.getPlotItem().items if type(i).__name__ == "BarGraphItem"]
    assert len(bars) == 1 and len(bars[0].opts["width"]) == len(rec["scores"][0]["contributions"])
    # rules fired, with their sources
    assert cells(analysis.rules_table, 0) == ["NSCLC-R02"]
    assert "Timmerman" in analysis.rules_table.item(0, 3).text()
    # radiomics table sorted by clicking the Value header: numerically, both ways
    table = analysis.features_table
    assert table.rowCount() == len(FEATURES)
    header = table.horizontalHeader()
    x = header.sectionViewportPosition(2) + header.sectionSize(2) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    first = [float(v) for v in cells(table, 2)]
    assert first in (sorted(first), sorted(first, reverse=True)) and first != [v for _t, _n, v in FEATURES]
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    assert [float(v) for v in cells(table, 2)] == first[::-1]
    assert cells(table, 0)[[float(v) for v in cells(table, 2)].index(12000.0)] == "morph_volume"
    # nobody decided yet: no similar previous patient
    qtbot.waitUntil(lambda: "no stored patient" in analysis.similar_message.text(), timeout=30000)
    assert analysis.similar_table.rowCount() == 0 and analysis.accept_btn.isEnabled()
    # an override without a reason is refused; accepting records the decision and the patient becomes similar
    analysis.override_btn.click()
    assert "at least 10 characters" in analysis.decision_message.text()
    analysis.accept_btn.click()
    qtbot.waitUntil(lambda: analysis.similar_table.rowCount() > 0, timeout=30000)
    patient_id = window.panels["worklist"].studies[0].patient_id
    assert analysis.decision_message.text() == f"Decision recorded (accept) for patient {patient_id}."
    assert cells(analysis.similar_table, 0) == [patient_id] and cells(analysis.similar_table, 3) == ["accept"]
    assert float(analysis.similar_table.item(0, 1).text()) == 0.0  # the same features: distance 0
    from core.rules.similar import similar_patients

    user = UserRepository(ws.store).authenticate(RADIOLOGIST, ws.passwords[RADIOLOGIST])
    facts = {k: v["value"] for k, v in rec["facts"].items()}
    _names, found = similar_patients(ws.store, Session(user).authorize(Permission.READ_PATIENT_DATA), facts)
    assert [p.patient_id for p in found] == [patient_id]
    close(qtbot, window, ws)


def test_jobs_panel_lists_cancels_and_explains_engine_jobs(qtbot: Any, tmp_path: Path) -> None:
    ws, window = signed_in(qtbot, tmp_path)
    queue = JobQueue(ws.store)
    queued = queue.submit(ANALYSE_JOB, {"note": "x"}, study_uid=ws.study_uid, created_by=RADIOLOGIST)
    failed = queue.submit("segment", {}, study_uid=ws.study_uid, created_by=RADIOLOGIST)
    running = queue.claim_next(os.getpid(), ["segment"])
    assert running is not None and running.id == failed
    reason = "the model file is damaged (checksum differs): reinstall the model"
    queue.fail(failed, reason)
    window.show_panel("jobs")
    jobs = window.panels["jobs"]
    jobs.poll_engine()

    def engine_rows() -> dict[int, list[str]]:
        out = {}
        for r in range(jobs.table.rowCount()):
            row = [jobs.table.item(r, c).text() for c in range(6)]
            if row[0] == "engine":
                out[int(row[1])] = row
        return out

    qtbot.waitUntil(lambda: {queued, failed} <= set(engine_rows()), timeout=10000)
    rows = engine_rows()
    assert rows[queued][2:4] == [ANALYSE_JOB, "queued"] and rows[failed][2:4] == ["segment", "failed"]
    assert rows[failed][5] == reason
    # the details pane explains the failed job
    jobs.table.selectRow(jobs.rows.index(("job", failed)))
    assert f"error: {reason}" in jobs.details.toPlainText()
    # the Cancel button cancels the queued engine job
    jobs.table.selectRow(jobs.rows.index(("job", queued)))
    jobs.cancel_btn.click()
    qtbot.waitUntil(lambda: queue.get(queued).status == "cancelled", timeout=10000)
    qtbot.waitUntil(lambda: engine_rows().get(queued, [""] * 4)[3] == "cancelled", timeout=10000)
    assert queue.get(failed).status == "failed"
    close(qtbot, window, ws)

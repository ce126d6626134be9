"""Headless workstation models: mask undo/redo, session lock, worklist filters, plan-review arithmetic, messages."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import AuthenticationError, RadPlanError
from core.security.roles import Role
from core.store.studies import StudySummary
from core.workstation.analysis import highlight_spans, parse_facts
from core.workstation.messages import friendly_message
from core.workstation.plan_review import dvh_readout, live_biology
from core.workstation.session import visible_panels
from core.workstation.undo import MaskUndoStack
from core.workstation.worklist import PacsQueryForm, filter_studies


def test_undo_redo_restores_exact_masks() -> None:
    stack = MaskUndoStack({"gtv": np.zeros((4, 5, 6), np.uint8)})
    first = np.zeros((4, 5, 6), np.uint8)
    first[1:3, 1:3, 1:3] = 1
    assert stack.apply("gtv", first, "brush")
    second = first.copy()
    second[2, 2, 2] = 0
    assert stack.apply("gtv", second, "eraser")
    assert not stack.apply("gtv", second.copy(), "nothing")  # no change, no history entry
    assert stack.history() == ["brush", "eraser"]
    stack.undo()
    assert np.array_equal(stack.masks["gtv"], first)
    stack.undo()
    assert not stack.masks["gtv"].any() and not stack.can_undo
    stack.redo()
    stack.redo()
    assert np.array_equal(stack.masks["gtv"], second) and not stack.can_redo
    stack.undo()
    stack.apply("heart", first, "new label")  # a new edit clears the redo history
    assert not stack.can_redo
    with pytest.raises(ValueError, match="shape"):
        stack.apply("gtv", np.zeros((2, 2, 2), np.uint8), "wrong")


def test_a_snapshot_is_never_changed_by_later_edits_undo_or_redo() -> None:
    """Worker threads read snapshots (the viewer's packing, ROI statistics, saving) while the UI thread undoes:
    arrays in the stack are replaced, never written in place."""
    import threading

    stack = MaskUndoStack({})
    first = np.zeros((4, 5, 6), np.uint8)
    first[1:3, 1:3, 1:3] = 1
    stack.apply("gtv", first, "brush")
    taken = stack.snapshot()
    kept = taken["gtv"].copy()
    first[:] = 0  # the caller's array is not the stack's
    stack.undo()
    assert np.array_equal(taken["gtv"], kept) and not stack.masks["gtv"].any()
    again = stack.snapshot()
    stack.redo()
    assert not again["gtv"].any() and np.array_equal(stack.masks["gtv"], kept)
    # edits from several threads at once: every one recorded, one undo step each
    masks = {f"s{i}": np.full((4, 5, 6), 1, np.uint8) for i in range(8)}
    threads = [threading.Thread(target=stack.apply, args=(n, m, n)) for n, m in masks.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(stack.history()[1:]) == sorted(masks) and set(stack.snapshot()) == {"gtv", *masks}


def test_roles_see_their_panels() -> None:
    assert visible_panels(Role.ADMIN) == ["settings"]
    assert "settings" not in visible_panels(Role.RADIOLOGIST)
    assert {"worklist", "viewer", "segmentation", "analysis", "plan", "jobs"} <= set(visible_panels(Role.RADIOLOGIST))
    assert "segmentation" not in visible_panels(Role.PHYSICIST)


def _study(pid: str, name: str, date: str) -> StudySummary:
    return StudySummary(f"1.2.{pid}", pid, name, date, "CT THORAX", "ACC" + pid, "complete", ("CT",), 1, 10, 100)


def test_filters_and_query_form() -> None:
    studies = [_study("P1", "DOE^JANE", "20240102"), _study("P2", "ROE^RICHARD", "20230505")]
    assert [s.patient_id for s in filter_studies(studies, "doe 2024")] == ["P1"]
    assert len(filter_studies(studies, "")) == 2
    assert filter_studies(studies, "nobody") == []
    assert PacsQueryForm(date_from="2024-01-01", date_to="20240131").date() == "20240101-20240131"
    assert PacsQueryForm(date_from="20240101").date() == "20240101-"
    with pytest.raises(ValueError, match="after"):
        PacsQueryForm(date_from="20240201", date_to="20240101").date()
    with pytest.raises(ValueError, match="YYYYMMDD"):
        PacsQueryForm(date_to="2024").date()


def test_live_biology_and_dvh_readout() -> None:
    live = live_biology(60, 30, "IMRT", "curative", [10.0, 3.0])
    assert live.ok and live.rows[0]["eqd2_gy"] == pytest.approx(60.0) and live.rows[1]["bed_gy"] == pytest.approx(100)
    bad = live_biology(60, 0, "IMRT", "curative", [10.0])
    assert not bad.ok and "fractions" in bad.message
    curves = {"Lung": [[0.0, 100.0], [10.0, 50.0], [20.0, 0.0]]}
    assert dvh_readout(curves, 5.0)["Lung"] == pytest.approx(75.0)
    assert dvh_readout(curves, 30.0)["Lung"] == 0.0


def test_messages_are_sentences_without_traceback() -> None:
    text = friendly_message(ZeroDivisionError("division by zero"), "running the analysis")
    assert text.startswith("Running the analysis failed") and "log file" in text and "Traceback" not in text
    assert "Check the user name" in friendly_message(AuthenticationError("wrong password"), "signing in")
    assert friendly_message(RadPlanError("the study is gone"), "opening the study") == (
        "Opening the study failed: the study is gone."
    )


def test_facts_and_highlights() -> None:
    assert parse_facts("age=67, ecog=1; smoker=yes, histology=adeno") == {
        "age": 67, "ecog": 1, "smoker": True, "histology": "adeno"}  # fmt: skip
    with pytest.raises(ValueError, match="name=value"):
        parse_facts("age 67")
    spans = highlight_spans("no effusion, mass", [
        {"start": 3, "end": 11, "negated": True}, {"start": 5, "end": 9}, {"start": 13, "end": 17}])  # fmt: skip
    assert spans == [(3, 11, "negated"), (13, 17, "finding")]

"""core.workstation.analysis.record_decision: the workstation's accept/override of a recommendation is stored as
feedback for the open study's patient (who then joins the similar-patients cohort); bad input is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.models.registry import SHIPPED_MODELS
from core.rules.feedback import FeedbackError, feedback_rows
from core.rules.recommend import recommend
from core.rules.rulebase import load_rulebase
from core.rules.similar import similar_patients
from core.security.roles import Permission
from core.security.session import Session
from core.store.studies import list_studies
from core.store.users import UserRepository
from core.workstation.analysis import record_decision
from core.workstation.demo import RADIOLOGIST, build_demo_workspace

FACTS = {"age": 67, "ecog": 1, "histology": "adenocarcinoma", "location": "peripheral", "t_stage": "T1c",
         "n_stage": "N0", "m_stage": "M0", "tumor_diameter_cm": 2.3, "operable": False}  # fmt: skip


def test_override_is_recorded_for_the_studys_patient(tmp_path: Path) -> None:
    ws = build_demo_workspace(tmp_path / "ws", shape=(48, 48, 16), spacing_mm=(6.0, 6.0, 6.0))
    session = Session(UserRepository(ws.store).authenticate(RADIOLOGIST, ws.passwords[RADIOLOGIST]))
    read, edit = session.authorize(Permission.READ_PATIENT_DATA), session.authorize(Permission.EDIT_PLANS)
    rec = recommend(load_rulebase("nsclc"), FACTS, None, model_roots=[SHIPPED_MODELS],
                    radiomics={"morph_volume": 9000.0, "ih_entropy": 3.0})  # fmt: skip
    assert rec["recommendations"]
    result: dict[str, Any] = {"recommendation": rec, "features": [], "mentions": []}
    with pytest.raises(FeedbackError, match="at least 10 characters"):
        record_decision(ws.store, read, edit, result, "override", study_uid=ws.study_uid, reason="no")
    with pytest.raises(FeedbackError, match="not in the store"):
        record_decision(ws.store, read, edit, result, "accept", study_uid="1.2.3.4")
    with pytest.raises(FeedbackError, match="no recommendation"):
        record_decision(ws.store, read, edit, {"recommendation": {**rec, "recommendations": []}}, "accept",
                        study_uid=ws.study_uid)  # fmt: skip
    row, patient_id = record_decision(ws.store, read, edit, result, "override", study_uid=ws.study_uid,
                                      reason="48 Gy in 4 fractions: tumour abuts the chest wall")  # fmt: skip
    assert patient_id == list_studies(ws.store, read)[0].patient_id
    rows = feedback_rows(ws.store, read, "test.read")
    assert [(r["id"], r["patient_id"], r["decision"]) for r in rows] == [(row, patient_id, "override")]
    assert rows[0]["facts"]["morph_volume"] == 9000.0 and rows[0]["rule_ids"] == ["NSCLC-R02"]
    facts = {k: v["value"] for k, v in rec["facts"].items()}
    _names, found = similar_patients(ws.store, read, facts)
    assert [(p.patient_id, p.decision) for p in found] == [(patient_id, "override")]
    ws.store.close()

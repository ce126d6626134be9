"""Feedback loop: accept/override stored append-only, audited, reported per rule and model version, exported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import PermissionDeniedError
from core.rules.feedback import FeedbackError, export_feedback, feedback_report, record_feedback
from core.rules.similar import similar_patients
from core.security.roles import Permission, Role
from core.security.session import Session
from core.store.store import Store
from core.store.users import UserRepository
from tests.conftest import ADMIN, ADMIN_PW, PHYS, PHYS_PW, RAD, RAD_PW

RESULT: dict[str, Any] = {
    "site": "nsclc",
    "recommendations": [{"intent": "curative", "modality": "SBRT", "total_dose_gy": 54.0, "fractions": 3,
                         "concurrent_chemo": False, "rule_ids": ["NSCLC-R02"]}],
    "scores": [{"model": "rp_grade2", "model_version": "1.0.0"},
               {"model": "local_control_2y", "model_version": "1.0.0"}],
    "facts": {"t_stage": {"value": "T1b", "source": "json"}, "ecog": {"value": 1, "source": "note"}},
}  # fmt: skip


def _sessions(store: Store) -> tuple[Session, Session]:
    users = UserRepository(store)
    admin = users.authenticate(ADMIN, ADMIN_PW)
    manage = Session(admin).authorize(Permission.MANAGE_USERS)
    users.add(manage, RAD, Role.RADIOLOGIST, RAD_PW)
    users.add(manage, PHYS, Role.PHYSICIST, PHYS_PW)
    return Session(users.authenticate(RAD, RAD_PW)), Session(users.authenticate(PHYS, PHYS_PW))


def test_feedback_is_stored_audited_reported_and_exported(passphrase_store: Store, tmp_path: Path) -> None:
    rad, phys = _sessions(passphrase_store)
    edit = rad.authorize(Permission.EDIT_PLANS)
    record_feedback(passphrase_store, edit, RESULT, "accept", patient_id="P1")
    record_feedback(passphrase_store, edit, RESULT, "accept", patient_id="P2")
    other = {**RESULT, "recommendations": [{**RESULT["recommendations"][0], "rule_ids": ["NSCLC-R05"]}], "scores": []}
    record_feedback(
        passphrase_store, edit, other, "override", reason="Patient prefers fewer visits", chosen={"fractions": 15}
    )
    read = phys.authorize(Permission.READ_PATIENT_DATA)
    rates = {
        (r.kind, r.key): (r.accepted, r.overridden, r.override_rate) for r in feedback_report(passphrase_store, read)
    }
    assert rates == {
        ("rule", "NSCLC-R02"): (2, 0, 0.0), ("rule", "NSCLC-R05"): (0, 1, 1.0),
        ("model", "rp_grade2@1.0.0"): (2, 0, 0.0), ("model", "local_control_2y@1.0.0"): (2, 0, 0.0),
    }  # fmt: skip
    out = tmp_path / "feedback.jsonl"
    assert export_feedback(passphrase_store, read, out) == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["facts"] == {"t_stage": "T1b", "ecog": 1} and rows[2]["chosen"] == {"fractions": 15}
    assert rows[2]["reason"] == "Patient prefers fewer visits" and rows[2]["user_name"] == RAD
    with pytest.raises(FeedbackError, match="exists"):
        export_feedback(passphrase_store, read, out)
    actions = [r[0] for r in passphrase_store.query("SELECT action FROM audit ORDER BY seq")]
    assert actions[-5:] == ["decision.accept", "decision.accept", "decision.override", "decision.feedback_report",
                            "decision.feedback_export"]  # fmt: skip
    with pytest.raises(Exception, match="append-only"), passphrase_store.transaction() as conn:
        conn.execute("DELETE FROM decision_feedback")


def test_bad_feedback_is_refused_and_nothing_is_stored(passphrase_store: Store) -> None:
    rad, phys = _sessions(passphrase_store)
    edit = rad.authorize(Permission.EDIT_PLANS)
    with pytest.raises(FeedbackError, match="reason of at least 10"):
        record_feedback(passphrase_store, edit, RESULT, "override", reason="no")
    with pytest.raises(FeedbackError, match="no recommendation"):
        record_feedback(passphrase_store, edit, {"recommendations": []}, "accept")
    with pytest.raises(PermissionDeniedError):
        record_feedback(passphrase_store, phys.authorize(Permission.READ_PATIENT_DATA), RESULT, "accept")
    with pytest.raises(PermissionDeniedError):
        phys.authorize(Permission.EDIT_PLANS)
    assert passphrase_store.query("SELECT count(*) FROM decision_feedback") == [(0,)]


def test_similar_patients_by_radiomics_signature(passphrase_store: Store) -> None:
    rad, phys = _sessions(passphrase_store)
    edit = rad.authorize(Permission.EDIT_PLANS)
    rng = np.random.default_rng(3)
    centres = {"A": (0.85, 3.5), "B": (0.55, 5.5)}  # (morph_sphericity, ih_entropy) of two phenotypes
    for i in range(12):
        group = "A" if i % 2 == 0 else "B"
        sph, ent = centres[group] + rng.normal(0, 0.03, 2)
        facts = {"morph_sphericity": {"value": sph}, "ih_entropy": {"value": ent}, "t_stage": {"value": "T1b"}}
        dose = 54.0 if group == "A" else 60.0
        rec = {**RESULT["recommendations"][0], "total_dose_gy": dose}
        record_feedback(passphrase_store, edit, {**RESULT, "recommendations": [rec], "facts": facts}, "accept",
                        patient_id=f"{group}{i}")  # fmt: skip
    read = phys.authorize(Permission.READ_PATIENT_DATA)
    names, found = similar_patients(
        passphrase_store, read, {"morph_sphericity": 0.84, "ih_entropy": 3.6, "ecog": 1}, k=4
    )
    assert names == ["ih_entropy", "morph_sphericity"]
    assert [p.patient_id[0] for p in found] == ["A"] * 4 and all(p.same_cluster for p in found)
    assert all(p.plan["total_dose_gy"] == 54.0 for p in found)
    assert found[0].distance <= found[-1].distance
    with pytest.raises(FeedbackError, match="no radiomics features"):
        similar_patients(passphrase_store, read, {"ecog": 1})
    actions = [r[0] for r in passphrase_store.query("SELECT action FROM audit ORDER BY seq DESC LIMIT 1")]
    assert actions == ["decision.similar_patients"]

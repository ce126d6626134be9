"""Plans in the store: building from a stored demo study, the draft -> reviewed -> approved / rejected workflow,
role rules, electronic signatures, immutability of approved plans, versions, audit trail, export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.uid import EncapsulatedPDFStorage, RTStructureSetStorage

from core.demo import DemoManifest, generate_demo_study
from core.dicom.importer import import_paths
from core.dicom.writers.encapsulated_pdf import read_encapsulated_pdf
from core.errors import AuthenticationError, PermissionDeniedError
from core.plan import repository as repo
from core.plan.builder import PlanOptions, build_plan_content, load_study_objects, recommended_prescription
from core.plan.export import export_plan_dicom
from core.plan.model import PlanContent, Prescription
from core.plan.report import render_plan_pdf, write_plan_pdf
from core.plan.structures import read_rtstruct_structures
from core.rules.feedback import record_feedback
from core.security.roles import Permission, Role
from core.security.session import Access, User
from core.store import audit
from core.store.blobs import stored_bytes
from core.store.store import Store
from core.store.users import UserRepository

RAD_PW, RAD2_PW, PHYS_PW, PHYS2_PW = "radiologist-pw-1", "radiologist-pw-2", "physicist-pw-01", "physicist-pw-02"


class World:
    def __init__(self, store: Store, manifest: DemoManifest, users: dict[str, User]) -> None:
        self.store, self.manifest, self.users = store, manifest, users

    def access(self, name: str, permission: Permission) -> Access:
        return Access(self.users[name], permission)

    def draft(self, rx: Prescription | None = None) -> repo.PlanRecord:
        rad = self.access("rad1", Permission.EDIT_PLANS)
        rx = rx or Prescription(50.0, 5, "SBRT", "curative")
        content = build_plan_content(self.store, rad, self.manifest.study_instance_uid, rx, PlanOptions())
        return repo.create_plan(self.store, rad, content)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("plans")
    manifest = generate_demo_study(root / "study", seed=5, shape=(96, 96, 24), spacing_mm=(3.0, 3.0, 5.0))
    store = Store.create(root / "store", key_mode="passphrase", passphrase=lambda _p: "store-passphrase-1")
    users = UserRepository(store)
    admin = Access(users.create_first_admin("admin", "admin-password-1"), Permission.MANAGE_USERS)
    made = {
        "rad1": users.add(admin, "rad1", Role.RADIOLOGIST, RAD_PW),
        "rad2": users.add(admin, "rad2", Role.RADIOLOGIST, RAD2_PW),
        "phys1": users.add(admin, "phys1", Role.PHYSICIST, PHYS_PW),
        "phys2": users.add(admin, "phys2", Role.PHYSICIST, PHYS2_PW),
        "admin": admin.user,
    }
    import_paths(store, Access(made["rad1"], Permission.IMPORT_STUDIES), [root / "study"])
    yield World(store, manifest, made)
    store.close()


def test_plan_content_from_the_stored_study(world: World) -> None:
    record = world.draft()
    c = record.content
    assert record.status == "draft" and record.version >= 1
    assert c.patient_id == world.manifest.patient_id and c.dose_computed
    assert c.constraint_set == "tg101-5fx"
    names = {s.name: s for s in c.structures}
    assert {"GTV", "CTV", "PTV", "SpinalCord", "Heart"} <= set(names)
    assert names["PTV"].margins_mm == (5.0, 5.0, 5.0) and names["PTV"].volume_cc > names["CTV"].volume_cc
    assert names["GTV"].alpha_beta_gy == 10.0 and names["SpinalCord"].alpha_beta_gy == 3.0
    cord = next(r for r in c.constraint_results if r.organ == "spinal_cord" and r.metric == "Dmax")
    assert cord.status == "pass" and cord.value is not None and cord.value < 30.0
    assert "TG-101" in cord.source
    gtv = next(d for d in c.dvh if d["roi"] == "GTV")
    assert 0.9 * 60.0 < gtv["d95_gy"] <= 60.0
    assert PlanContent.from_json(c.to_json()) == c


def test_full_workflow_with_signatures_and_audit(world: World) -> None:
    plan = world.draft().plan_id
    reviewed = repo.review_plan(world.store, world.access("phys1", Permission.REVIEW_PLANS), plan, PHYS_PW,
                                comment="dose and contours checked")  # fmt: skip
    assert reviewed.status == "reviewed"
    approved = repo.approve_plan(world.store, world.access("rad1", repo.APPROVAL_PERMISSION), plan, RAD_PW)
    assert approved.status == "approved"
    review, approval = approved.signatures
    assert (review.signer, review.role, review.decision) == ("phys1", "physicist", "reviewed")
    assert (approval.signer, approval.role, approval.decision) == ("rad1", "radiologist", "approved")
    assert approval.payload_sha256 == approved.payload_sha256 and len(approval.signature) == 64
    assert "Approved" in approval.meaning and approval.signed_at.endswith("+00:00")
    actions = [e.action for e in audit.entries(world.store.conn, action="plan.*")]
    assert {"plan.build", "plan.create", "plan.review", "plan.approve"} <= set(actions)
    assert audit.verify(world.store.conn).ok


def test_role_rules(world: World) -> None:
    plan = world.draft().plan_id
    with pytest.raises(PermissionDeniedError):  # physicists do not create plans
        repo.create_plan(world.store, world.access("phys1", Permission.REVIEW_PLANS), world.draft().content)
    with pytest.raises(PermissionDeniedError):  # radiologists do not review
        repo.review_plan(world.store, world.access("rad1", Permission.EDIT_PLANS), plan, RAD_PW)
    with pytest.raises(repo.PlanWorkflowError, match="only when reviewed"):  # approval needs a review first
        repo.approve_plan(world.store, world.access("rad1", repo.APPROVAL_PERMISSION), plan, RAD_PW)
    repo.review_plan(world.store, world.access("phys1", Permission.REVIEW_PLANS), plan, PHYS_PW)
    with pytest.raises(PermissionDeniedError):  # physicists do not approve, even with an approve_plans access
        repo.approve_plan(world.store, world.access("phys2", Permission.APPROVE_PLANS), plan, PHYS2_PW)
    with pytest.raises(PermissionDeniedError):  # nor with the radiologist's permission object
        repo.approve_plan(world.store, world.access("phys2", repo.APPROVAL_PERMISSION), plan, PHYS2_PW)
    with pytest.raises(PermissionDeniedError):  # admins touch no plans
        repo.get_plan(world.store, world.access("admin", Permission.MANAGE_USERS), plan)
    assert repo.get_plan(world.store, world.access("rad2", Permission.READ_PATIENT_DATA), plan).status == "reviewed"


def test_wrong_signature_password_changes_nothing_and_is_audited(world: World) -> None:
    plan = world.draft().plan_id
    before = len(list(audit.entries(world.store.conn, action="user.login")))
    with pytest.raises(AuthenticationError):
        repo.review_plan(world.store, world.access("phys1", Permission.REVIEW_PLANS), plan, "wrong-password-x")
    record = repo.get_plan(world.store, world.access("rad1", Permission.READ_PATIENT_DATA), plan)
    assert record.status == "draft" and record.signatures == ()
    logins = list(audit.entries(world.store.conn, action="user.login"))
    assert len(logins) == before + 1 and logins[-1].outcome == "minor_failure" and logins[-1].actor == "phys1"


def test_rejection_needs_a_reason_and_is_final(world: World) -> None:
    plan = world.draft().plan_id
    phys = world.access("phys1", Permission.REVIEW_PLANS)
    with pytest.raises(ValueError, match="reason"):
        repo.reject_plan(world.store, phys, plan, PHYS_PW, reason=" ")
    rejected = repo.reject_plan(world.store, phys, plan, PHYS_PW, reason="PTV margin too small for motion")
    assert rejected.status == "rejected" and rejected.signatures[-1].comment == "PTV margin too small for motion"
    with pytest.raises(repo.PlanWorkflowError, match="rejected"):
        repo.review_plan(world.store, phys, plan, PHYS_PW)
    with pytest.raises(Exception, match="final"), world.store.transaction() as conn:
        conn.execute("UPDATE plans SET status = 'draft' WHERE id = ?", (plan,))


def test_approved_plans_are_immutable_and_changes_make_versions(world: World) -> None:
    first = world.draft()
    repo.review_plan(world.store, world.access("phys1", Permission.REVIEW_PLANS), first.plan_id, PHYS_PW)
    repo.approve_plan(world.store, world.access("rad1", repo.APPROVAL_PERMISSION), first.plan_id, RAD_PW)
    for sql in ("UPDATE plans SET payload = '{}' WHERE id = ?", "UPDATE plans SET status = 'draft' WHERE id = ?",
                "DELETE FROM plans WHERE id = ?"):  # fmt: skip
        with pytest.raises(Exception, match=r"immutable|never deleted"), world.store.transaction() as conn:
            conn.execute(sql, (first.plan_id,))
    with pytest.raises(Exception, match="append-only"), world.store.transaction() as conn:
        conn.execute("DELETE FROM approvals WHERE plan_fk = ?", (first.plan_id,))
    rad = world.access("rad1", Permission.EDIT_PLANS)
    changed = build_plan_content(world.store, rad, world.manifest.study_instance_uid,
                                 Prescription(54.0, 3, "SBRT", "curative"), PlanOptions())  # fmt: skip
    second = repo.new_version(world.store, rad, first.plan_id, changed)
    assert second.version == first.version + 1 and second.status == "draft" and second.previous_id == first.plan_id
    assert second.content.constraint_set == "tg101-3fx"
    repo.review_plan(world.store, world.access("phys2", Permission.REVIEW_PLANS), second.plan_id, PHYS2_PW)
    repo.approve_plan(world.store, world.access("rad2", repo.APPROVAL_PERMISSION), second.plan_id, RAD2_PW)
    old = repo.get_plan(world.store, world.access("rad1", Permission.READ_PATIENT_DATA), first.plan_id)
    assert old.status == "superseded" and old.content == first.content


def test_tampered_draft_is_detected(world: World) -> None:
    plan = world.draft().plan_id
    with world.store.transaction() as conn:
        payload = json.loads(conn.execute("SELECT payload FROM plans WHERE id = ?", (plan,)).fetchone()[0])
        payload["prescription"]["total_dose_gy"] = 80.0
        conn.execute("UPDATE plans SET payload = ? WHERE id = ?", (json.dumps(payload), plan))
    with pytest.raises(repo.PlanWorkflowError, match="checksum"):
        repo.get_plan(world.store, world.access("rad1", Permission.READ_PATIENT_DATA), plan)


def test_prescription_only_plan_says_dose_not_computed(world: World, tmp_path: Path) -> None:
    study = tmp_path / "nodose"
    manifest = generate_demo_study(study, seed=6, shape=(64, 64, 12), spacing_mm=(4.0, 4.0, 8.0))
    (study / "rtdose.dcm").unlink()
    shutil.rmtree(study / "truth")
    import_paths(world.store, world.access("rad1", Permission.IMPORT_STUDIES), [study])
    rad = world.access("rad1", Permission.EDIT_PLANS)
    content = build_plan_content(world.store, rad, manifest.study_instance_uid,
                                 Prescription(60.0, 30, "IMRT", "curative"), PlanOptions())  # fmt: skip
    assert not content.dose_computed and content.constraint_set == "quantec-conventional"
    assert content.constraint_results and all(r.note == "dose not computed" for r in content.constraint_results)
    assert content.dvh == () and content.dvh_curves == {}


def test_export_only_approved_plans_as_encapsulated_pdf(world: World, tmp_path: Path) -> None:
    plan = world.draft().plan_id
    reader = world.access("rad1", Permission.READ_PATIENT_DATA)
    with pytest.raises(repo.PlanWorkflowError, match="only an approved plan"):
        export_plan_dicom(world.store, reader, plan, tmp_path)
    repo.review_plan(world.store, world.access("phys1", Permission.REVIEW_PLANS), plan, PHYS_PW)
    repo.approve_plan(world.store, world.access("rad2", repo.APPROVAL_PERMISSION), plan, RAD2_PW)
    pdf_path, rs_path = export_plan_dicom(world.store, reader, plan, tmp_path)
    ds = pydicom.dcmread(pdf_path)
    assert ds.PatientID == world.manifest.patient_id and ds.StudyInstanceUID == world.manifest.study_instance_uid
    assert read_encapsulated_pdf(ds).startswith(b"%PDF-")
    rs = pydicom.dcmread(rs_path)
    assert rs.Modality == "RTSTRUCT" and rs.StudyInstanceUID == world.manifest.study_instance_uid
    assert [r.ROIName for r in rs.StructureSetROISequence] == ["CTV", "PTV"]
    assert [o.RTROIInterpretedType for o in rs.RTROIObservationsSequence] == ["CTV", "PTV"]
    exported = read_rtstruct_structures(rs)
    ptv = next(e for e in repo.get_plan(world.store, reader, plan).content.structures if e.name == "PTV")
    assert exported.get("PTV").polygon_volume_cc() == pytest.approx(ptv.volume_cc, rel=1e-3)
    if shutil.which("dciodvfy"):
        for path in (pdf_path, rs_path):
            check = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
            assert "Error" not in check.stdout + check.stderr, check.stderr
    assert any(e.action == "plan.export" for e in audit.entries(world.store.conn, action="plan.export"))


def test_export_can_keep_the_instances_for_pacs_send(world: World, tmp_path: Path) -> None:
    plan = world.draft().plan_id
    repo.review_plan(world.store, world.access("phys1", Permission.REVIEW_PLANS), plan, PHYS_PW)
    repo.approve_plan(world.store, world.access("rad2", repo.APPROVAL_PERMISSION), plan, RAD2_PW)
    reader = world.access("rad1", Permission.READ_PATIENT_DATA)
    importer = world.access("rad1", Permission.IMPORT_STUDIES)
    sql = (
        "SELECT i.sop_class_uid, i.sop_uid FROM instances i JOIN series se ON se.id = i.series_fk "
        "JOIN studies st ON st.id = se.study_fk WHERE st.study_uid = ? AND i.sop_class_uid IN (?, ?)"
    )
    classes = (str(EncapsulatedPDFStorage), str(RTStructureSetStorage))
    before = world.store.query(sql, (world.manifest.study_instance_uid, *classes))
    pdf_path, rs_path = export_plan_dicom(world.store, reader, plan, tmp_path / "a", store_as=importer)
    stored = set(world.store.query(sql, (world.manifest.study_instance_uid, *classes))) - set(before)
    assert stored == {
        (str(EncapsulatedPDFStorage), pydicom.dcmread(pdf_path).SOPInstanceUID),
        (str(RTStructureSetStorage), pydicom.dcmread(rs_path).SOPInstanceUID),
    }
    row = world.store.query(
        "SELECT i.blob, d.data FROM instances i LEFT JOIN instance_data d ON d.instance_fk = i.id WHERE i.sop_uid = ?",
        (pydicom.dcmread(pdf_path).SOPInstanceUID,),
    )[0]
    blob = stored_bytes(world.store.conn, str(row[0]), row[1])
    assert blob == pdf_path.read_bytes()
    assert any(e.actor == "rad1" for e in audit.entries(world.store.conn, action="plan.export.store"))
    export_plan_dicom(world.store, reader, plan, tmp_path / "b", store_as=importer)  # again: nothing duplicated
    assert len(set(world.store.query(sql, (world.manifest.study_instance_uid, *classes))) - set(before)) == 2
    with world.store.transaction() as conn:  # a new plan is still built on the clinical structure set
        rtstruct = load_study_objects(conn, world.manifest.study_instance_uid).rtstruct
    assert rtstruct is not None and "PTV" not in [r.ROIName for r in rtstruct.StructureSetROISequence]


def _render(pdf: Path, out: Path) -> tuple[str, list[Path]]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(out / "page")], check=True)
    return text, sorted(out.glob("page-*.png"))


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")
def test_pdf_document_content_numbers_colours_and_pages(world: World, tmp_path: Path) -> None:
    plan = world.draft().plan_id
    repo.review_plan(world.store, world.access("phys2", Permission.REVIEW_PLANS), plan, PHYS2_PW)
    reader = world.access("rad1", Permission.READ_PATIENT_DATA)
    pages = write_plan_pdf(world.store, reader, plan, tmp_path / "plan.pdf")
    text, images = _render(tmp_path / "plan.pdf", tmp_path)
    record = repo.get_plan(world.store, reader, plan)
    flat = " ".join(text.split())
    assert len(images) == pages >= 2
    for expected in (world.manifest.patient_id, world.manifest.study_instance_uid, f"plan {plan}, version",
                     "status REVIEWED", "Decision support \u2014 requires clinician confirmation",
                     f"Page 1 of {pages}", f"Page {pages} of {pages}", "50 Gy", "10.00 Gy", "SBRT",
                     "Radiomics: not available", "Model scores, contributions and model versions: not available",
                     "Rules fired with citations: not available", "Key images",
                     "AAPM TG-101", "PASS", "phys2", "not signed"):  # fmt: skip
        assert expected in flat, expected
    # BED/EQD2 of 50 Gy in 5 fractions: alpha/beta 10 -> 100.0 / 83.3 Gy; 3 -> 216.7 / 130.0 Gy
    assert re.search(r"Tumour 10 100\.0 83\.3", flat) and re.search(r"normal tissue 3 216\.7 130\.0", flat)
    gtv = next(d for d in record.content.dvh if d["roi"] == "GTV")
    assert f"GTV {gtv['volume_cc']:.2f} {gtv['min_gy']:.2f} {gtv['mean_gy']:.2f}" in flat
    ptv = next(s for s in record.content.structures if s.name == "PTV")
    assert f"PTV target PTV {ptv.volume_cc:.2f} 10 CTV + 5, 5, 5" in flat
    listing = subprocess.run(["pdfimages", "-list", str(tmp_path / "plan.pdf")], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    assert len(listing.strip().splitlines()) - 2 >= 2  # key images and the DVH plot
    pixels = np.concatenate([np.asarray(PILImage.open(p).convert("RGB")).reshape(-1, 3) for p in images])
    green = np.all(np.abs(pixels.astype(int) - (200, 230, 201)) <= 2, axis=1)
    assert green.sum() > 100  # the PASS cells are filled green
    assert {e.action for e in audit.entries(world.store.conn, action="plan.*")} >= {"plan.report", "plan.key_images"}


def test_pdf_of_a_prescription_only_plan(world: World, tmp_path: Path) -> None:
    study = tmp_path / "nodose2"
    manifest = generate_demo_study(study, seed=8, shape=(64, 64, 12), spacing_mm=(4.0, 4.0, 8.0))
    (study / "rtdose.dcm").unlink()
    import_paths(world.store, world.access("rad1", Permission.IMPORT_STUDIES), [study])
    rad = world.access("rad1", Permission.EDIT_PLANS)
    content = build_plan_content(world.store, rad, manifest.study_instance_uid,
                                 Prescription(60.0, 30, "IMRT", "curative"), PlanOptions())  # fmt: skip
    plan = repo.create_plan(world.store, rad, content).plan_id
    write_plan_pdf(world.store, world.access("rad1", Permission.READ_PATIENT_DATA), plan, tmp_path / "p.pdf")
    text, _ = _render(tmp_path / "p.pdf", tmp_path)
    flat = " ".join(text.split())
    assert "Dose not computed: this is a prescription-only plan" in flat
    assert flat.count("NOT EVALUATED") == len(content.constraint_results) and "QUANTEC" in flat
    assert "Tumour 10 72.0 60.0" in flat  # 60 Gy in 30 fractions: BED10 72 Gy, EQD2 60 Gy


def test_prescription_from_the_accepted_recommendation(world: World, tmp_path: Path) -> None:
    study = tmp_path / "rec"
    manifest = generate_demo_study(study, seed=9, shape=(64, 64, 12), spacing_mm=(4.0, 4.0, 8.0))
    import_paths(world.store, world.access("rad1", Permission.IMPORT_STUDIES), [study])
    rad = world.access("rad1", Permission.EDIT_PLANS)
    with pytest.raises(ValueError, match="no accepted recommendation"):
        recommended_prescription(world.store, rad, manifest.study_instance_uid)
    result = {
        "site": "lung",
        "recommendations": [{"intent": "curative", "modality": "SBRT", "total_dose_gy": 54.0, "fractions": 3,
                             "rule_ids": ["LUNG-SBRT-PERIPHERAL"], "source": "NCCN NSCLC v.2024 (test)"}],
        "scores": [{"model": "pneumonitis", "model_version": "1.0.0"}],
        "facts": {"t_stage": {"value": "T1b"}},
    }  # fmt: skip
    record_feedback(world.store, rad, result, "accept", patient_id=manifest.patient_id)
    rx = recommended_prescription(world.store, rad, manifest.study_instance_uid)
    assert (rx.total_dose_gy, rx.fractions, rx.technique, rx.intent, rx.source) == (54.0, 3, "SBRT", "curative",
                                                                                   "recommendation")  # fmt: skip
    content = build_plan_content(world.store, rad, manifest.study_instance_uid, rx, PlanOptions())
    assert content.constraint_set == "tg101-3fx"
    assert content.recommendation is not None and "LUNG-SBRT-PERIPHERAL" in content.recommendation["summary"]
    assert content.rules_fired == ({"rule": "LUNG-SBRT-PERIPHERAL", "citation": "NCCN NSCLC v.2024 (test)"},)
    assert content.model_scores is not None and content.model_scores[0]["version"] == "1.0.0"
    assert PlanContent.from_json(content.to_json()) == content
    record = repo.create_plan(world.store, rad, content)
    (tmp_path / "rec.pdf").write_bytes(render_plan_pdf(record, None))
    text, _ = _render(tmp_path / "rec.pdf", tmp_path)
    flat = " ".join(text.split())
    for expected in ("LUNG-SBRT-PERIPHERAL", "NCCN NSCLC v.2024 (test)", "pneumonitis", "1.0.0", "recommendation",
                     "54 Gy", "18.00 Gy", "Key images (CT not in the store): not available"):  # fmt: skip
        assert expected in flat, expected

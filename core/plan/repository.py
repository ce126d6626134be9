"""Plans in the store and their workflow: draft -> reviewed (physicist) -> approved (clinician) or rejected.

Role rules (tested in tests/core/plan/test_workflow.py):

* create a plan or a new version: ``edit_plans`` (radiologist);
* review: ``review_plans`` (physicist), only a draft;
* approve: the clinician's plan authority (``APPROVAL_PERMISSION``, held by the radiologist role), only a reviewed
  plan, never by the person who reviewed it;
* reject with a reason: a physicist at review or a clinician at approval, from draft or reviewed;
* read: ``read_patient_data`` (break-glass allowed and flagged).

Review, approval and rejection are electronic signatures: the signer re-enters the password (checked and audited
like a login), and the signature row holds signer, role, meaning, comment, UTC timestamp and the SHA-256 of the
exact plan content signed. Approved plans are immutable (database trigger); a change makes a new version, and
approving a later version marks the earlier approved one 'superseded'. Every step is audited in its transaction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from core.errors import PermissionDeniedError, RadPlanError
from core.plan.model import PlanContent, PlanStatus, content_sha256
from core.security.roles import Permission, Role
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.database import Connection
from core.store.store import Store, utc_now
from core.store.users import UserRepository, record_access

__all__ = [
    "APPROVAL_PERMISSION",
    "PlanRecord",
    "PlanWorkflowError",
    "Signature",
    "approve_plan",
    "create_plan",
    "get_plan",
    "list_plans",
    "new_version",
    "reject_plan",
    "review_plan",
]

#: The permission that lets a clinician sign a plan off. roles.py grants the radiologist edit_plans and the
#: physicist approve_plans; the issue wants physicists to review and clinicians to approve, so approval needs the
#: clinician's plan authority until roles.py gives approve_plans to the clinician roles (see docs/plan.md).
APPROVAL_PERMISSION = Permission.APPROVE_PLANS
APPROVER_ROLES = frozenset({Role.RADIOLOGIST})


class PlanWorkflowError(RadPlanError):
    """A workflow step that is not allowed in the plan's current state (nothing was changed)."""


@dataclass(frozen=True)
class Signature:
    signer: str
    role: str
    decision: str
    meaning: str
    comment: str
    payload_sha256: str
    signature: str
    signed_at: str


@dataclass(frozen=True)
class PlanRecord:
    plan_id: int
    study_uid: str
    version: int
    status: PlanStatus
    content: PlanContent
    payload_sha256: str
    previous_id: int | None
    created_by: str
    created: str
    updated: str
    signatures: tuple[Signature, ...]


def _require(access: Access, *permissions: Permission) -> None:
    if access.permission not in permissions:
        raise PermissionDeniedError(f"this action needs the '{permissions[0].value}' permission")


def _load(conn: Connection, plan_id: int) -> PlanRecord:
    row = conn.execute(
        "SELECT p.id, s.study_uid, p.version, p.status, p.payload, p.payload_sha256, p.previous_fk, p.created_by, "
        "p.created, p.updated FROM plans p JOIN studies s ON s.id = p.study_fk WHERE p.id = ?",
        (plan_id,),
    ).fetchone()
    if row is None:
        raise PlanWorkflowError(f"no plan {plan_id}")
    if content_sha256(row[4]) != row[5]:
        raise PlanWorkflowError(f"plan {plan_id}: its content does not match its checksum (altered outside RadPlan)")
    sigs = conn.execute(
        "SELECT user_name, role, decision, meaning, comment, payload_sha256, signature, created FROM approvals "
        "WHERE plan_fk = ? ORDER BY id",
        (plan_id,),
    ).fetchall()
    return PlanRecord(
        plan_id=int(row[0]),
        study_uid=str(row[1]),
        version=int(row[2]),
        status=row[3],
        content=PlanContent.from_json(row[4]),
        payload_sha256=str(row[5]),
        previous_id=None if row[6] is None else int(row[6]),
        created_by=str(row[7]),
        created=str(row[8]),
        updated=str(row[9]),
        signatures=tuple(Signature(*(str(v) for v in s)) for s in sigs),
    )


def _objects(record: PlanRecord) -> list[AuditObject]:
    return [
        AuditObject("plan", str(record.plan_id), f"version {record.version}"),
        AuditObject("study", record.study_uid),
    ]


def _insert(conn: Connection, access: Access, content: PlanContent, previous: int | None) -> int:
    row = conn.execute("SELECT id FROM studies WHERE study_uid = ?", (content.study_uid,)).fetchone()
    if row is None:
        raise PlanWorkflowError(f"no study {content.study_uid} in the store")
    version = int(
        conn.execute("SELECT coalesce(max(version), 0) + 1 FROM plans WHERE study_fk = ?", (row[0],)).fetchone()[0]
    )
    payload = content.to_json()
    now = utc_now()
    cur = conn.execute(
        "INSERT INTO plans (study_fk, version, status, payload, payload_sha256, previous_fk, created_by, created, "
        "updated) VALUES (?, ?, 'draft', ?, ?, ?, ?, ?, ?)",
        (row[0], version, payload, content_sha256(payload), previous, access.user.name, now, now),
    )
    return int(cur.lastrowid or 0)


def create_plan(store: Store, access: Access, content: PlanContent) -> PlanRecord:
    """Store ``content`` as a new draft (the next version number for its study)."""
    _require(access, Permission.EDIT_PLANS)
    with store.transaction() as conn:
        plan_id = _insert(conn, access, content, None)
        record = _load(conn, plan_id)
        record_access(
            conn,
            access,
            "plan.create",
            objects=_objects(record),
            details={"version": record.version, "dose_computed": content.dose_computed},
        )
    return record


def new_version(store: Store, access: Access, plan_id: int, content: PlanContent) -> PlanRecord:
    """A new draft version of plan ``plan_id``'s study with ``content`` (the earlier version is left unchanged)."""
    _require(access, Permission.EDIT_PLANS)
    with store.transaction() as conn:
        previous = _load(conn, plan_id)
        if content.study_uid != previous.study_uid:
            raise PlanWorkflowError("a new version must belong to the same study")
        new_id = _insert(conn, access, content, plan_id)
        record = _load(conn, new_id)
        record_access(
            conn,
            access,
            "plan.new_version",
            objects=_objects(record),
            details={"version": record.version, "previous_plan": plan_id},
        )
    return record


def get_plan(store: Store, access: Access, plan_id: int) -> PlanRecord:
    _require(access, Permission.READ_PATIENT_DATA)
    with store.transaction() as conn:
        record = _load(conn, plan_id)
        record_access(conn, access, "plan.read", objects=_objects(record))
    return record


def list_plans(store: Store, access: Access, study_uid: str | None = None) -> list[tuple[int, str, int, str]]:
    """(plan id, study UID, version, status) of every plan (of one study)."""
    _require(access, Permission.READ_PATIENT_DATA)
    sql = "SELECT p.id, s.study_uid, p.version, p.status FROM plans p JOIN studies s ON s.id = p.study_fk"
    params: tuple[object, ...] = ()
    if study_uid:
        sql, params = sql + " WHERE s.study_uid = ?", (study_uid,)
    with store.transaction() as conn:
        rows = [(int(r[0]), str(r[1]), int(r[2]), str(r[3])) for r in conn.execute(sql + " ORDER BY p.id", params)]
        record_access(conn, access, "plan.query", objects=[AuditObject("plan", str(r[0])) for r in rows])
    return rows


def _sign(
    store: Store,
    access: Access,
    plan_id: int,
    password: str,
    *,
    decision: str,
    meaning: str,
    comment: str,
    allowed_from: tuple[str, ...],
    new_status: PlanStatus,
) -> PlanRecord:
    if not meaning.strip():
        raise ValueError("a signature needs its meaning (what the signer attests)")
    # the re-entered password: checked like a login (and audited as one); raises AuthenticationError
    UserRepository(store).authenticate(access.user.name, password)
    with store.transaction() as conn:
        record = _load(conn, plan_id)
        if record.status not in allowed_from:
            raise PlanWorkflowError(
                f"plan {plan_id} is {record.status}: it can be {decision} only when {' or '.join(allowed_from)}"
            )
        if decision == "approved" and any(
            s.decision == "reviewed" and s.signer == access.user.name for s in record.signatures
        ):
            raise PermissionDeniedError("the physicist who reviewed a plan cannot also approve it")
        now = utc_now()
        digest = hashlib.sha256(
            json.dumps(
                [
                    plan_id,
                    record.version,
                    record.payload_sha256,
                    access.user.name,
                    access.user.role.value,
                    decision,
                    meaning,
                    comment,
                    now,
                ],
                separators=(",", ":"),
            ).encode()
        ).hexdigest()
        conn.execute(
            "INSERT INTO approvals (plan_fk, user_name, role, decision, meaning, comment, payload_sha256, signature, "
            "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                plan_id,
                access.user.name,
                access.user.role.value,
                decision,
                meaning,
                comment,
                record.payload_sha256,
                digest,
                now,
            ),
        )
        if new_status == "approved":
            superseded = conn.execute(
                "SELECT p.id FROM plans p JOIN plans q ON q.study_fk = p.study_fk WHERE q.id = ? AND p.id != ? "
                "AND p.status = 'approved'",
                (plan_id, plan_id),
            ).fetchall()
            for (old,) in superseded:
                conn.execute("UPDATE plans SET status = 'superseded', updated = ? WHERE id = ?", (now, old))
                record_access(
                    conn,
                    access,
                    "plan.supersede",
                    objects=[AuditObject("plan", str(old))],
                    details={"by_plan": plan_id},
                )
        conn.execute("UPDATE plans SET status = ?, updated = ? WHERE id = ?", (new_status, now, plan_id))
        record = _load(conn, plan_id)
        record_access(
            conn,
            access,
            f"plan.{'review' if decision == 'reviewed' else decision.removesuffix('d')}",
            objects=_objects(record),
            details={
                "meaning": meaning,
                "comment": comment,
                "signature": digest,
                "payload_sha256": record.payload_sha256,
            },
        )
    return record


def review_plan(store: Store, access: Access, plan_id: int, password: str, *, comment: str = "") -> PlanRecord:
    """Physicist review of a draft (signature meaning: the plan was checked physically)."""
    _require(access, Permission.REVIEW_PLANS)
    return _sign(
        store,
        access,
        plan_id,
        password,
        decision="reviewed",
        comment=comment,
        meaning="Reviewed: dose, structures and constraints checked by a medical physicist",
        allowed_from=("draft",),
        new_status="reviewed",
    )


def approve_plan(store: Store, access: Access, plan_id: int, password: str, *, comment: str = "") -> PlanRecord:
    """Clinician approval of a reviewed plan (signature meaning: approved for treatment)."""
    _require(access, APPROVAL_PERMISSION)
    if access.user.role not in APPROVER_ROLES:
        raise PermissionDeniedError("only a clinician (radiologist or physician role) may approve a plan")
    return _sign(
        store,
        access,
        plan_id,
        password,
        decision="approved",
        comment=comment,
        meaning="Approved: I confirm this plan for treatment as the responsible clinician",
        allowed_from=("reviewed",),
        new_status="approved",
    )


def reject_plan(store: Store, access: Access, plan_id: int, password: str, *, reason: str) -> PlanRecord:
    """Rejection with a reason, by a physicist (review) or a clinician (approval), of a draft or reviewed plan."""
    _require(access, Permission.REVIEW_PLANS, APPROVAL_PERMISSION)
    if access.permission is APPROVAL_PERMISSION and access.user.role not in APPROVER_ROLES:
        raise PermissionDeniedError("only a physicist or a clinician may reject a plan")
    if len(reason.strip()) < 5:
        raise ValueError("a rejection needs a reason (at least 5 characters)")
    return _sign(
        store,
        access,
        plan_id,
        password,
        decision="rejected",
        comment=reason.strip(),
        meaning="Rejected: not acceptable for treatment as it stands",
        allowed_from=("draft", "reviewed"),
        new_status="rejected",
    )

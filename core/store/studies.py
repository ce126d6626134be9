"""Read access to stored studies (every read is audited)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import PermissionDeniedError
from core.logsafe import register_phi
from core.security.roles import Permission
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.store import Store
from core.store.users import record_access

__all__ = ["StudySummary", "list_studies", "stored_sops"]


@dataclass(frozen=True)
class StudySummary:
    study_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    description: str
    accession: str
    status: str
    modalities: tuple[str, ...]
    series: int
    instances: int
    size_bytes: int


def list_studies(store: Store, access: Access, *, patient_id: str | None = None) -> list[StudySummary]:
    if access.permission is not Permission.READ_PATIENT_DATA:
        raise PermissionDeniedError("listing studies needs the 'read_patient_data' permission")
    sql = (
        "SELECT st.study_uid, p.patient_id, p.name, st.study_date, st.description, st.accession, st.status, "
        "group_concat(DISTINCT se.modality), count(DISTINCT se.id), count(i.id), coalesce(sum(i.size), 0) "
        "FROM studies st JOIN patients p ON p.id = st.patient_fk "
        "LEFT JOIN series se ON se.study_fk = st.id LEFT JOIN instances i ON i.series_fk = se.id "
    )
    params: tuple[object, ...] = ()
    if patient_id is not None:
        sql, params = sql + "WHERE p.patient_id = ? ", (patient_id,)
    sql += "GROUP BY st.id ORDER BY st.study_date DESC, st.id"
    with store.transaction() as conn:
        rows = conn.execute(sql, params).fetchall()
        result = [
            StudySummary(
                study_uid=r[0],
                patient_id=r[1],
                patient_name=r[2],
                study_date=r[3],
                description=r[4],
                accession=r[5],
                status=r[6],
                modalities=tuple(sorted(filter(None, (r[7] or "").split(",")))),
                series=int(r[8]),
                instances=int(r[9]),
                size_bytes=int(r[10]),
            )
            for r in rows
        ]
        for s in result:
            register_phi(s.patient_id, s.patient_name)
        record_access(
            conn,
            access,
            "study.query",
            objects=[AuditObject("study", s.study_uid) for s in result],
            details={"filter_patient": bool(patient_id), "results": len(result)},
        )
    return result


def stored_sops(store: Store, uids: Iterable[str]) -> set[str]:
    """The SOP Instance UIDs among `uids` that the store holds (UIDs only: no patient data is read)."""
    found: set[str] = set()
    uid_list = list(uids)
    for i in range(0, len(uid_list), 500):
        chunk = uid_list[i : i + 500]
        marks = ",".join("?" * len(chunk))
        found.update(
            str(r[0]) for r in store.query(f"SELECT sop_uid FROM instances WHERE sop_uid IN ({marks})", tuple(chunk))
        )
    return found

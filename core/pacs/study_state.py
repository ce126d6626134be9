"""What the store holds of a study a PACS holds, and the study's status after a retrieve (core.pacs.retrieve).

The status is 'complete' only while every instance the PACS holds is stored. A retrieve of the whole study that ends
with every instance of the PACS's listing stored marks it complete; a retrieve (of the study or of one series) that
establishes that instances the PACS holds are not stored marks it 'partial', also when a file import had marked it
complete. The retrieve knows what is missing from the PACS's listing of SOP Instance UIDs or, when it requested a
whole study (series) none of which was stored and was interrupted before the listing, from the PACS's count compared
with what is stored of it. A retrieve that learnt neither (the PACS never answered) leaves the status as it was.
"""

from __future__ import annotations

from typing import Literal

from core.store.database import Connection
from core.store.store import Store, utc_now
from core.store.studies import stored_sops

__all__ = ["has_any", "missing_instances", "set_study_status", "stored_sops"]


def _scope_sql(select: str, series_uid: str) -> str:
    return (
        f"SELECT {select} FROM instances i JOIN series se ON se.id = i.series_fk "
        "JOIN studies st ON st.id = se.study_fk WHERE st.study_uid = ?"
        + (" AND se.series_uid = ?" if series_uid else "")
    )


def has_any(store: Store, study_uid: str, series_uid: str) -> bool:
    """Whether any instance of the study (of the series, when one is given) is stored."""
    params = (study_uid, series_uid) if series_uid else (study_uid,)
    return bool(store.query(_scope_sql("1", series_uid) + " LIMIT 1", params))


def missing_instances(store: Store, study_uid: str, series_uid: str, listed: set[str], pacs_total: int) -> int | None:
    """How many instances the PACS holds of the study (series) are not stored: from its listing `listed` when there
    is one, else from its count `pacs_total`; None when neither is known."""
    if listed:
        return len(listed - stored_sops(store, listed))
    if pacs_total > 0:
        params = (study_uid, series_uid) if series_uid else (study_uid,)
        here = int(str(store.query(_scope_sql("count(*)", series_uid), params)[0][0]))
        return max(0, pacs_total - here)
    return None


def set_study_status(conn: Connection, study_uid: str, status: Literal["partial", "complete"]) -> None:
    conn.execute("UPDATE studies SET status = ?, updated = ? WHERE study_uid = ?", (status, utc_now(), study_uid))

"""Clinician feedback on recommendations: accept or override (with a reason), stored append-only and audited,
reported as override rates per rule and per model version, exported as a JSON Lines dataset for retraining.

Who: recording needs ``edit_plans`` (radiologists); reports and exports need ``read_patient_data`` (the
exported dataset contains patient facts). Every call writes its audit entry in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.errors import PermissionDeniedError, RadPlanError
from core.security.roles import Permission
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.store import Store, utc_now
from core.store.users import record_access

__all__ = ["FeedbackError", "RateRow", "export_feedback", "feedback_report", "feedback_rows", "record_feedback"]

Decision = Literal["accept", "override"]


class FeedbackError(RadPlanError):
    """Feedback that cannot be stored as given (no recommendation, override without a reason...)."""


@dataclass(frozen=True)
class RateRow:
    """Override rate of one rule or one model version: overrides / (accepts + overrides)."""

    kind: str  # "rule" or "model"
    key: str  # rule id, or model@version
    accepted: int
    overridden: int

    @property
    def override_rate(self) -> float:
        total = self.accepted + self.overridden
        return round(self.overridden / total, 4) if total else 0.0


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _require(access: Access, permission: Permission) -> None:
    if access.permission is not permission:
        raise PermissionDeniedError(f"this needs the {permission.value!r} permission")


def record_feedback(
    store: Store,
    access: Access,
    result: Mapping[str, Any],
    decision: Decision,
    *,
    reason: str = "",
    chosen: Mapping[str, Any] | None = None,
    patient_id: str = "",
) -> int:
    """Store the clinician's decision on the first recommendation of a ``recommend`` result; returns the row id."""
    _require(access, Permission.EDIT_PLANS)
    recs = result.get("recommendations")
    if not isinstance(recs, list) or not recs or not isinstance(recs[0], Mapping):
        raise FeedbackError("the result has no recommendation to accept or override")
    if decision not in ("accept", "override"):
        raise FeedbackError(f"decision must be accept or override, not {decision!r}")
    if decision == "override" and len(reason.strip()) < 10:
        raise FeedbackError("an override needs a reason of at least 10 characters")
    rec = recs[0]
    rule_ids = [str(r) for r in rec.get("rule_ids", [])]
    models = {str(s["model"]): str(s["model_version"]) for s in result.get("scores", []) if "model" in s}
    facts = {k: v.get("value") if isinstance(v, Mapping) else v for k, v in dict(result.get("facts", {})).items()}
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO decision_feedback (created, user_name, role, patient_id, decision, reason, site, rule_ids, "
            "model_versions, recommendation, chosen, facts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (utc_now(), access.user.name, access.user.role.value, patient_id, decision, reason.strip(),
             str(result.get("site", "")), _canonical(rule_ids), _canonical(models), _canonical(rec),
             _canonical(dict(chosen or {})), _canonical(facts)),
        )  # fmt: skip
        row_id = int(cur.lastrowid or 0)
        record_access(
            conn,
            access,
            f"decision.{decision}",
            objects=[AuditObject("patient", patient_id)] if patient_id else [],
            details={"feedback_id": row_id, "rule_ids": rule_ids, "models": models, "reason": reason.strip()},
        )
    return row_id


def feedback_rows(store: Store, access: Access, action: str, **details: object) -> list[dict[str, Any]]:
    """Every feedback row (JSON columns decoded); the read is audited under ``action``."""
    _require(access, Permission.READ_PATIENT_DATA)
    cols = ("id", "created", "user_name", "role", "patient_id", "decision", "reason", "site", "rule_ids",
            "model_versions", "recommendation", "chosen", "facts")  # fmt: skip
    with store.transaction() as conn:
        raw = conn.execute(f"SELECT {', '.join(cols)} FROM decision_feedback ORDER BY id").fetchall()
        record_access(conn, access, action, details={"rows": len(raw), **details})
    rows = []
    for r in raw:
        row = dict(zip(cols, r, strict=True))
        for key in ("rule_ids", "model_versions", "recommendation", "chosen", "facts"):
            row[key] = json.loads(str(row[key]))
        rows.append(row)
    return rows


def feedback_report(store: Store, access: Access) -> list[RateRow]:
    """Override rates per rule id and per model@version (audited as decision.feedback_report)."""
    counts: dict[tuple[str, str], list[int]] = {}
    for row in feedback_rows(store, access, "decision.feedback_report"):
        keys = [("rule", r) for r in row["rule_ids"]]
        keys += [("model", f"{m}@{v}") for m, v in sorted(row["model_versions"].items())]
        for key in keys:
            tally = counts.setdefault(key, [0, 0])
            tally[1 if row["decision"] == "override" else 0] += 1
    return [RateRow(kind, key, a, o) for (kind, key), (a, o) in sorted(counts.items())]


def export_feedback(store: Store, access: Access, out: Path) -> int:
    """Write every feedback row as one JSON object per line (retraining dataset); returns the row count."""
    if out.exists():
        raise FeedbackError(f"{out} exists: choose a new file (nothing is overwritten)")
    rows = feedback_rows(store, access, "decision.feedback_export", path=out.name)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text("".join(_canonical(r) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(out)
    return len(rows)

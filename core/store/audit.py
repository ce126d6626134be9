"""Append-only audit trail with a hash chain.

Each row's hash is SHA-256 over its canonical JSON (all columns but the hash itself, the previous row's hash
included), so editing a row breaks its own hash, and inserting or deleting one breaks the chain or the sequence.
Deleting rows at the end is caught by the head anchor (last seq and hash) kept in the meta table and updated in the
same transaction as every append. Database triggers also refuse UPDATE and DELETE on the table.

Entries are written inside the caller's transaction, so an access or change is recorded if and only if it
happened.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from core.errors import StoreCorruptError
from core.store.database import Connection

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditObject",
    "AuditVerification",
    "Outcome",
    "entries",
    "record",
    "verify",
]

GENESIS_HASH = "0" * 64
Outcome = Literal["success", "minor_failure", "serious_failure", "major_failure"]


@dataclass(frozen=True)
class AuditObject:
    """An object touched by an audited action: kind is patient, study, series, instance, plan, user, store..."""

    kind: str
    identifier: str
    description: str = ""

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.identifier, "description": self.description}


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: str
    actor: str
    role: str
    action: str
    outcome: Outcome
    objects: tuple[AuditObject, ...]
    details: Mapping[str, Any]
    break_glass: bool
    prev_hash: str
    hash: str


@dataclass
class AuditVerification:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _digest(
    seq: int,
    ts: str,
    actor: str,
    role: str,
    action: str,
    outcome: str,
    objects: str,
    details: str,
    break_glass: int,
    prev_hash: str,
) -> str:
    canonical = json.dumps(
        [seq, ts, actor, role, action, outcome, objects, details, break_glass, prev_hash],
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


_HEAD_FORMAT = re.compile(r"^(0|[1-9][0-9]*):([0-9a-f]{64})$")


def _head(conn: Connection) -> tuple[int, str]:
    """The head anchor (last seq, its hash); (0, GENESIS_HASH) while the trail is empty.

    A damaged anchor raises StoreCorruptError: nothing may be appended to a chain whose head is unknown.
    """
    row = conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
    if row is None:
        return 0, GENESIS_HASH
    match = _HEAD_FORMAT.match(str(row[0]))
    if match is None:
        raise StoreCorruptError(
            "the audit trail's head anchor is damaged (tampered with?): nothing can be appended; "
            "run 'radplan audit verify' and restore the store from a backup"
        )
    return int(match.group(1)), match.group(2)


def record(
    conn: Connection,
    *,
    actor: str,
    role: str,
    action: str,
    objects: Sequence[AuditObject] = (),
    outcome: Outcome = "success",
    details: Mapping[str, Any] | None = None,
    break_glass: bool = False,
) -> int:
    """Append one entry; call inside the transaction that does the audited work. Returns its sequence number."""
    if not conn.in_transaction:
        raise RuntimeError("audit.record must run inside the transaction of the audited change")
    last_seq, prev_hash = _head(conn)
    seq = last_seq + 1
    ts = datetime.now(UTC).isoformat(timespec="microseconds")
    objects_json = json.dumps([o.to_json() for o in objects], sort_keys=True, separators=(",", ":"))
    details_json = json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":"), default=str)
    digest = _digest(seq, ts, actor, role, action, outcome, objects_json, details_json, int(break_glass), prev_hash)
    conn.execute(
        "INSERT INTO audit (seq, ts, actor, role, action, outcome, objects, details, break_glass, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            seq,
            ts,
            actor,
            role,
            action,
            outcome,
            objects_json,
            details_json,
            int(break_glass),
            prev_hash,
            digest,
        ),
    )
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('audit_head', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (f"{seq}:{digest}",),
    )
    return seq


def _row_to_entry(row: Sequence[Any]) -> AuditEntry:
    seq, ts, actor, role, action, outcome, objects, details, bg, prev_hash, digest = row
    objs = tuple(AuditObject(o["kind"], o["id"], o.get("description", "")) for o in json.loads(objects))
    return AuditEntry(seq, ts, actor, role, action, outcome, objs, json.loads(details), bool(bg), prev_hash, digest)


_COLUMNS = "seq, ts, actor, role, action, outcome, objects, details, break_glass, prev_hash, hash"


def entries(
    conn: Connection, *, since: str | None = None, actor: str | None = None, action: str | None = None
) -> Iterator[AuditEntry]:
    sql, params = f"SELECT {_COLUMNS} FROM audit WHERE 1=1", list[str]()
    if since:
        sql, params = sql + " AND ts >= ?", [*params, since]
    if actor:
        sql, params = sql + " AND actor = ?", [*params, actor]
    if action:
        # '*' is the only wildcard: LIKE's own '%' and '_' are matched literally
        pattern = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
        sql, params = sql + " AND action LIKE ? ESCAPE '\\'", [*params, pattern]
    for row in conn.execute(sql + " ORDER BY seq", params):
        yield _row_to_entry(row)


def verify(conn: Connection) -> AuditVerification:
    """Re-compute the chain; report every edited, inserted or deleted row and a truncated tail."""
    result = AuditVerification()
    expected_prev, expected_seq = GENESIS_HASH, 1
    for row in conn.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY seq"):
        seq, ts, actor, role, action, outcome, objects, details, bg, prev_hash, digest = row
        result.checked += 1
        if seq != expected_seq:
            result.problems.append(f"row {seq}: sequence gap, expected {expected_seq} (rows deleted or inserted)")
        if prev_hash != expected_prev:
            result.problems.append(f"row {seq}: chain broken, previous hash does not match row before it")
        if _digest(seq, ts, actor, role, action, outcome, objects, details, bg, prev_hash) != digest:
            result.problems.append(f"row {seq}: content does not match its hash (row edited)")
        expected_prev, expected_seq = digest, seq + 1
    try:
        head_seq, head_hash = _head(conn)
    except StoreCorruptError:
        result.problems.append(
            f"head anchor is damaged (not 'seq:hash'), the table has {expected_seq - 1} rows (the anchor edited)"
        )
        return result
    if (head_seq, head_hash) != (expected_seq - 1, expected_prev if result.checked else GENESIS_HASH):
        result.problems.append(
            f"head anchor says {head_seq} rows ending in {head_hash[:12]}, the table has {expected_seq - 1} "
            "(rows deleted at the end, or the anchor edited)"
        )
    return result

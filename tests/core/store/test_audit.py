"""The hash-chained audit trail: appends, triggers, tamper detection, the CLI, and the DICOM PS3.15 A.5 export.

Everything runs against the real SQLCipher store. Tampering is done the way an attacker who holds the store key
would do it: drop the append-only triggers first, then edit, delete or insert rows with plain SQL.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3

from core.errors import AuthenticationError
from core.security.roles import Permission, Role
from core.security.session import Access, User
from core.store import audit
from core.store.audit import GENESIS_HASH, AuditEntry, AuditObject
from core.store.audit_dicom import audit_message_xml, event_code_for
from core.store.store import Store
from core.store.users import UserRepository, record_access
from tests.conftest import ADMIN, ADMIN_PW, RAD, RAD_PW, Cli

_COLUMNS = ("seq", "ts", "actor", "role", "action", "outcome", "objects", "details", "break_glass", "prev_hash", "hash")


# --------------------------------------------------------------------------------------------------- helpers
@pytest.fixture
def store(passphrase_store: Store) -> Store:
    return passphrase_store


def _append(store: Store, count: int, *, actor: str = RAD, role: str = "radiologist") -> list[int]:
    """`count` entries, each in its own transaction (as real work does)."""
    seqs = []
    for i in range(count):
        with store.transaction() as conn:
            seqs.append(
                audit.record(
                    conn,
                    actor=actor,
                    role=role,
                    action="study.read",
                    objects=[AuditObject("study", f"1.2.826.0.1.{i}")],
                    details={"i": i},
                )
            )
    return seqs


@pytest.fixture
def chain(store: Store) -> list[int]:
    """Six entries: the first admin's user.create (seq 1) and five study reads (2..6)."""
    seqs = [1, *_append(store, 5)]
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert audit.verify(store.conn).ok
    return seqs


def _row(store: Store, seq: int) -> dict[str, Any]:
    rows = store.query(f"SELECT {', '.join(_COLUMNS)} FROM audit WHERE seq = ?", (seq,))
    assert len(rows) == 1, f"no audit row {seq}"
    return dict(zip(_COLUMNS, rows[0], strict=True))


def _attacker_digest(row: dict[str, Any]) -> str:
    """The documented row hash (SHA-256 over the canonical JSON of every column but the hash), recomputed
    independently, the way an attacker who read the source would."""
    canonical = json.dumps([row[c] for c in _COLUMNS[:-1]], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _drop_triggers(conn: sqlcipher3.Connection) -> None:
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")


def _insert_row(conn: sqlcipher3.Connection, row: dict[str, Any]) -> None:
    conn.execute(
        f"INSERT INTO audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
        tuple(row[c] for c in _COLUMNS),
    )


def _problems_for(problems: list[str], seq: int) -> list[str]:
    return [p for p in problems if p.startswith(f"row {seq}:")]


# --------------------------------------------------------------------------------------------------- appends
def test_entries_appended_in_transactions_verify(store: Store) -> None:
    _append(store, 4)
    result = audit.verify(store.conn)
    assert result.ok, result.problems
    assert result.checked == 5  # user.create of the first admin + 4
    rows = list(audit.entries(store.conn))
    assert [e.seq for e in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.hash
    # the head anchor names the last row
    (anchor,) = store.query("SELECT value FROM meta WHERE key = 'audit_head'")[0]
    assert anchor == f"5:{rows[-1].hash}"


def test_row_hash_is_the_documented_digest(chain: list[int], store: Store) -> None:
    for seq in chain:
        row = _row(store, seq)
        assert row["hash"] == _attacker_digest(row)


def test_entry_content_round_trips(store: Store) -> None:
    with store.transaction() as conn:
        seq = audit.record(
            conn,
            actor=RAD,
            role="radiologist",
            action="patient.read",
            objects=[AuditObject("patient", "PAT-1", "chart"), AuditObject("study", "1.2.3")],
            outcome="minor_failure",
            details={"reason": "x", "n": 3},
            break_glass=True,
        )
    (entry,) = list(audit.entries(store.conn, action="patient.read"))
    assert entry.seq == seq == 2
    assert (entry.actor, entry.role, entry.outcome, entry.break_glass) == (RAD, "radiologist", "minor_failure", True)
    assert entry.objects == (AuditObject("patient", "PAT-1", "chart"), AuditObject("study", "1.2.3"))
    assert entry.details == {"reason": "x", "n": 3}
    assert entry.ts.endswith("+00:00")


def test_entries_filters(store: Store) -> None:
    _append(store, 2)
    with store.transaction() as conn:
        audit.record(conn, actor=ADMIN, role="admin", action="user.disable")
    assert [e.action for e in audit.entries(store.conn, actor=ADMIN)] == ["user.create", "user.disable"]
    assert [e.seq for e in audit.entries(store.conn, action="user.*")] == [1, 4]
    assert [e.seq for e in audit.entries(store.conn, action="study.read")] == [2, 3]
    # only '*' is a wildcard: SQL LIKE's '_' and '%' are matched literally
    assert list(audit.entries(store.conn, action="study_read")) == []
    assert list(audit.entries(store.conn, action="%")) == []
    assert len(list(audit.entries(store.conn, action="*"))) == 4
    last = list(audit.entries(store.conn))[-1]
    assert [e.seq for e in audit.entries(store.conn, since=last.ts)] == [4]


def test_record_outside_a_transaction_raises_and_writes_nothing(store: Store) -> None:
    assert not store.conn.in_transaction
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit.record(store.conn, actor=ADMIN, role="admin", action="study.read")
    assert store.query("SELECT count(*) FROM audit")[0][0] == 1


def test_entry_is_rolled_back_with_the_audited_work(store: Store) -> None:
    head_before = store.query("SELECT value FROM meta WHERE key = 'audit_head'")[0][0]
    with pytest.raises(ZeroDivisionError), store.transaction() as conn:
        audit.record(conn, actor=ADMIN, role="admin", action="user.disable")
        _ = 1 / 0
    assert store.query("SELECT count(*) FROM audit")[0][0] == 1
    assert store.query("SELECT value FROM meta WHERE key = 'audit_head'")[0][0] == head_before
    assert audit.verify(store.conn).ok
    # and the chain continues from the committed head
    assert _append(store, 1) == [2]
    assert audit.verify(store.conn).ok


# --------------------------------------------------------------------------------------------------- triggers
def test_trigger_refuses_update(chain: list[int], store: Store) -> None:
    before = _row(store, 3)
    with pytest.raises(sqlcipher3.DatabaseError, match="append-only"):
        store.conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    assert _row(store, 3) == before
    assert audit.verify(store.conn).ok


def test_trigger_refuses_delete(chain: list[int], store: Store) -> None:
    with pytest.raises(sqlcipher3.IntegrityError, match="append-only"):
        store.conn.execute("DELETE FROM audit WHERE seq = 6")
    with pytest.raises(sqlcipher3.DatabaseError, match="append-only"):
        store.conn.execute("DELETE FROM audit")
    assert store.query("SELECT count(*) FROM audit")[0][0] == 6
    assert audit.verify(store.conn).ok


# --------------------------------------------------------------------------------------------------- tampering
@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "mallory"), ("details", "{}"), ("break_glass", 1), ("outcome", "minor_failure"), ("ts", "2020")],
)
def test_editing_a_field_of_a_middle_row_is_reported(
    chain: list[int], store: Store, column: str, value: object
) -> None:
    _drop_triggers(store.conn)
    store.conn.execute(f"UPDATE audit SET {column} = ? WHERE seq = 3", (value,))
    result = audit.verify(store.conn)
    assert not result.ok
    assert result.checked == 6
    assert result.problems == ["row 3: content does not match its hash (row edited)"]


def test_deleting_a_middle_row_is_reported(chain: list[int], store: Store) -> None:
    _drop_triggers(store.conn)
    store.conn.execute("DELETE FROM audit WHERE seq = 3")
    result = audit.verify(store.conn)
    assert result.checked == 5
    row4 = _problems_for(result.problems, 4)
    assert any("sequence gap, expected 3" in p for p in row4), result.problems
    assert any("chain broken" in p for p in row4), result.problems
    # nothing else is blamed: rows 1, 2, 5, 6 and the head anchor are intact
    assert len(row4) == len(result.problems) == 2


def test_deleting_the_first_row_is_reported(chain: list[int], store: Store) -> None:
    _drop_triggers(store.conn)
    store.conn.execute("DELETE FROM audit WHERE seq = 1")
    result = audit.verify(store.conn)
    row2 = _problems_for(result.problems, 2)
    assert any("sequence gap, expected 1" in p for p in row2)
    assert any("chain broken" in p for p in row2)
    assert len(result.problems) == 2


def test_forged_row_inserted_in_the_middle_is_reported(chain: list[int], store: Store) -> None:
    """Seqs are dense, so a forged row can only take a freed slot: delete row 3 and insert a forgery with a
    correct prev_hash and a self-consistent hash. The next row's link gives it away."""
    _drop_triggers(store.conn)
    original = _row(store, 3)
    forged = {**original, "actor": "mallory", "details": '{"forged":true}'}
    forged["hash"] = _attacker_digest(forged)
    assert forged["prev_hash"] == _row(store, 2)["hash"]
    store.conn.execute("DELETE FROM audit WHERE seq = 3")
    _insert_row(store.conn, forged)
    result = audit.verify(store.conn)
    assert result.checked == 6
    assert result.problems == ["row 4: chain broken, previous hash does not match row before it"]


def test_forged_row_appended_without_moving_the_anchor_is_reported(chain: list[int], store: Store) -> None:
    last = _row(store, 6)
    forged = {**last, "seq": 7, "actor": "mallory", "prev_hash": last["hash"]}
    forged["hash"] = _attacker_digest(forged)
    _insert_row(store.conn, forged)  # INSERT is not blocked by the triggers
    result = audit.verify(store.conn)
    assert len(result.problems) == 1
    assert result.problems[0].startswith("head anchor says 6 rows")
    assert "the table has 7" in result.problems[0]


def test_forged_row_with_an_out_of_sequence_number_is_reported(chain: list[int], store: Store) -> None:
    _drop_triggers(store.conn)
    row = {**_row(store, 6), "seq": 10}
    row["hash"] = _attacker_digest(row)
    _insert_row(store.conn, row)
    store.conn.execute("UPDATE meta SET value = ? WHERE key = 'audit_head'", (f"10:{row['hash']}",))
    result = audit.verify(store.conn)
    row10 = _problems_for(result.problems, 10)
    assert any("sequence gap, expected 7" in p for p in row10)
    assert any("chain broken" in p for p in row10)


def test_deleting_the_last_row_is_caught_by_the_head_anchor(chain: list[int], store: Store) -> None:
    _drop_triggers(store.conn)
    store.conn.execute("DELETE FROM audit WHERE seq = 6")
    result = audit.verify(store.conn)
    assert result.checked == 5
    assert len(result.problems) == 1
    assert result.problems[0].startswith("head anchor says 6 rows")
    assert "the table has 5" in result.problems[0]


def test_deleting_every_row_is_caught_by_the_head_anchor(chain: list[int], store: Store) -> None:
    _drop_triggers(store.conn)
    store.conn.execute("DELETE FROM audit")
    result = audit.verify(store.conn)
    assert result.checked == 0
    assert len(result.problems) == 1
    assert "head anchor says 6 rows" in result.problems[0]


def test_removed_head_anchor_is_reported(chain: list[int], store: Store) -> None:
    store.conn.execute("DELETE FROM meta WHERE key = 'audit_head'")
    result = audit.verify(store.conn)
    assert len(result.problems) == 1
    assert "head anchor says 0 rows" in result.problems[0]
    assert "the table has 6" in result.problems[0]


def test_damaged_head_anchor_is_reported_not_crashed_on(chain: list[int], store: Store) -> None:
    store.conn.execute("UPDATE meta SET value = 'garbage' WHERE key = 'audit_head'")
    result = audit.verify(store.conn)
    assert not result.ok
    assert len(result.problems) == 1
    assert "head anchor" in result.problems[0]
    # and nothing is appended to a chain whose head is unknown
    with pytest.raises(Exception, match="head anchor"), store.transaction() as conn:
        audit.record(conn, actor=ADMIN, role="admin", action="study.read")
    assert store.query("SELECT count(*) FROM audit")[0][0] == 6


def test_edited_row_with_recomputed_hash_breaks_the_next_link(chain: list[int], store: Store) -> None:
    _drop_triggers(store.conn)
    row = {**_row(store, 3), "actor": "mallory"}
    new_hash = _attacker_digest(row)
    store.conn.execute("UPDATE audit SET actor = ?, hash = ? WHERE seq = 3", ("mallory", new_hash))
    result = audit.verify(store.conn)
    assert result.problems == ["row 4: chain broken, previous hash does not match row before it"]


def test_edited_last_row_with_recomputed_hash_breaks_the_anchor(chain: list[int], store: Store) -> None:
    _drop_triggers(store.conn)
    row = {**_row(store, 6), "details": "{}"}
    store.conn.execute("UPDATE audit SET details = ?, hash = ? WHERE seq = 6", ("{}", _attacker_digest(row)))
    result = audit.verify(store.conn)
    assert len(result.problems) == 1
    assert result.problems[0].startswith("head anchor says 6 rows")


def test_rewriting_the_whole_tail_consistently_is_still_caught_by_the_anchor(chain: list[int], store: Store) -> None:
    """Edit row 4 and re-hash rows 4..6 so that every link holds: only the head anchor still disagrees."""
    _drop_triggers(store.conn)
    prev = _row(store, 3)["hash"]
    for seq in (4, 5, 6):
        row = {**_row(store, seq), "prev_hash": prev}
        if seq == 4:
            row["actor"] = "mallory"
        row["hash"] = _attacker_digest(row)
        store.conn.execute(
            "UPDATE audit SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (row["actor"], row["prev_hash"], row["hash"], seq),
        )
        prev = row["hash"]
    result = audit.verify(store.conn)
    assert len(result.problems) == 1
    assert "head anchor" in result.problems[0]


def test_several_tamperings_are_all_reported(chain: list[int], store: Store) -> None:
    _drop_triggers(store.conn)
    store.conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    store.conn.execute("DELETE FROM audit WHERE seq = 4")
    store.conn.execute("DELETE FROM audit WHERE seq = 6")
    problems = audit.verify(store.conn).problems
    assert _problems_for(problems, 2) == ["row 2: content does not match its hash (row edited)"]
    assert any("sequence gap, expected 4" in p for p in _problems_for(problems, 5))
    assert any(p.startswith("head anchor says 6 rows") and "the table has 5" in p for p in problems)


# --------------------------------------------------------------------------------------------------- DICOM export
def _messages(entries: list[AuditEntry]) -> list[ET.Element]:
    docs = audit_message_xml(entries, source_id="radplan-ws-01")
    assert len(docs) == len(entries)
    parsed = []
    for doc in docs:
        assert doc.startswith(b"<?xml")
        parsed.append(ET.fromstring(doc))  # noqa: S314 - our own output; well-formed, standalone
    return parsed


def _only(parent: ET.Element, path: str) -> ET.Element:
    found = parent.findall(path)
    assert len(found) == 1, f"{path}: {len(found)} elements"
    return found[0]


def _codes(parent: ET.Element, path: str) -> list[str]:
    return [e.attrib["csd-code"] for e in parent.findall(path)]


def _requestor(msg: ET.Element) -> ET.Element:
    requestors = [p for p in msg.findall("ActiveParticipant") if p.attrib["UserIsRequestor"] == "true"]
    assert len(requestors) == 1  # PS3.15 A.5.2: never more than one requestor
    return requestors[0]


@pytest.fixture
def users(store: Store) -> UserRepository:
    return UserRepository(store)


def test_one_message_per_entry_with_event_identification(store: Store, users: UserRepository) -> None:
    users.authenticate(ADMIN, ADMIN_PW)
    with pytest.raises(AuthenticationError):
        users.authenticate(ADMIN, "wrong-password-1")
    entries = list(audit.entries(store.conn))
    assert [e.action for e in entries] == ["user.create", "user.login", "user.login"]
    create, login_ok, login_bad = _messages(entries)
    for msg, entry in zip((create, login_ok, login_bad), entries, strict=True):
        assert msg.tag == "AuditMessage"
        ident = _only(msg, "EventIdentification")
        assert ident.attrib["EventDateTime"] == entry.ts
        assert str(entry.seq) in _only(ident, "EventOutcomeDescription").text  # type: ignore[operator]
    ok_ident, bad_ident = _only(login_ok, "EventIdentification"), _only(login_bad, "EventIdentification")
    assert ok_ident.attrib["EventOutcomeIndicator"] == "0"
    assert bad_ident.attrib["EventOutcomeIndicator"] == "4"
    for ident in (ok_ident, bad_ident):
        assert ident.attrib["EventActionCode"] == "E"
        event_id = _only(ident, "EventID")
        assert (event_id.attrib["csd-code"], event_id.attrib["codeSystemName"]) == ("110114", "DCM")
        assert event_id.attrib["originalText"] == "User Authentication"
        assert _codes(ident, "EventTypeCode") == ["110122"]
    assert _requestor(login_bad).attrib["UserID"] == ADMIN


def test_participants_and_source(store: Store) -> None:
    with store.transaction() as conn:
        audit.record(
            conn,
            actor=RAD,
            role="radiologist",
            action="dicom.import",
            objects=[AuditObject("patient", "PAT-0042"), AuditObject("study", "1.2.826.0.1.3680043.9.1")],
            details={"instances": 3},
        )
    (msg,) = _messages(list(audit.entries(store.conn, action="dicom.import")))
    ident = _only(msg, "EventIdentification")
    assert ident.attrib["EventActionCode"] == "C"
    assert _codes(ident, "EventID") == ["110107"]
    assert ident.findall("EventTypeCode") == []

    user = _requestor(msg)
    assert user.attrib["UserID"] == RAD
    assert user.attrib["NetworkAccessPointID"] == "radplan-ws-01"
    # PS3.15 A.5.3.5 Data Import: the importing user has the Destination Role ID
    assert _codes(user, "RoleIDCode") == ["110152"]
    others = [p for p in msg.findall("ActiveParticipant") if p is not user]
    assert [p.attrib["UserIsRequestor"] for p in others] == ["false"]
    assert others[0].attrib["UserID"] == "radplan"

    source = _only(msg, "AuditSourceIdentification")
    assert source.attrib["AuditSourceID"] == "radplan-ws-01"
    assert _codes(source, "AuditSourceTypeCode") == ["4"]

    objects = {o.attrib["ParticipantObjectID"]: o for o in msg.findall("ParticipantObjectIdentification")}
    assert set(objects) == {"PAT-0042", "1.2.826.0.1.3680043.9.1"}
    patient, study = objects["PAT-0042"], objects["1.2.826.0.1.3680043.9.1"]
    assert (patient.attrib["ParticipantObjectTypeCode"], patient.attrib["ParticipantObjectTypeCodeRole"]) == ("1", "1")
    pid_type = _only(patient, "ParticipantObjectIDTypeCode")
    assert (pid_type.attrib["csd-code"], pid_type.attrib["codeSystemName"]) == ("2", "RFC-3881")
    assert (study.attrib["ParticipantObjectTypeCode"], study.attrib["ParticipantObjectTypeCodeRole"]) == ("2", "3")
    sid_type = _only(study, "ParticipantObjectIDTypeCode")
    assert (sid_type.attrib["csd-code"], sid_type.attrib["codeSystemName"]) == ("110180", "DCM")
    # schema order: EventIdentification, ActiveParticipant+, AuditSourceIdentification, ParticipantObject*
    tags = [child.tag for child in msg]
    assert tags == [
        "EventIdentification",
        "ActiveParticipant",
        "ActiveParticipant",
        "AuditSourceIdentification",
        "ParticipantObjectIdentification",
        "ParticipantObjectIdentification",
    ]


def test_break_glass_entry_carries_emergency_override(store: Store) -> None:
    admin = User(id=1, name=ADMIN, role=Role.ADMIN)
    access = Access(admin, Permission.READ_PATIENT_DATA, break_glass=True, reason="ED emergency, consultant asked")
    with store.transaction() as conn:
        record_access(conn, access, "study.query", objects=[AuditObject("study", "1.2.3.4")])
        audit.record(conn, actor=ADMIN, role="admin", action="study.query")
    flagged, plain = _messages(list(audit.entries(store.conn, action="study.query")))
    assert "110127" in _codes(_only(flagged, "EventIdentification"), "EventTypeCode")
    assert "110127" not in _codes(_only(plain, "EventIdentification"), "EventTypeCode")
    assert _codes(_only(flagged, "EventIdentification"), "EventID") == ["110112"]


@pytest.mark.parametrize(
    ("action", "event_id", "action_code", "type_code"),
    [
        ("user.login", "110114", "E", "110122"),
        ("user.logout", "110114", "E", "110123"),
        ("dicom.import", "110107", "C", None),
        ("dicom.export", "110106", "R", None),
        ("study.query", "110112", "E", None),
        ("study.read", "110103", "R", None),
        ("audit.export", "110101", "R", None),
        ("user.create", "110113", "E", "110136"),
        ("user.password", "110113", "E", "110137"),
        ("store.init", "110100", "E", "110120"),
        ("something.new", "110100", "E", None),
    ],
)
def test_event_codes_per_action(action: str, event_id: str, action_code: str, type_code: str | None) -> None:
    event = event_code_for(action)
    assert (event.code, event.action) == (event_id, action_code)
    assert (event.type_code[0] if event.type_code else None) == type_code


def test_user_password_change_is_not_coded_as_a_remote_service_operation(store: Store, users: UserRepository) -> None:
    user = users.authenticate(ADMIN, ADMIN_PW)
    users.change_own_password(user, "another-password-2")
    (msg,) = _messages(list(audit.entries(store.conn, action="user.password")))
    ident = _only(msg, "EventIdentification")
    assert _codes(ident, "EventID") == ["110113"]
    # 110139 is "Remote Service Operation Started"; a changed password is "User Security Attributes Changed"
    assert _codes(ident, "EventTypeCode") == ["110137"]


def test_hostile_text_in_an_entry_still_gives_well_formed_xml(store: Store, users: UserRepository) -> None:
    """A failed login records whatever name was typed; control characters and markup must not break the XML."""
    hostile = "evil\x1b[31m<inject attr='x'>&amp;\x00\x07"
    with pytest.raises(AuthenticationError):
        users.authenticate(hostile, "wrong-password-1")
    with store.transaction() as conn:
        audit.record(
            conn, actor=ADMIN, role="admin", action="study.read", objects=[AuditObject("study", "1.2", hostile)]
        )
    entries = list(audit.entries(store.conn))[-2:]
    login, read = _messages(entries)
    user_id = _requestor(login).attrib["UserID"]
    assert user_id.startswith("evil") and "<inject attr='x'>&amp;" in user_id
    description = _only(read, "ParticipantObjectIdentification/ParticipantObjectDescription").text
    assert description is not None and "<inject" in description
    # a row edited by an attacker is exported as it is, and still parses
    (edited,) = _messages([dataclasses.replace(entries[-1], ts="2026-01-01\x01T00:00:00", action="x.\x02")])
    assert _only(edited, "EventIdentification").attrib["EventDateTime"].startswith("2026-01-01")


def test_export_of_an_empty_sequence_is_empty() -> None:
    assert audit_message_xml([]) == []


# --------------------------------------------------------------------------------------------------- CLI
def _open_store(data_dir: Path) -> Store:
    return Store.open(data_dir)  # keyring mode: the key is in the test session's Secret Service


@pytest.mark.keyring
def test_cli_verify_intact_then_tampered(initialised: Cli, data_dir: Path) -> None:
    ok = initialised("audit", "verify", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW)
    assert ok.returncode == 0
    assert "audit trail intact" in ok.stdout
    store = _open_store(data_dir)
    try:
        count = store.query("SELECT count(*) FROM audit")[0][0]
        assert count >= 6  # first admin, store.init, and a login + user.create per added user
        _drop_triggers(store.conn)
        store.conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    finally:
        store.close()
    bad = initialised("audit", "verify", check=False, RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW)
    assert bad.returncode != 0
    assert "TAMPERED: row 2: content does not match its hash" in bad.stderr
    assert "verification failed" in bad.stderr
    denied = initialised("audit", "verify", check=False, RADPLAN_USER=RAD, RADPLAN_PASSWORD=RAD_PW)
    assert denied.returncode == 3


@pytest.mark.keyring
def test_cli_verify_reports_a_deleted_last_row(initialised: Cli, data_dir: Path) -> None:
    store = _open_store(data_dir)
    try:
        last = store.query("SELECT max(seq) FROM audit")[0][0]
        _drop_triggers(store.conn)
        store.conn.execute("DELETE FROM audit WHERE seq = ?", (last,))
    finally:
        store.close()
    bad = initialised("audit", "verify", check=False, RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW)
    assert bad.returncode != 0
    # The admin's own login is appended (audited) before the check runs, after the anchor's seq {last}: the
    # deleted row shows up as the gap before that new row.
    assert f"TAMPERED: row {last + 1}: sequence gap, expected {last}" in bad.stderr


@pytest.mark.keyring
def test_cli_export_dicom_writes_one_parseable_file_per_entry(initialised: Cli, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "atna"
    result = initialised(
        "audit", "export", "--format", "dicom", "--out", str(out), RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW
    )
    files = sorted(out.glob("*.xml"))
    store = _open_store(data_dir)
    try:
        entries = list(audit.entries(store.conn))
        assert audit.verify(store.conn).ok
    finally:
        store.close()
    # the export itself is audited (login + audit.export) before the entries are read
    assert entries[-1].action == "audit.export" and entries[-1].actor == ADMIN
    assert f"exported {len(entries)} audit entries" in result.stdout
    assert [f.name for f in files] == [f"audit-{e.seq:08d}.xml" for e in entries]
    for path, entry in zip(files, entries, strict=True):
        msg = ET.parse(path).getroot()  # noqa: S314 - written by the CLI under test
        assert msg.tag == "AuditMessage"
        ident = _only(msg, "EventIdentification")
        assert ident.attrib["EventDateTime"] == entry.ts
        assert _codes(ident, "EventID") == [event_code_for(entry.action).code]
        assert _requestor(msg).attrib["UserID"] == entry.actor


@pytest.mark.keyring
def test_cli_export_needs_view_audit(initialised: Cli, tmp_path: Path) -> None:
    result = initialised(
        "audit", "export", "--out", str(tmp_path / "x"), RADPLAN_USER=RAD, RADPLAN_PASSWORD=RAD_PW, check=False
    )
    assert result.returncode == 3
    assert "denied" in result.stderr
    assert not (tmp_path / "x").exists()

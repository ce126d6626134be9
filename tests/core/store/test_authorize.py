"""core.store.users.authorize: refusals and break-glass grants leave audit entries."""

from __future__ import annotations

import json

import pytest

from core.errors import PermissionDeniedError
from core.security.roles import Permission
from core.security.session import Session
from core.store import audit
from core.store.store import Store
from core.store.users import UserRepository, authorize
from tests.conftest import ADMIN, ADMIN_PW


def last_entry(store: Store) -> audit.AuditEntry:
    return list(audit.entries(store.conn))[-1]


def test_refusal_is_audited(passphrase_store: Store) -> None:
    admin = UserRepository(passphrase_store).authenticate(ADMIN, ADMIN_PW)
    with pytest.raises(PermissionDeniedError):
        authorize(passphrase_store, Session(admin), Permission.READ_PATIENT_DATA)
    entry = last_entry(passphrase_store)
    assert (entry.actor, entry.action, entry.outcome) == (ADMIN, "access.denied", "minor_failure")
    assert entry.details == {"permission": "read_patient_data", "break_glass_requested": False}
    assert audit.verify(passphrase_store.conn).ok


def test_break_glass_grant_is_audited_with_reason(passphrase_store: Store) -> None:
    admin = UserRepository(passphrase_store).authenticate(ADMIN, ADMIN_PW)
    access = authorize(
        passphrase_store, Session(admin), Permission.READ_PATIENT_DATA, break_glass_reason="night shift, ICU call"
    )
    assert access.break_glass
    entry = last_entry(passphrase_store)
    assert entry.action == "access.break_glass" and entry.break_glass
    assert entry.details["break_glass_reason"] == "night shift, ICU call"
    row = passphrase_store.query("SELECT break_glass, details FROM audit ORDER BY seq DESC LIMIT 1")[0]
    assert row[0] == 1 and json.loads(str(row[1]))["permission"] == "read_patient_data"


def test_granted_permission_adds_no_entry(passphrase_store: Store) -> None:
    admin = UserRepository(passphrase_store).authenticate(ADMIN, ADMIN_PW)
    before = last_entry(passphrase_store).seq
    authorize(passphrase_store, Session(admin), Permission.MANAGE_USERS)
    assert last_entry(passphrase_store).seq == before

"""Roles and permissions, sessions (break-glass, auto-lock), passwords and authentication, on the real store."""

from __future__ import annotations

import json

import pytest
from argon2 import PasswordHasher

from core.errors import AuthenticationError, PermissionDeniedError, SessionLockedError
from core.security.passwords import MIN_PASSWORD_LENGTH, check_policy, hash_password, needs_rehash, verify_password
from core.security.roles import BREAK_GLASS_PERMISSIONS, ROLE_PERMISSIONS, Permission, Role, role_allows
from core.security.session import Access, Session, User
from core.store import audit
from core.store.store import Store, utc_now
from core.store.studies import list_studies
from core.store.users import UserRepository
from tests.conftest import ADMIN, ADMIN_PW, PHYS, PHYS_PW, RAD, RAD_PW, Cli

P = Permission
BREAK_GLASS_REASON = "ED emergency, consultant asked"


# --------------------------------------------------------------------------------------------------- roles
EXPECTED = {
    Role.RADIOLOGIST: {P.READ_PATIENT_DATA, P.IMPORT_STUDIES, P.RUN_ANALYSIS, P.EDIT_PLANS, P.APPROVE_PLANS},
    Role.PHYSICIST: {P.READ_PATIENT_DATA, P.REVIEW_PLANS},
    Role.ADMIN: {P.MANAGE_USERS, P.MANAGE_PACS, P.MANAGE_SETTINGS, P.MANAGE_STORE, P.VIEW_AUDIT},
}


def test_role_permission_matrix_is_exactly_as_documented() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)
    for role in Role:
        assert set(ROLE_PERMISSIONS[role]) == EXPECTED[role], role
        for permission in Permission:
            assert role_allows(role, permission) is (permission in EXPECTED[role]), (role, permission)


def test_admin_cannot_read_patient_data_and_nobody_else_manages_users() -> None:
    assert not role_allows(Role.ADMIN, P.READ_PATIENT_DATA)
    assert [r for r in Role if role_allows(r, P.MANAGE_USERS)] == [Role.ADMIN]
    assert [r for r in Role if role_allows(r, P.APPROVE_PLANS)] == [Role.RADIOLOGIST]
    assert [r for r in Role if role_allows(r, P.REVIEW_PLANS)] == [Role.PHYSICIST]  # four eyes: never the same role
    assert [r for r in Role if role_allows(r, P.VIEW_AUDIT)] == [Role.ADMIN]
    assert set(BREAK_GLASS_PERMISSIONS) == {P.READ_PATIENT_DATA}


# --------------------------------------------------------------------------------------------------- sessions
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


ADMIN_USER = User(id=1, name=ADMIN, role=Role.ADMIN)
RAD_USER = User(id=2, name=RAD, role=Role.RADIOLOGIST)
PHYS_USER = User(id=3, name=PHYS, role=Role.PHYSICIST)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _session(user: User, clock: FakeClock, timeout: float = 600.0) -> Session:
    return Session(user, idle_timeout_s=timeout, clock=clock)


def test_authorize_allowed_gives_a_plain_access(clock: FakeClock) -> None:
    access = _session(RAD_USER, clock).authorize(P.READ_PATIENT_DATA)
    assert access == Access(RAD_USER, P.READ_PATIENT_DATA, break_glass=False, reason="")


def test_authorize_denied_raises(clock: FakeClock) -> None:
    session = _session(RAD_USER, clock)
    with pytest.raises(PermissionDeniedError, match="radiologist role may not manage users"):
        session.authorize(P.MANAGE_USERS)
    with pytest.raises(PermissionDeniedError):
        _session(ADMIN_USER, clock).authorize(P.READ_PATIENT_DATA)
    with pytest.raises(PermissionDeniedError):
        _session(PHYS_USER, clock).authorize(P.EDIT_PLANS)


def test_denial_of_patient_data_mentions_break_glass(clock: FakeClock) -> None:
    with pytest.raises(PermissionDeniedError, match="break-glass is possible"):
        _session(ADMIN_USER, clock).authorize(P.READ_PATIENT_DATA)


def test_admin_break_glass_for_patient_data(clock: FakeClock) -> None:
    access = _session(ADMIN_USER, clock).authorize(P.READ_PATIENT_DATA, break_glass_reason=f"  {BREAK_GLASS_REASON} ")
    assert access.break_glass is True
    assert access.reason == BREAK_GLASS_REASON
    assert access.user == ADMIN_USER
    assert access.permission is P.READ_PATIENT_DATA


@pytest.mark.parametrize("reason", ["", "urgent", "   too short   ", " " * 30])
def test_break_glass_needs_a_real_reason(clock: FakeClock, reason: str) -> None:
    with pytest.raises(PermissionDeniedError, match="at least 10 characters"):
        _session(ADMIN_USER, clock).authorize(P.READ_PATIENT_DATA, break_glass_reason=reason)


@pytest.mark.parametrize(
    ("user", "permission"),
    [
        (RAD_USER, P.MANAGE_USERS),
        (PHYS_USER, P.APPROVE_PLANS),
        (RAD_USER, P.REVIEW_PLANS),
        (ADMIN_USER, P.APPROVE_PLANS),
        (ADMIN_USER, P.EDIT_PLANS),
        (PHYS_USER, P.VIEW_AUDIT),
        (PHYS_USER, P.MANAGE_STORE),
    ],
)
def test_break_glass_never_grants_other_permissions(clock: FakeClock, user: User, permission: Permission) -> None:
    with pytest.raises(PermissionDeniedError) as excinfo:
        _session(user, clock).authorize(permission, break_glass_reason=BREAK_GLASS_REASON)
    assert "break-glass is possible" not in str(excinfo.value)


def test_a_role_that_may_does_not_use_break_glass(clock: FakeClock) -> None:
    access = _session(RAD_USER, clock).authorize(P.READ_PATIENT_DATA, break_glass_reason=BREAK_GLASS_REASON)
    assert access.break_glass is False
    assert access.reason == ""


def test_activity_before_the_timeout_keeps_the_session_open(clock: FakeClock) -> None:
    session = _session(RAD_USER, clock, timeout=600)
    for _ in range(5):
        clock.advance(599)
        assert not session.locked
        session.authorize(P.READ_PATIENT_DATA)  # counts as activity
    clock.advance(600)  # exactly the timeout: still open
    assert not session.locked
    session.touch()


def test_idle_session_locks_itself(clock: FakeClock) -> None:
    session = _session(RAD_USER, clock, timeout=600)
    clock.advance(600.5)
    assert session.locked
    with pytest.raises(SessionLockedError):
        session.authorize(P.READ_PATIENT_DATA)
    with pytest.raises(SessionLockedError):
        session.touch()
    # it stays locked: going back in time or asking again does not reopen it
    clock.now -= 1000
    assert session.locked
    with pytest.raises(SessionLockedError):
        session.authorize(P.READ_PATIENT_DATA)


def test_unlock_by_the_same_user(clock: FakeClock) -> None:
    session = _session(RAD_USER, clock, timeout=600)
    clock.advance(601)
    assert session.locked
    session.unlock(User(id=RAD_USER.id, name=RAD, role=Role.RADIOLOGIST))
    assert not session.locked
    assert session.authorize(P.READ_PATIENT_DATA).user == RAD_USER
    # the idle timer restarted at the unlock
    clock.advance(599)
    assert not session.locked
    clock.advance(2)
    assert session.locked


def test_unlock_by_another_user_is_refused(clock: FakeClock) -> None:
    session = _session(RAD_USER, clock, timeout=600)
    clock.advance(601)
    with pytest.raises(PermissionDeniedError, match="only the user who locked"):
        session.unlock(ADMIN_USER)
    with pytest.raises(PermissionDeniedError):
        session.unlock(User(id=99, name=RAD, role=Role.RADIOLOGIST))  # same name, other account
    assert session.locked
    with pytest.raises(SessionLockedError):
        session.authorize(P.READ_PATIENT_DATA)


def test_manual_lock(clock: FakeClock) -> None:
    session = _session(PHYS_USER, clock)
    session.lock()
    assert session.locked
    with pytest.raises(SessionLockedError):
        session.authorize(P.APPROVE_PLANS)


# --------------------------------------------------------------------------------------------------- studies + audit
STUDY_UID = "1.2.826.0.1.3680043.10.543.7"


@pytest.fixture
def store(passphrase_store: Store) -> Store:
    now = utc_now()
    with passphrase_store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO patients (patient_id, name, birth_date, sex) VALUES (?, ?, ?, ?)",
            ("RP-TEST-31", "TESTER^ALICE", "19700101", "F"),
        )
        conn.execute(
            "INSERT INTO studies (patient_fk, study_uid, study_date, description, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (cur.lastrowid, STUDY_UID, "20260101", "CT THORAX", now, now),
        )
    return passphrase_store


def test_list_studies_with_break_glass_is_flagged_in_the_audit_trail(store: Store, clock: FakeClock) -> None:
    access = _session(ADMIN_USER, clock).authorize(P.READ_PATIENT_DATA, break_glass_reason=BREAK_GLASS_REASON)
    studies = list_studies(store, access)
    assert [s.study_uid for s in studies] == [STUDY_UID]
    assert studies[0].patient_id == "RP-TEST-31"
    (entry,) = list(audit.entries(store.conn, action="study.query"))
    assert entry.break_glass is True
    assert (entry.actor, entry.role) == (ADMIN, "admin")
    assert entry.details["break_glass_reason"] == BREAK_GLASS_REASON
    assert entry.details["results"] == 1
    assert [(o.kind, o.identifier) for o in entry.objects] == [("study", STUDY_UID)]
    (raw,) = store.query("SELECT break_glass FROM audit WHERE seq = ?", (entry.seq,))
    assert raw[0] == 1
    assert audit.verify(store.conn).ok


def test_list_studies_by_a_radiologist_is_audited_without_the_flag(store: Store, clock: FakeClock) -> None:
    access = _session(RAD_USER, clock).authorize(P.READ_PATIENT_DATA)
    assert len(list_studies(store, access, patient_id="RP-TEST-31")) == 1
    assert list_studies(store, access, patient_id="nobody") == []
    first, second = audit.entries(store.conn, action="study.query")
    assert not first.break_glass and "break_glass_reason" not in first.details
    assert first.details == {"filter_patient": True, "results": 1}
    assert second.details == {"filter_patient": True, "results": 0}


def test_admin_without_break_glass_is_refused_and_nothing_is_read(store: Store, clock: FakeClock) -> None:
    session = _session(ADMIN_USER, clock)
    with pytest.raises(PermissionDeniedError):
        session.authorize(P.READ_PATIENT_DATA)
    # an access for another permission does not open the study list either
    with pytest.raises(PermissionDeniedError, match="read_patient_data"):
        list_studies(store, session.authorize(P.VIEW_AUDIT))
    assert list(audit.entries(store.conn, action="study.query")) == []


# --------------------------------------------------------------------------------------------------- passwords
def test_password_hash_is_argon2id_with_64_mib() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "m=65536" in stored and "t=3" in stored
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterY")
    assert not needs_rehash(stored)
    assert hash_password("correct horse battery") != stored  # salted


def test_password_verification_never_raises() -> None:
    assert not verify_password(None, "whatever-password")
    assert not verify_password("", "whatever-password")
    assert not verify_password("not a hash", "whatever-password")
    assert not verify_password(None, "radplan-dummy-password")  # the decoy hash for unknown users opens nothing


def test_password_policy() -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_PASSWORD_LENGTH}"):
        check_policy("x" * (MIN_PASSWORD_LENGTH - 1))
    with pytest.raises(ValueError, match="at least"):
        hash_password("short-pw")
    with pytest.raises(ValueError, match="whitespace"):
        hash_password(" leading-space-password")
    check_policy("x" * MIN_PASSWORD_LENGTH)


def test_weak_parameters_need_a_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("old-password-01")
    assert needs_rehash(weak)
    assert verify_password(weak, "old-password-01")


# --------------------------------------------------------------------------------------------------- users
@pytest.fixture
def users(store: Store) -> UserRepository:
    return UserRepository(store)


def _admin_access(users: UserRepository) -> Access:
    admin = users.authenticate(ADMIN, ADMIN_PW)
    return Session(admin).authorize(P.MANAGE_USERS)


def test_stored_user_hash_is_argon2id(store: Store) -> None:
    (stored,) = store.query("SELECT password_hash FROM users WHERE name = ?", (ADMIN,))[0]
    assert str(stored).startswith("$argon2id$v=19$m=65536,")
    assert ADMIN_PW not in str(stored)


def test_successful_login_is_audited(store: Store, users: UserRepository) -> None:
    user = users.authenticate(ADMIN, ADMIN_PW)
    assert (user.name, user.role, user.active) == (ADMIN, Role.ADMIN, True)
    (entry,) = list(audit.entries(store.conn, action="user.login"))
    assert (entry.actor, entry.role, entry.outcome) == (ADMIN, "admin", "success")
    assert store.query("SELECT last_login FROM users WHERE name = ?", (ADMIN,))[0][0] is not None


def test_failed_logins_are_audited_and_indistinguishable(store: Store, users: UserRepository) -> None:
    with pytest.raises(AuthenticationError) as unknown:
        users.authenticate("nosuchuser", ADMIN_PW)
    with pytest.raises(AuthenticationError) as wrong:
        users.authenticate(ADMIN, "wrong-password-1")
    assert str(unknown.value) == str(wrong.value)
    failures = list(audit.entries(store.conn, action="user.login"))
    assert [(e.actor, e.role, e.outcome) for e in failures] == [
        ("nosuchuser", "", "minor_failure"),
        (ADMIN, "", "minor_failure"),
    ]
    assert [o.identifier for e in failures for o in e.objects] == ["nosuchuser", ADMIN]
    assert store.query("SELECT last_login FROM users WHERE name = ?", (ADMIN,))[0][0] is None
    assert audit.verify(store.conn).ok


def test_disabled_user_cannot_log_in(store: Store, users: UserRepository) -> None:
    access = _admin_access(users)
    users.add(access, RAD, Role.RADIOLOGIST, RAD_PW)
    assert users.authenticate(RAD, RAD_PW).role is Role.RADIOLOGIST
    users.set_active(access, RAD, False)
    with pytest.raises(AuthenticationError) as disabled:
        users.authenticate(RAD, RAD_PW)
    with pytest.raises(AuthenticationError) as wrong:
        users.authenticate(RAD, "wrong-password-1")
    assert str(disabled.value) == str(wrong.value)
    assert [e.outcome for e in audit.entries(store.conn, actor=RAD, action="user.login")] == [
        "success",
        "minor_failure",
        "minor_failure",
    ]
    users.set_active(access, RAD, True)
    assert users.authenticate(RAD, RAD_PW).name == RAD
    actions = [e.action for e in audit.entries(store.conn, actor=ADMIN)]
    assert "user.disable" in actions and "user.enable" in actions


def test_user_management_needs_a_manage_users_access(users: UserRepository, clock: FakeClock) -> None:
    rad_access = _session(RAD_USER, clock).authorize(P.READ_PATIENT_DATA)
    with pytest.raises(PermissionDeniedError):
        users.add(rad_access, "intruder", Role.ADMIN, "intruder-password")
    assert [u.name for u in users.list()] == [ADMIN]


def test_login_upgrades_a_weak_hash(store: Store, users: UserRepository) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(ADMIN_PW)
    with store.transaction() as conn:
        conn.execute("UPDATE users SET password_hash = ? WHERE name = ?", (weak, ADMIN))
    users.authenticate(ADMIN, ADMIN_PW)
    (stored,) = store.query("SELECT password_hash FROM users WHERE name = ?", (ADMIN,))[0]
    assert "m=65536" in str(stored)
    assert verify_password(str(stored), ADMIN_PW)


# --------------------------------------------------------------------------------------------------- CLI
@pytest.mark.keyring
def test_cli_admin_is_denied_the_study_list(initialised: Cli) -> None:
    result = initialised("studies", "--json", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW, check=False)
    assert result.returncode == 3
    assert "denied" in result.stderr
    assert result.stdout == ""


@pytest.mark.keyring
def test_cli_radiologist_and_physicist_list_studies(initialised: Cli) -> None:
    for name, password in ((RAD, RAD_PW), (PHYS, PHYS_PW)):
        result = initialised("studies", "--json", RADPLAN_USER=name, RADPLAN_PASSWORD=password)
        assert json.loads(result.stdout) == []


@pytest.mark.keyring
def test_cli_admin_break_glass_is_allowed_and_flagged(initialised: Cli) -> None:
    result = initialised(
        "studies", "--json", "--break-glass", BREAK_GLASS_REASON, RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW
    )
    assert json.loads(result.stdout) == []
    listing = initialised(
        "audit", "list", "--json", "--action", "study.query", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW
    )
    (entry,) = json.loads(listing.stdout)
    assert entry["actor"] == ADMIN
    assert entry["break_glass"] is True
    assert entry["details"]["break_glass_reason"] == BREAK_GLASS_REASON
    text = initialised("audit", "list", "--action", "study.query", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW)
    assert "BREAK-GLASS" in text.stdout


@pytest.mark.keyring
def test_cli_break_glass_with_a_short_reason_is_denied(initialised: Cli) -> None:
    result = initialised(
        "studies", "--break-glass", "urgent", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW, check=False
    )
    assert result.returncode == 3
    assert "10 characters" in result.stderr


@pytest.mark.keyring
def test_cli_radiologist_cannot_add_users(initialised: Cli) -> None:
    result = initialised(
        "user",
        "add",
        "intruder",
        "--role",
        "admin",
        RADPLAN_USER=RAD,
        RADPLAN_PASSWORD=RAD_PW,
        RADPLAN_NEW_PASSWORD="intruder-password",
        check=False,
    )
    assert result.returncode == 3
    assert "denied" in result.stderr
    users = initialised("user", "list", "--json", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW)
    assert sorted(u["name"] for u in json.loads(users.stdout)) == sorted([ADMIN, RAD, PHYS])


@pytest.mark.keyring
def test_cli_wrong_password_is_denied(initialised: Cli) -> None:
    result = initialised("studies", RADPLAN_USER=RAD, RADPLAN_PASSWORD="wrong-password-1", check=False)
    assert result.returncode == 3
    assert "unknown user, wrong password or disabled account" in result.stderr

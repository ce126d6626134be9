"""User accounts in the store: create, authenticate, list, disable. Every change is audited."""

from __future__ import annotations

import re

from core.errors import AuthenticationError, PermissionDeniedError
from core.security.passwords import hash_password, needs_rehash, rehash_password, verify_password
from core.security.roles import Permission, Role
from core.security.session import Access, Session, User
from core.store import audit
from core.store.audit import AuditObject
from core.store.database import Connection
from core.store.store import Store, utc_now

__all__ = ["UserRepository", "authorize", "record_access"]

_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")


def record_access(store_conn: Connection, access: Access, action: str, **kwargs: object) -> int:
    """Audit an authorised action (break-glass flagged with its reason)."""
    details = dict(kwargs.pop("details", None) or {})  # type: ignore[call-overload]
    if access.break_glass:
        details["break_glass_reason"] = access.reason
    return audit.record(
        store_conn,
        actor=access.user.name,
        role=access.user.role.value,
        action=action,
        details=details,
        break_glass=access.break_glass,
        **kwargs,  # type: ignore[arg-type]
    )


def authorize(
    store: Store, session: Session, permission: Permission, *, break_glass_reason: str | None = None
) -> Access:
    """Session.authorize with an audit trail: refusals are recorded, and so is every break-glass grant."""
    try:
        access = session.authorize(permission, break_glass_reason=break_glass_reason)
    except PermissionDeniedError:
        with store.transaction() as conn:
            audit.record(
                conn,
                actor=session.user.name,
                role=session.user.role.value,
                action="access.denied",
                outcome="minor_failure",
                details={"permission": permission.value, "break_glass_requested": break_glass_reason is not None},
            )
        raise
    if access.break_glass:
        with store.transaction() as conn:
            record_access(conn, access, "access.break_glass", details={"permission": permission.value})
    return access


def _row_to_user(row: tuple[object, ...]) -> User:
    uid, name, role, active = row
    return User(id=int(str(uid)), name=str(name), role=Role(str(role)), active=bool(active))


class UserRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    def count(self) -> int:
        return int(str(self.store.query("SELECT count(*) FROM users")[0][0]))

    def create_first_admin(self, name: str, password: str) -> User:
        """The store's first account; allowed only while no user exists."""
        with self.store.transaction() as conn:
            if conn.execute("SELECT count(*) FROM users").fetchone()[0]:
                raise PermissionDeniedError("the store already has users: add more with 'radplan user add'")
            user = self._insert(conn, name, Role.ADMIN, password)
            audit.record(
                conn,
                actor=name,
                role=Role.ADMIN.value,
                action="user.create",
                objects=[AuditObject("user", name, "first admin")],
            )
        return user

    def add(self, access: Access, name: str, role: Role, password: str) -> User:
        self._require(access, Permission.MANAGE_USERS)
        with self.store.transaction() as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise ValueError(f"user {name!r} already exists")
            user = self._insert(conn, name, role, password)
            record_access(conn, access, "user.create", objects=[AuditObject("user", name, role.value)])
        return user

    def set_active(self, access: Access, name: str, active: bool) -> None:
        self._require(access, Permission.MANAGE_USERS)
        if name == access.user.name and not active:
            raise ValueError("you cannot disable your own account")
        with self.store.transaction() as conn:
            cur = conn.execute("UPDATE users SET active = ? WHERE name = ?", (int(active), name))
            if cur.rowcount != 1:
                raise ValueError(f"no user {name!r}")
            record_access(
                conn, access, "user.enable" if active else "user.disable", objects=[AuditObject("user", name)]
            )

    def change_own_password(self, user: User, password: str) -> None:
        """For a user who has just authenticated (the caller checked the current password)."""
        with self.store.transaction() as conn:
            conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (hash_password(password), user.id))
            audit.record(
                conn,
                actor=user.name,
                role=user.role.value,
                action="user.password",
                objects=[AuditObject("user", user.name)],
            )

    def set_password(self, access: Access, name: str, password: str) -> None:
        self._require(access, Permission.MANAGE_USERS)
        with self.store.transaction() as conn:
            cur = conn.execute("UPDATE users SET password_hash = ? WHERE name = ?", (hash_password(password), name))
            if cur.rowcount != 1:
                raise ValueError(f"no user {name!r}")
            record_access(conn, access, "user.password", objects=[AuditObject("user", name)])

    def list(self) -> list[User]:
        rows = self.store.query("SELECT id, name, role, active FROM users ORDER BY name")
        return [_row_to_user(r) for r in rows]

    def authenticate(self, name: str, password: str) -> User:
        """Check the password; every attempt is audited. Raises AuthenticationError without saying why."""
        rows = self.store.query("SELECT id, name, role, active, password_hash FROM users WHERE name = ?", (name,))
        stored = str(rows[0][4]) if rows else None
        ok = verify_password(stored, password) and bool(rows and rows[0][3])
        with self.store.transaction() as conn:
            if not ok:
                audit.record(
                    conn,
                    actor=name,
                    role="",
                    action="user.login",
                    outcome="minor_failure",
                    objects=[AuditObject("user", name)],
                )
            else:
                conn.execute("UPDATE users SET last_login = ? WHERE name = ?", (utc_now(), name))
                if stored is not None and needs_rehash(stored):
                    conn.execute("UPDATE users SET password_hash = ? WHERE name = ?", (rehash_password(password), name))
                audit.record(
                    conn,
                    actor=name,
                    role=str(rows[0][2]),
                    action="user.login",
                    objects=[AuditObject("user", name)],
                )
        if not ok:
            raise AuthenticationError("unknown user, wrong password or disabled account")
        return _row_to_user(rows[0][:4])

    @staticmethod
    def _insert(conn: Connection, name: str, role: Role, password: str) -> User:
        if not _NAME.match(name):
            raise ValueError("user names are 2-32 characters: lower-case letters, digits, '.', '_' or '-'")
        cur = conn.execute(
            "INSERT INTO users (name, role, password_hash, created) VALUES (?, ?, ?, ?)",
            (name, role.value, hash_password(password), utc_now()),
        )
        return User(id=int(cur.lastrowid or 0), name=name, role=role)

    @staticmethod
    def _require(access: Access, permission: Permission) -> None:
        if access.permission is not permission:
            raise PermissionDeniedError(f"this action needs the '{permission.value}' permission")
